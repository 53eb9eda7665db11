// ocidir:// as a source: OCI image layouts written by real tools (skopeo, umoci, buildah)
// read by tag, by digest and by platform through a nested index; the result checked by
// podman (tar://), by hashing (dir://), and by `info`/`check`. Every bad layout gets one
// clear error line, exit 1 (2 for a bad URI or a missing directory), and leaves nothing.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errorLines, hexOf, jsonSummary, occystrap } from './cli-helpers.js';
import { cleanupTmpDirs, fixture, fixtureIndex, fixturePath, podmanLoadAndInspect, run, sha256File, skopeo, tmpDir } from './fixtures.js';
import { blobOf, Forms, type ImageElement, type LayerForms, tarOf } from '../../src/core/element.js';
import { openOciLayoutInput } from '../../src/shell/inputs/oci-layout.js';
import { parseOciLayoutReference } from '../../src/core/plans/oci-layout.js';
import { TempScope } from '../../src/shell/scope.js';

after(() => cleanupTmpDirs());

const REF = 'org.opencontainers.image.ref.name';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Record<string, string>;
}
interface Index {
  schemaVersion: 2;
  manifests: Descriptor[];
}
interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

const sha = (b: Uint8Array | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const blobFile = (dir: string, digest: string) => path.join(dir, 'blobs', ...digest.split(':'));
const readIndex = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')) as Index;
const readJsonBlob = <T>(dir: string, digest: string) => JSON.parse(readFileSync(blobFile(dir, digest), 'utf8')) as T;

/** Store bytes as a blob; returns its descriptor. */
async function putBlob(dir: string, bytes: Uint8Array | string, mediaType: string): Promise<Descriptor> {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes) : Buffer.from(bytes);
  const digest = sha(buf);
  await writeFile(blobFile(dir, digest), buf);
  return { mediaType, digest, size: buf.length };
}

/** A copy of the umoci-made fixture layout (tags sample and other). */
async function umociLayout(name: string): Promise<string> {
  const dir = path.join(await tmpDir(`ocidir-${name}`), 'layout');
  await cp(fixturePath('oci'), dir, { recursive: true });
  return dir;
}

function entryByTag(dir: string, tag: string): Descriptor {
  const e = readIndex(dir).manifests.find((m) => m.annotations?.[REF] === tag);
  if (!e) throw new Error(`no ${tag} in ${dir}`);
  return e;
}

/** Replace the manifest tagged `tag` by `edit(manifest)`, stored as a new blob. */
async function editManifest(dir: string, tag: string, edit: (m: Manifest) => void): Promise<void> {
  const index = readIndex(dir);
  const entry = index.manifests.find((m) => m.annotations?.[REF] === tag) as Descriptor;
  const manifest = readJsonBlob<Manifest>(dir, entry.digest);
  edit(manifest);
  const d = await putBlob(dir, JSON.stringify(manifest), MANIFEST);
  entry.digest = d.digest;
  entry.size = d.size;
  await writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
}

/** Every file under dir:// named <hex> hashes to its name, and the set equals the diff_ids. */
async function assertStoreHolds(store: string, diffIds: readonly string[]): Promise<void> {
  const names = (await readdir(store)).filter((n) => /^[0-9a-f]{64}$/.test(n));
  assert.deepEqual(names.sort(), [...new Set(diffIds.map(hexOf))].sort());
  for (const n of names) assert.equal(await sha256File(path.join(store, n, 'layer.tar')), `sha256:${n}`, `${n}/layer.tar hashes to its name`);
}

/** Run `process SRC tar://OUT` expecting failure: exit code, one error line matching, nothing left behind. */
async function expectFailure(source: string, code: number, message: RegExp): Promise<string> {
  const out = await tmpDir('ocidir-fail-out');
  const temp = await tmpDir('ocidir-fail-temp');
  const target = path.join(out, 'image.tar');
  const r = await occystrap(['--temp-dir', temp, 'process', source, `tar://${target}`]);
  assert.equal(r.code, code, r.stderr);
  const lines = errorLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] as string, message);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.deepEqual(await readdir(out), [], 'no partial output');
  assert.deepEqual(await readdir(temp), [], 'no temp files');
  return lines[0] as string;
}

describe('layouts written by real tools', () => {
  test('skopeo oci:DIR:TAG from a Docker 25 archive, by tag and by digest, into dir:// (files hash to the diff_ids)', async () => {
    const work = await tmpDir('ocidir-skopeo');
    const layout = path.join(work, 'layout');
    const copy = await skopeo(['copy', '-q', `docker-archive:${fixturePath('docker25-plain.tar')}`, `oci:${layout}:v1`]);
    assert.equal(copy.code, 0, copy.stderr);
    const diffIds = fixture('docker25-plain.tar').diffIds;
    const byTag = await occystrap(['process', `ocidir://${layout}:v1`, `dir://${work}/tag`]);
    assert.equal(byTag.code, 0, byTag.stderr);
    await assertStoreHolds(`${work}/tag`, diffIds);
    const digest = entryByTag(layout, 'v1').digest;
    const byDigest = await occystrap(['process', `ocidir://${layout}@${digest}`, `dir://${work}/digest`]);
    assert.equal(byDigest.code, 0, byDigest.stderr);
    await assertStoreHolds(`${work}/digest`, diffIds);
    // The only image needs no tag.
    const only = await occystrap(['-O', 'json', 'info', `ocidir://${layout}`]);
    assert.equal(only.code, 0, only.stderr);
    assert.equal((JSON.parse(only.stdout) as { manifest_digest: string }).manifest_digest, digest);
  });

  test('skopeo with zstd layers (tar+zstd) into dir://, and a manifest picked by a sha512 digest', async () => {
    const work = await tmpDir('ocidir-zstd');
    const layout = path.join(work, 'layout');
    const copy = await skopeo(['copy', '-q', '--dest-compress', '--dest-compress-format', 'zstd', `oci:${fixturePath('oci')}:sample`, `oci:${layout}:zs`]);
    assert.equal(copy.code, 0, copy.stderr);
    const entry = entryByTag(layout, 'zs');
    const manifest = readJsonBlob<Manifest>(layout, entry.digest);
    assert.ok(manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd'));
    const r = await occystrap(['-O', 'json', 'process', `ocidir://${layout}:zs`, `dir://${work}/store`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonSummary(r.stdout).inflated, 4);
    await assertStoreHolds(`${work}/store`, fixtureIndex().sample.diffIds);
    // Again into the same store: every layer is there, none is read.
    const again = await occystrap(['-O', 'json', 'process', `ocidir://${layout}:zs`, `dir://${work}/store`]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual([jsonSummary(again.stdout).layersSkipped, jsonSummary(again.stdout).inflated, jsonSummary(again.stdout).bytes], [5, 0, 0]);
    // The same manifest stored under blobs/sha512 and named by that digest.
    const bytes = await readFile(blobFile(layout, entry.digest));
    const sha512 = `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
    await mkdir(path.join(layout, 'blobs', 'sha512'));
    await writeFile(blobFile(layout, sha512), bytes);
    const info = await occystrap(['-O', 'json', 'info', `ocidir://${layout}@${sha512}`]);
    assert.equal(info.code, 0, info.stderr);
    assert.equal((JSON.parse(info.stdout) as { config_digest: string }).config_digest, fixtureIndex().sample.configDigest);
    await writeFile(blobFile(layout, sha512), Buffer.concat([bytes, Buffer.from(' ')]));
    await expectFailure(`ocidir://${layout}@${sha512}`, 1, /manifest blobs\/sha512\/[0-9a-f]{128} has digest sha512:[0-9a-f]{128}; the layout is corrupt/);
  });

  test('umoci layout (the fixture): ocidir:// -> tar:// loads in podman with the config digest and diff_ids', async () => {
    const sample = fixtureIndex().sample;
    const work = await tmpDir('ocidir-podman');
    const out = path.join(work, 'image.tar');
    const r = await occystrap(['-O', 'json', 'process', `ocidir://${fixturePath('oci')}:sample`, `tar://${out}`]);
    assert.equal(r.code, 0, r.stderr);
    // Each distinct gzip layer inflated once, while it was read (the duplicate not at all).
    assert.equal(jsonSummary(r.stdout).inflated, 4);
    const { ref, id, layers } = await podmanLoadAndInspect(out);
    assert.match(ref, /oci:sample$/, 'named after the layout directory and the tag');
    assert.equal(id, hexOf(sample.configDigest));
    assert.deepEqual(layers, sample.diffIds);
  });

  test('umoci layout: the other tag, and no tag refused listing the tags', async () => {
    const other = fixtureIndex().other;
    const r = await occystrap(['-O', 'json', 'info', `ocidir://${fixturePath('oci')}:other`]);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout) as { config_digest: string; tag: string; layers: unknown[] };
    assert.equal(info.config_digest, other.configDigest);
    assert.equal(info.tag, 'other');
    assert.equal(info.layers.length, other.layerCount);
    const none = await expectFailure(`ocidir://${fixturePath('oci')}`, 1, /index\.json lists 2 images \(tags: "sample", "other"\); name one with ocidir:\/\/DIR:TAG/);
    assert.ok(none.includes(`ocidir://${fixturePath('oci')}`), 'names the URI');
    await expectFailure(`ocidir://${fixturePath('oci')}:nope`, 1, /no image tagged "nope" in index\.json \(tags: "sample", "other"\)/);
  });

  test('buildah commit --format oci (uncompressed layers) into dir://', async () => {
    // buildah names the image after the path, which must be lowercase (tmpDir's are not).
    const work = path.join(os.tmpdir(), `occystrap-ocidir-buildah-${randomBytes(6).toString('hex')}`);
    await mkdir(work);
    after(() => rm(work, { recursive: true, force: true }));
    const src = path.join(work, 'src');
    await cp(fixturePath('oci'), src, { recursive: true });
    const b = ['--root', path.join(work, 'root'), '--runroot', path.join(work, 'run'), '--storage-driver', 'vfs'];
    const from = await run('buildah', [...b, 'from', '--name', 'c1', `oci:${src}:sample`]);
    assert.equal(from.code, 0, from.stderr);
    const layout = path.join(work, 'layout');
    const commit = await run('buildah', [...b, 'commit', '-q', '--format', 'oci', 'c1', `oci:${layout}:built`]);
    assert.equal(commit.code, 0, commit.stderr);
    const manifest = readJsonBlob<Manifest>(layout, entryByTag(layout, 'built').digest);
    const config = readJsonBlob<{ rootfs: { diff_ids: string[] } }>(layout, manifest.config.digest);
    assert.ok(manifest.layers.length > fixtureIndex().sample.layerCount - 1);
    const r = await occystrap(['-O', 'json', 'process', `ocidir://${layout}:built`, `dir://${work}/store`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonSummary(r.stdout).inflated, 0, 'uncompressed layers are not inflated');
    await assertStoreHolds(`${work}/store`, config.rootfs.diff_ids);
    const check = await occystrap(['check', `ocidir://${layout}:built`]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    await run('buildah', [...b, 'rm', 'c1']);
  });

  test('info and check on ocidir://', async () => {
    const sample = fixtureIndex().sample;
    const uri = `ocidir://${fixturePath('oci')}:sample`;
    const info = await occystrap(['-O', 'json', 'info', uri]);
    assert.equal(info.code, 0, info.stderr);
    const parsed = JSON.parse(info.stdout) as { config_digest: string; manifest_digest: string; media_type: string; layers: { diff_id?: string }[] };
    assert.equal(parsed.config_digest, sample.configDigest);
    assert.equal(parsed.manifest_digest, entryByTag(fixturePath('oci'), 'sample').digest);
    assert.equal(parsed.media_type, MANIFEST);
    for (const mode of [['--fast'], []]) {
      const check = await occystrap(['check', ...mode, uri]);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(check.stdout, /0 error\(s\)/);
    }
  });
});

describe('a multi-platform index', () => {
  /** The umoci layout plus tag `multi`: a nested index, sample as linux/amd64 and other as linux/arm64/v8. */
  async function multiLayout(): Promise<string> {
    const dir = await umociLayout('multi');
    const sample = entryByTag(dir, 'sample');
    const other = entryByTag(dir, 'other');
    const nested = {
      schemaVersion: 2,
      mediaType: INDEX,
      manifests: [
        { mediaType: MANIFEST, digest: sample.digest, size: sample.size, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: MANIFEST, digest: other.digest, size: other.size, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    };
    const d = await putBlob(dir, JSON.stringify(nested), INDEX);
    const index = readIndex(dir);
    index.manifests.push({ ...d, annotations: { [REF]: 'multi' } });
    await writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
    return dir;
  }

  test('picks the platform as registry:// does: default, --architecture, ?arch=, none matching', async () => {
    const dir = await multiLayout();
    const { sample, other } = fixtureIndex();
    const configOf = async (args: string[], uri: string) => {
      const r = await occystrap(['-O', 'json', 'info', ...args, uri]);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { config_digest: string }).config_digest;
    };
    assert.equal(await configOf([], `ocidir://${dir}:multi`), sample.configDigest);
    assert.equal(await configOf(['--architecture', 'arm64'], `ocidir://${dir}:multi`), other.configDigest, 'arm64 matches arm64/v8');
    assert.equal(await configOf([], `ocidir://${dir}:multi?arch=arm64&variant=v8`), other.configDigest);
    // Picking the nested index by its digest works the same way.
    assert.equal(await configOf([], `ocidir://${dir}@${entryByTag(dir, 'multi').digest}?arch=arm64`), other.configDigest);
    // And a platform manifest that index.json does not list, by digest (a blob of the layout).
    await writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [entryByTag(dir, 'multi')] }));
    assert.equal(await configOf([], `ocidir://${dir}@${entryByTag(fixturePath('oci'), 'other').digest}`), other.configDigest);
    await expectFailure(`ocidir://${dir}:multi?arch=s390x`, 1, /no image for linux\/s390x in index sha256:[0-9a-f]{64} \(available: linux\/amd64, linux\/arm64\/v8\)/);
  });
});

describe('the forms the output asks for', () => {
  async function collect(forms: LayerForms, layout = fixturePath('oci')): Promise<{ elements: ImageElement[]; scope: TempScope; temp: string }> {
    const temp = await tmpDir('ocidir-forms');
    const scope = await TempScope.open({ parent: temp });
    const uri = `ocidir://${layout}:sample`;
    const ref = parseOciLayoutReference(`${layout}:sample`);
    assert.ok(ref._tag === 'Right');
    const input = await openOciLayoutInput({ scheme: 'ocidir', body: `${layout}:sample`, options: {}, uri }, ref.right, {});
    const elements: ImageElement[] = [];
    const ctx = { effects: scope, owner: 'input', signal: new AbortController().signal, wants: async () => forms, parallelism: 3 };
    for await (const e of input.elements(ctx)) elements.push(e);
    return { elements, scope, temp };
  }

  test('blob: copies of the layout blobs (digest verified), no tar; both: the blob and the tar; none: skipped', async () => {
    const layout = fixturePath('oci');
    const manifest = readJsonBlob<Manifest>(layout, entryByTag(layout, 'sample').digest);
    const sample = fixtureIndex().sample;
    for (const forms of [Forms.blob, Forms.both, Forms.tar, Forms.none]) {
      const { elements, scope, temp } = await collect(forms);
      const layers = elements.filter((e) => e._tag === 'Layer');
      assert.equal(layers.length, manifest.layers.length);
      for (const e of layers) {
        if (e._tag !== 'Layer') continue;
        const blobDescriptor = manifest.layers[e.layer.index] as Descriptor;
        assert.deepEqual(e.layer.blob, { digest: blobDescriptor.digest, size: blobDescriptor.size, mediaType: blobDescriptor.mediaType });
        if (e.payload._tag === 'Skipped') {
          const duplicate = manifest.layers.findIndex((l) => l.digest === blobDescriptor.digest) < e.layer.index;
          assert.equal(e.payload.reason, duplicate ? 'duplicate' : 'present');
          assert.ok(duplicate || forms === Forms.none);
          continue;
        }
        const blob = blobOf(e.payload);
        const tar = tarOf(e.payload);
        assert.equal(blob !== undefined, forms.blob);
        assert.equal(tar !== undefined, forms.tar);
        if (blob) {
          assert.deepEqual(await readFile(blob.file.path), await readFile(blobFile(layout, blobDescriptor.digest)));
          assert.equal(blob.digest, blobDescriptor.digest);
          assert.equal(blob.compression, 'gzip');
        }
        if (tar) assert.equal(await sha256File(tar.file.path), sample.diffIds[e.layer.index]);
      }
      // Duplicates (the empty layer twice) travel once.
      const withData = layers.filter((e) => e._tag === 'Layer' && e.payload._tag !== 'Skipped').length;
      assert.equal(withData, forms === Forms.none ? 0 : new Set(manifest.layers.map((l) => l.digest)).size);
      await scope.close();
      await rm(temp, { recursive: true, force: true });
    }
  });

  test('blob only: a corrupt blob is refused by its digest, and its copy is released', async () => {
    const dir = await umociLayout('blob-corrupt');
    const layer = readJsonBlob<Manifest>(dir, entryByTag(dir, 'sample').digest).layers[1] as Descriptor;
    const bytes = await readFile(blobFile(dir, layer.digest));
    bytes[100] = (bytes[100] as number) ^ 0x01;
    await writeFile(blobFile(dir, layer.digest), bytes);
    const temp = await tmpDir('ocidir-forms');
    const scope = await TempScope.open({ parent: temp });
    const ref = parseOciLayoutReference(`${dir}:sample`);
    assert.ok(ref._tag === 'Right');
    const input = await openOciLayoutInput({ scheme: 'ocidir', body: `${dir}:sample`, options: {}, uri: `ocidir://${dir}:sample` }, ref.right, {});
    const ctx = { effects: scope, owner: 'input', signal: new AbortController().signal, wants: async () => Forms.blob, parallelism: 2 };
    const delivered: ImageElement[] = [];
    await assert.rejects(
      (async () => {
        for await (const e of input.elements(ctx)) delivered.push(e);
      })(),
      /layer 1 blob blobs\/sha256\/[0-9a-f]{64} has digest sha256:[0-9a-f]{64}; the layout is corrupt/,
    );
    for (const e of delivered) if (e._tag === 'Layer') for (const f of [blobOf(e.payload), tarOf(e.payload)]) if (f) await scope.perform({ _tag: 'Release', file: f.file, owner: 'input' });
    const report = await scope.close();
    assert.equal(report.released, 0, 'the input released what it did not deliver');
    assert.deepEqual(await readdir(temp), []);
  });
});

describe('bad layouts: one clear error line, nothing left behind', () => {
  test('missing blob', async () => {
    const dir = await umociLayout('missing');
    const layer = readJsonBlob<Manifest>(dir, entryByTag(dir, 'sample').digest).layers[1] as Descriptor;
    await rm(blobFile(dir, layer.digest));
    await expectFailure(`ocidir://${dir}:sample`, 1, new RegExp(`layer 1 blob ${layer.digest} is missing \\(no blobs/sha256/[0-9a-f]{64}\\); the layout is incomplete`));
  });

  test('digest mismatch: a layer, the config, the manifest; a size that lies', async () => {
    const dir = await umociLayout('mismatch');
    const manifest = readJsonBlob<Manifest>(dir, entryByTag(dir, 'sample').digest);
    const layer = manifest.layers[0] as Descriptor;
    const bytes = await readFile(blobFile(dir, layer.digest));
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0xff;
    await writeFile(blobFile(dir, layer.digest), bytes);
    await expectFailure(`ocidir://${dir}:sample`, 1, /layer 0 blob blobs\/sha256\/[0-9a-f]{64} has digest sha256:[0-9a-f]{64}; the layout is corrupt/);

    const dir2 = await umociLayout('mismatch-config');
    const m2 = readJsonBlob<Manifest>(dir2, entryByTag(dir2, 'sample').digest);
    const cfg = await readFile(blobFile(dir2, m2.config.digest));
    cfg[cfg.length - 2] = 0x20;
    await writeFile(blobFile(dir2, m2.config.digest), cfg);
    await expectFailure(`ocidir://${dir2}:sample`, 1, /config blobs\/sha256\/[0-9a-f]{64} has digest/);

    const dir3 = await umociLayout('mismatch-manifest');
    const entry = entryByTag(dir3, 'sample');
    const mb = await readFile(blobFile(dir3, entry.digest));
    await writeFile(blobFile(dir3, entry.digest), Buffer.concat([mb.subarray(0, mb.length - 1), Buffer.from(' ')]));
    await expectFailure(`ocidir://${dir3}:sample`, 1, /manifest blobs\/sha256\/[0-9a-f]{64} has digest/);

    // Bytes that match their digest but are not what the media type says.
    const dir5 = await umociLayout('not-gzip');
    const plain = await putBlob(dir5, Buffer.alloc(1024), 'x');
    await editManifest(dir5, 'sample', (m) => {
      Object.assign(m.layers[2] as Descriptor, { digest: plain.digest, size: plain.size });
    });
    await expectFailure(`ocidir://${dir5}:sample`, 1, /layer 2 blob blobs\/sha256\/[0-9a-f]{64} cannot be decompressed as gzip \(gzip: .*\); the layout is corrupt/);

    const dir6 = await umociLayout('truncated');
    const l3 = readJsonBlob<Manifest>(dir6, entryByTag(dir6, 'sample').digest).layers[3] as Descriptor;
    const full = await readFile(blobFile(dir6, l3.digest));
    await writeFile(blobFile(dir6, l3.digest), full.subarray(0, full.length >> 1));
    await expectFailure(`ocidir://${dir6}:sample`, 1, /layer 3 blob blobs\/sha256\/[0-9a-f]{64} is shorter than the \d+ bytes the manifest declares/);

    const dir4 = await umociLayout('size');
    await editManifest(dir4, 'sample', (m) => {
      (m.layers[0] as Descriptor).size -= 1;
    });
    await expectFailure(`ocidir://${dir4}:sample`, 1, /layer 0 blob blobs\/sha256\/[0-9a-f]{64} is longer than the \d+ bytes the manifest declares/);
  });

  test('../ or a bad digest in a descriptor', async () => {
    const dir = await umociLayout('dotdot');
    const index = readIndex(dir);
    (index.manifests[0] as Descriptor).digest = 'sha256:../../../etc/passwd';
    await writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
    await expectFailure(`ocidir://${dir}:sample`, 1, /index\.json: manifests\[0\]\.digest: hex part must be lowercase hexadecimal/);

    const dir2 = await umociLayout('bad-layer-digest');
    await editManifest(dir2, 'sample', (m) => {
      (m.layers[2] as Descriptor).digest = `sha256:${'A'.repeat(64)}`;
    });
    await expectFailure(`ocidir://${dir2}:sample`, 1, /layers\[2\]\.digest: hex part must be lowercase hexadecimal/);

    const dir3 = await umociLayout('bad-config-digest');
    await editManifest(dir3, 'sample', (m) => {
      m.config.digest = 'md5:0123456789abcdef0123456789abcdef';
    });
    await expectFailure(`ocidir://${dir3}:sample`, 1, /config\.digest: unsupported algorithm "md5"/);
  });

  test('an index pointing at itself, and indexes nested too deep', async () => {
    const dir = await umociLayout('self');
    // A blob cannot hold its own digest: the file named by it says otherwise, and is refused.
    const selfDigest = `sha256:${'e'.repeat(64)}`;
    await writeFile(blobFile(dir, selfDigest), JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: INDEX, digest: selfDigest, size: 10, platform: { os: 'linux', architecture: 'amd64' } }] }));
    await writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: INDEX, digest: selfDigest, size: (await readFile(blobFile(dir, selfDigest))).length, annotations: { [REF]: 'loop' } }] }));
    await expectFailure(`ocidir://${dir}:loop`, 1, /manifest blobs\/sha256\/e{64} has digest sha256:[0-9a-f]{64}; the layout is corrupt/);

    const dir2 = await umociLayout('deep');
    let next = entryByTag(dir2, 'sample');
    for (let i = 0; i < 12; i++) {
      next = await putBlob(dir2, JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ ...next, platform: { os: 'linux', architecture: 'amd64' } }] }), INDEX);
    }
    await writeFile(path.join(dir2, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...next, annotations: { [REF]: 'deep' } }] }));
    await expectFailure(`ocidir://${dir2}:deep`, 1, /indexes nest more than 8 levels deep; refusing the layout/);
  });

  test('unknown layer media type, and a config that is not an image config', async () => {
    const dir = await umociLayout('mediatype');
    await editManifest(dir, 'sample', (m) => {
      (m.layers[1] as Descriptor).mediaType = 'application/x-unknown+gzip';
    });
    await expectFailure(`ocidir://${dir}:sample`, 1, /layers\[1\]: unknown layer media type "application\/x-unknown\+gzip"/);
    const dir2 = await umociLayout('artifact');
    await editManifest(dir2, 'sample', (m) => {
      m.config.mediaType = 'application/vnd.example.artifact+json';
    });
    await expectFailure(`ocidir://${dir2}:sample`, 1, /config media type "application\/vnd\.example\.artifact\+json"; it is not a container image/);
  });

  test('oversized or malformed index.json, missing or wrong oci-layout', async () => {
    const dir = await umociLayout('big-index');
    const index = readFileSync(path.join(dir, 'index.json'), 'utf8');
    await writeFile(path.join(dir, 'index.json'), index + ' '.repeat(4 * 1024 * 1024));
    await expectFailure(`ocidir://${dir}:sample`, 1, /index\.json is over 4194304 bytes; refusing it/);

    await writeFile(path.join(dir, 'index.json'), '{"schemaVersion":2,"manifests":');
    await expectFailure(`ocidir://${dir}:sample`, 1, /index\.json: \(root\): not valid JSON/);

    const dir2 = await umociLayout('no-marker');
    await rm(path.join(dir2, 'oci-layout'));
    await expectFailure(`ocidir://${dir2}:sample`, 1, /no oci-layout in the directory; it is not an OCI image layout/);
    await writeFile(path.join(dir2, 'oci-layout'), '{"imageLayoutVersion":"9.0.0"}');
    await expectFailure(`ocidir://${dir2}:sample`, 1, /only 1\.x layouts are supported/);
  });

  test('a symlinked blob, blobs/sha256, index.json or manifest; a FIFO blob', async () => {
    const dir = await umociLayout('symlink');
    const layer = readJsonBlob<Manifest>(dir, entryByTag(dir, 'sample').digest).layers[0] as Descriptor;
    const outside = path.join(path.dirname(dir), 'outside');
    await cp(blobFile(dir, layer.digest), outside);
    await rm(blobFile(dir, layer.digest));
    await symlink(outside, blobFile(dir, layer.digest));
    await expectFailure(`ocidir://${dir}:sample`, 1, /layer 0 blob blobs\/sha256\/[0-9a-f]{64} is a symbolic link, not a regular file; refusing it/);

    const dir2 = await umociLayout('symlink-dir');
    const moved = path.join(path.dirname(dir2), 'elsewhere');
    await cp(path.join(dir2, 'blobs', 'sha256'), moved, { recursive: true });
    await rm(path.join(dir2, 'blobs', 'sha256'), { recursive: true });
    await symlink(moved, path.join(dir2, 'blobs', 'sha256'));
    await expectFailure(`ocidir://${dir2}:sample`, 1, /blobs\/sha256 is a symbolic link, not a directory; refusing to read blobs through it/);

    // The small documents are read the same way: index.json and a manifest through links.
    const dir4 = await umociLayout('symlink-index');
    await cp(path.join(dir4, 'index.json'), path.join(path.dirname(dir4), 'index-elsewhere.json'));
    await rm(path.join(dir4, 'index.json'));
    await symlink(path.join(path.dirname(dir4), 'index-elsewhere.json'), path.join(dir4, 'index.json'));
    await expectFailure(`ocidir://${dir4}:sample`, 1, /index\.json is a symbolic link, not a regular file; refusing it/);
    const dir5 = await umociLayout('symlink-manifest');
    const entry = entryByTag(dir5, 'sample');
    await cp(blobFile(dir5, entry.digest), path.join(path.dirname(dir5), 'manifest-elsewhere'));
    await rm(blobFile(dir5, entry.digest));
    await symlink(path.join(path.dirname(dir5), 'manifest-elsewhere'), blobFile(dir5, entry.digest));
    await expectFailure(`ocidir://${dir5}:sample`, 1, /manifest blobs\/sha256\/[0-9a-f]{64} is a symbolic link, not a regular file; refusing it/);

    const dir3 = await umociLayout('fifo');
    const l3 = readJsonBlob<Manifest>(dir3, entryByTag(dir3, 'sample').digest).layers[3] as Descriptor;
    await rm(blobFile(dir3, l3.digest));
    const mk = await run('mkfifo', [blobFile(dir3, l3.digest)]);
    assert.equal(mk.code, 0, mk.stderr);
    await expectFailure(`ocidir://${dir3}:sample`, 1, /layer 3 blob blobs\/sha256\/[0-9a-f]{64} is a FIFO, not a regular file; refusing it/);
  });

  test('a diff_id that does not match, and a layer count that does not', async () => {
    const dir = await umociLayout('diffid');
    await editManifest(dir, 'sample', (m) => {
      const [a, b] = [m.layers[0] as Descriptor, m.layers[1] as Descriptor];
      m.layers[0] = b;
      m.layers[1] = a;
    });
    await expectFailure(`ocidir://${dir}:sample`, 1, /layer [01] \(blob sha256:[0-9a-f]{64}\) uncompresses to sha256:[0-9a-f]{64}, but the config's diff_id is/);
    const dir2 = await umociLayout('count');
    await editManifest(dir2, 'sample', (m) => {
      m.layers.pop();
    });
    await expectFailure(`ocidir://${dir2}:sample`, 1, /the manifest lists 4 layers but the config's rootfs\.diff_ids has 5/);
  });

  test('a missing directory, a file instead, a bad tag: usage errors (exit 2)', async () => {
    const work = await tmpDir('ocidir-usage');
    await expectFailure(`ocidir://${work}/nope:sample`, 2, /ocidir:\/\/.*\/nope:sample: .*\/nope does not exist; give the directory of an OCI image layout/);
    await writeFile(path.join(work, 'file'), 'x');
    await expectFailure(`ocidir://${work}/file`, 2, /is a regular file, not a directory/);
    await expectFailure(`ocidir://${work}:-bad`, 2, /bad tag "-bad"/);
    await expectFailure(`ocidir://${fixturePath('oci')}:sample?colour=red`, 2, /colour/);
    assert.ok(existsSync(work));
    await mkdir(path.join(work, 'empty'));
    await expectFailure(`ocidir://${work}/empty`, 1, /no oci-layout in the directory/);
  });
});
