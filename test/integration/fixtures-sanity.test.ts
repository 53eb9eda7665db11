// Sanity checks of the fixture set itself (test/fixtures/build.sh) and of the
// tool wrappers the integration tests rely on: if these fail, every other
// integration failure is suspect.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  BAD_ARCHIVES,
  cleanupTmpDirs,
  fixture,
  fixtureIndex,
  fixturePath,
  podman,
  repoRoot,
  run,
  SAMPLE_ARCHIVES,
  sha256File,
  skopeo,
  tmpDir,
  VALID_ARCHIVES,
} from './fixtures.js';

after(async () => {
  await cleanupTmpDirs();
});

interface SkopeoInspect {
  Layers: string[];
  Labels: Record<string, string> | null;
  Architecture: string;
  Os: string;
}

test('fixtures.json lists files that exist with the recorded size and hash', async () => {
  const index = fixtureIndex();
  const names = Object.keys(index.fixtures);
  for (const required of ['oci', ...VALID_ARCHIVES, ...BAD_ARCHIVES]) {
    assert.ok(names.includes(required), `fixtures.json lacks ${required}`);
  }
  for (const [name, entry] of Object.entries(index.fixtures)) {
    const p = fixturePath(name);
    assert.ok(existsSync(p), `${p} missing`);
    if (entry.size !== undefined) assert.equal(statSync(p).size, entry.size, `${name} size`);
    if (entry.sha256 !== undefined) assert.equal(await sha256File(p), `sha256:${entry.sha256}`, `${name} sha256`);
    if (entry.valid) {
      assert.ok(entry.images.length >= 1, `${name} has no images`);
      for (const img of entry.images) {
        assert.equal(img.diffIds.length, img.layerCount, `${name}: diff_ids vs layer count`);
        assert.match(img.configDigest ?? '', /^sha256:[0-9a-f]{64}$/);
      }
    } else {
      assert.notEqual(entry.defect, null, `${name} is invalid but has no defect`);
    }
  }
});

test('the sample image has the edge cases the fixtures promise', () => {
  const { sample } = fixtureIndex();
  assert.ok(sample.layerCount >= 5);
  assert.ok(sample.repeatedDiffIds.length >= 1, 'expected a layer that appears twice');
  for (const d of sample.repeatedDiffIds) {
    assert.ok(sample.diffIds.filter((x) => x === d).length >= 2);
  }
  assert.equal(sample.notable.bigFile.size, 2 * 1024 * 1024);
  assert.match(sample.notable.nonAsciiName, /[^\x00-\x7f]/);
  assert.ok(Buffer.byteLength(sample.notable.longPath) > 100);
  // Every valid sample:v1 archive carries exactly the OCI source's diff_ids.
  for (const name of SAMPLE_ARCHIVES) {
    assert.deepEqual(fixture(name).diffIds, sample.diffIds, name);
    assert.equal(fixture(name).configDigest, sample.configDigest, name);
  }
  assert.equal(fixture('docker25-manifest-first.tar').manifestJsonIndex, 0);
  assert.ok((fixture('docker25-gzip.tar').manifestJsonIndex ?? 0) > 0);
});

test('skopeo inspect agrees with fixtures.json for the legacy archives', async () => {
  for (const name of ['skopeo-legacy.tar', 'podman-legacy.tar', 'docker-classic.tar']) {
    const expected = fixture(name);
    const r = await skopeo(['inspect', `docker-archive:${fixturePath(name)}`]);
    assert.equal(r.code, 0, `skopeo inspect ${name}: ${r.stderr}`);
    const info = JSON.parse(r.stdout) as SkopeoInspect;
    assert.equal(info.Layers.length, expected.layerCount, `${name} layer count`);
    // docker-archive layers are uncompressed, so skopeo reports the diff_ids.
    assert.deepEqual(info.Layers, expected.diffIds, `${name} layers`);
    assert.equal(info.Os, 'linux');
  }
});

test('skopeo reads the second image of podman-multi.tar', async () => {
  const multi = fixture('podman-multi.tar');
  assert.equal(multi.images.length, 2);
  const second = multi.images[1];
  assert.ok(second !== undefined);
  const r = await skopeo(['inspect', `docker-archive:${fixturePath('podman-multi.tar')}:@1`]);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as SkopeoInspect;
  assert.deepEqual(info.Layers, second.diffIds);
  // Both images share the base layer.
  assert.equal(multi.images[0]?.diffIds[0], second.diffIds[0]);
});

test('podman (isolated store) loads skopeo-legacy.tar with the expected layers', async () => {
  const expected = fixture('skopeo-legacy.tar');
  const load = await podman(['load', '-q', '-i', fixturePath('skopeo-legacy.tar')]);
  assert.equal(load.code, 0, `podman load: ${load.stderr}`);
  try {
    const tag = expected.repoTags[0];
    assert.ok(tag !== undefined);
    const insp = await podman(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', tag]);
    assert.equal(insp.code, 0, insp.stderr);
    assert.deepEqual(JSON.parse(insp.stdout) as string[], expected.diffIds);
  } finally {
    const rm = await podman(['rmi', '--all', '--force']);
    assert.equal(rm.code, 0, rm.stderr);
  }
});

test('examples/make-sample-image.mjs writes an archive skopeo accepts', async () => {
  const dir = await tmpDir('sample-image');
  const out = path.join(dir, 'sample-image.tar');
  const gen = await run(process.execPath, [path.join(repoRoot, 'examples', 'make-sample-image.mjs'), out]);
  assert.equal(gen.code, 0, gen.stderr);
  const r = await skopeo(['inspect', `docker-archive:${out}`]);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as SkopeoInspect;
  assert.equal(info.Layers.length, 3);
  // And it copies cleanly, which makes skopeo verify every layer's diff_id.
  const copy = await skopeo(['copy', '-q', `docker-archive:${out}`, `oci:${path.join(dir, 'oci')}:sample`]);
  assert.equal(copy.code, 0, copy.stderr);
});
