// tar:// -> tar:// with the real CLI: the archive it writes is read back by
// skopeo and loaded by podman (private store), is byte-identical across runs,
// and nothing is left beside the target or in the --temp-dir.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import * as tarStream from 'tar-stream';
import { cleanupTmpDirs, fixture, fixturePath, podmanLoadAndInspect, sha256File, skopeo, tmpDir, type ImageFacts } from './fixtures.js';
import { errorLines, hexOf, jsonSummary, listDir, occystrap, strayTempFiles, summaryLines } from './cli-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});

interface Entry {
  name: string;
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  digest: string;
  data?: Buffer;
}

/** Every entry of a tar file, with the sha256 of its data (small files kept). */
async function readArchive(file: string): Promise<Entry[]> {
  const extract = tarStream.extract();
  const entries: Entry[] = [];
  const reading = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      for await (const chunk of entry) {
        hash.update(chunk as Buffer);
        if (h.size < 1 << 16) chunks.push(chunk as Buffer);
      }
      entries.push({
        name: h.name,
        type: h.type,
        size: h.size,
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        mtime: h.mtime.getTime(),
        digest: `sha256:${hash.digest('hex')}`,
        ...(h.size < 1 << 16 ? { data: Buffer.concat(chunks) } : {}),
      });
    }
  })();
  await pipeline(createReadStream(file), extract as unknown as Writable);
  await reading;
  return entries;
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

for (const name of ['skopeo-legacy.tar', 'docker25-zstd.tar']) {
  describe(`tar:// -> tar:// (${name})`, () => {
    const image = () => fixture(name).images[0] as ImageFacts;
    let work = '';
    let temp = '';
    let outA = '';
    let outB = '';

    test('writes a docker-save archive with the image in it, twice, byte-identical', async () => {
      work = await tmpDir(`t2t-${name}`);
      temp = path.join(work, 'tmp');
      outA = path.join(work, 'a.tar');
      outB = path.join(work, 'b.tar');
      const img = image();
      for (const out of [outA, outB]) {
        const r = await occystrap(['--temp-dir', temp, '-O', 'json', 'process', `tar://${fixturePath(name)}`, `tar://${out}`]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(errorLines(r.stderr), []);
        assert.match(summaryLines(r.stderr)[0] ?? '', new RegExp(`^Summary: 1/1 images, ${img.layerCount} layers`));
        const s = jsonSummary(r.stdout);
        assert.equal(s.layers, img.layerCount);
        assert.equal(path.resolve(s.destination), out);
      }
      assert.equal(await sha256File(outA), await sha256File(outB), 'deterministic output');
      assert.ok(readFileSync(outA).equals(readFileSync(outB)), 'byte-identical output');

      // Running again over an existing target replaces it with the same bytes.
      const again = await occystrap(['--temp-dir', temp, 'process', `tar://${fixturePath(name)}`, `tar://${outA}`]);
      assert.equal(again.code, 0, again.stderr);
      assert.ok(readFileSync(outA).equals(readFileSync(outB)), 'byte-identical after overwriting');

      assert.deepEqual(listDir(work), ['a.tar', 'b.tar', 'tmp'], 'nothing beside the targets');
      assert.deepEqual(strayTempFiles(work), []);
      assert.deepEqual(listDir(temp), [], 'temp dir empty');
    });

    test('the archive lists the config, each layer once (by diff_id) and manifest.json', async () => {
      assert.notEqual(outA, '', 'needs the first test');
      const img = image();
      const entries = await readArchive(outA);
      const configName = `${hexOf(img.configDigest as string)}.json`;
      const layerNames = img.diffIds.map((d) => `${hexOf(d)}/layer.tar`);
      const expectedNames = [
        configName,
        ...unique(img.diffIds).flatMap((d) => [`${hexOf(d)}/`, `${hexOf(d)}/layer.tar`]),
        'manifest.json',
        'repositories',
      ];
      assert.deepEqual(
        entries.map((e) => (e.type === 'directory' && !e.name.endsWith('/') ? `${e.name}/` : e.name)),
        expectedNames,
      );
      for (const e of entries) {
        assert.equal(e.uid, 0, `${e.name} uid`);
        assert.equal(e.gid, 0, `${e.name} gid`);
        assert.equal(e.mtime, 0, `${e.name} mtime`);
      }
      const byName = new Map(entries.map((e) => [e.name, e]));
      assert.equal(byName.get(configName)?.digest, img.configDigest, 'config bytes kept exactly');
      for (const d of unique(img.diffIds)) {
        assert.equal(byName.get(`${hexOf(d)}/layer.tar`)?.digest, d, `layer ${d} is stored uncompressed under its diff_id`);
      }
      const manifest = JSON.parse((byName.get('manifest.json')?.data as Buffer).toString('utf8')) as unknown;
      assert.deepEqual(manifest, [{ Config: configName, RepoTags: [img.repoTags[0]], Layers: layerNames }]);
      const repositories = JSON.parse((byName.get('repositories')?.data as Buffer).toString('utf8')) as Record<string, Record<string, string>>;
      const rt = img.repoTags[0] as string;
      const colon = rt.lastIndexOf(':');
      assert.deepEqual(repositories, { [rt.slice(0, colon)]: { [rt.slice(colon + 1)]: hexOf(img.diffIds[img.diffIds.length - 1] as string) } });
    });

    test('skopeo inspect reads the layers (diff_ids) and the config back', async () => {
      assert.notEqual(outA, '', 'needs the first test');
      const img = image();
      const r = await skopeo(['inspect', `docker-archive:${outA}`]);
      assert.equal(r.code, 0, r.stderr);
      const info = JSON.parse(r.stdout) as { Layers: string[]; Architecture: string; Os: string };
      assert.deepEqual(info.Layers, img.diffIds);
      assert.equal(info.Os, 'linux');
      const raw = await skopeo(['inspect', '--raw', `docker-archive:${outA}`]);
      assert.equal(raw.code, 0, raw.stderr);
      const manifest = JSON.parse(raw.stdout) as { config: { digest: string }; layers: Array<{ digest: string }> };
      assert.equal(manifest.config.digest, img.configDigest);
      assert.deepEqual(
        manifest.layers.map((l) => l.digest),
        img.diffIds,
      );
    });

    test('podman load accepts it (private store; rmi afterwards)', async () => {
      assert.notEqual(outA, '', 'needs the first test');
      const img = image();
      const { ref, id, layers } = await podmanLoadAndInspect(outA);
      const expectedRepo = (img.repoTags[0] as string).replace(/^docker\.io\/library\//, '');
      assert.ok(ref.endsWith(expectedRepo), `${ref} is ${expectedRepo}`);
      assert.equal(id, hexOf(img.configDigest as string), 'image id = config digest');
      assert.deepEqual(layers, img.diffIds);
    });
  });
}
