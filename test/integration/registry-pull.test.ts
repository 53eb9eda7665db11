// registry:// -> dir:// and tar:// with the real CLI against a real
// docker-registry (distribution 2.8) on 127.0.0.1, the images pushed by skopeo
// from the fixture OCI layout: by tag and by digest, OCI and Docker media
// types, ?insecure=true and --insecure; the tar:// output loads in podman.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { cleanupTmpDirs, podmanLoadAndInspect, skopeo } from './fixtures.js';
import { errorLines, hexOf, summaryLines } from './cli-helpers.js';
import type { PushedImage, Registry } from '../registry/harness.js';
import { ociImage, registryWith, sample } from '../support/sample-registry.js';
import { assertDirStore, assertFailsOneLine, assertOk, cli, stdoutJson, workspace, type RegistrySummary } from '../registry/cli.js';

let registry: Registry;
let oci: PushedImage;
let docker: PushedImage;
let other: PushedImage;

before(async () => {
  ({ registry, pushed: [oci, docker, other] } = await registryWith([['sample', 'sample:v1'], ['sample', 'team/sample-docker:v1', 'v2s2'], ['other', 'other:v2']]));
});

after(async () => {
  await registry?.stop();
  await cleanupTmpDirs();
});

describe('registry:// -> dir://', () => {
  test('by tag with ?insecure=true: layers hash to the diff_ids, -O json summary', async () => {
    const ws = await workspace('pull-dir');
    const store = ws.out('store');
    const r = assertOk(await cli(ws, ['-O', 'json', 'process', `registry://${oci.reference}?insecure=true`, `dir://${store}`]), ws);
    await assertDirStore(store, { configDigest: sample().configDigest as string, diffIds: sample().diffIds, repoTag: oci.reference });
    const summary = stdoutJson<RegistrySummary>(r);
    assert.equal(summary.images, 1);
    assert.equal(summary.layers, 5);
    assert.equal(summary.layersSkipped, 1, 'the repeated empty layer is stored once');
    assert.equal(summary.retries, 0);
    assert.equal(summary.rateLimited, 0);
    const blobBytes = new Set((sample().layers ?? []).map((l) => `${l.digest} ${l.size}`));
    const expected = [...blobBytes].reduce((n, e) => n + Number(e.split(' ')[1]), 0);
    assert.equal(summary['downloaded'], expected, 'every distinct blob downloaded once');
    assert.equal(summary['image'], oci.reference);
    assert.equal(summaryLines(r.stderr).length, 1);
    assert.match(summaryLines(r.stderr)[0] as string, / written \([\d.]+ (KB|MB) downloaded\), /);
  });

  test('global --insecure (after the command) and a digest reference NAME@sha256:…', async () => {
    const ws = await workspace('pull-digest');
    const store = ws.out('store');
    assert.equal(oci.manifestDigest, sample().manifestDigest);
    const ref = `${registry.host}/sample@${oci.manifestDigest}`;
    assertOk(await cli(ws, ['process', `registry://${ref}`, `dir://${store}`, '--insecure']), ws);
    const manifest = readFileSync(`${store}/manifest.json`, 'utf8');
    const repoTags = (JSON.parse(manifest) as Array<{ RepoTags: string[] }>)[0]?.RepoTags ?? [];
    // A digest reference has no tag: the image is stored untagged (a RepoTag cannot name a digest).
    assert.deepEqual(repoTags, [], manifest);
    await assertDirStore(store, { configDigest: sample().configDigest as string, diffIds: sample().diffIds, repoTag: undefined });
  });

  test('--insecure before the command; Docker media types (skopeo --format v2s2); nested repository name', async () => {
    const ws = await workspace('pull-docker');
    const store = ws.out('store');
    assertOk(await cli(ws, ['--insecure', 'process', `registry://${docker.reference}`, `dir://${store}`]), ws);
    // The config blob is carried over unchanged by the conversion; layers are the same gzip blobs.
    await assertDirStore(store, { configDigest: sample().configDigest as string, diffIds: sample().diffIds, repoTag: docker.reference });
  });

  test('two images into one store share the base layer (the second skips it)', async () => {
    const ws = await workspace('pull-two');
    const store = ws.out('store');
    assertOk(await cli(ws, ['--insecure', 'process', `registry://${oci.reference}`, `dir://${store}?unique_names=true`]), ws);
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `registry://${other.reference}`, `dir://${store}?unique_names=true`]), ws);
    const summary = stdoutJson<RegistrySummary>(r);
    assert.equal(summary.layers, 2);
    assert.equal(summary.layersSkipped, 1, 'the shared base layer is already in the store');
    assert.ok(existsSync(`${store}/${hexOf(ociImage('other').configDigest as string)}.json`));
  });
});

describe('registry:// -> tar://', () => {
  let archive = '';

  test('writes a docker-loadable archive skopeo can read', async () => {
    const ws = await workspace('pull-tar');
    archive = ws.out('sample.tar');
    assertOk(await cli(ws, ['--insecure', 'process', `registry://${oci.reference}`, `tar://${archive}`]), ws);
    const r = await skopeo(['inspect', `docker-archive:${archive}`]);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout) as { Layers: string[]; Architecture: string; Os: string; RepoTags: string[] };
    assert.deepEqual(info.Layers, sample().diffIds);
    assert.equal(info.Architecture, 'amd64');
    const raw = await skopeo(['inspect', '--raw', `docker-archive:${archive}`]);
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal((JSON.parse(raw.stdout) as { config: { digest: string } }).config.digest, sample().configDigest);
  });

  test('podman load accepts it (private store; rmi afterwards)', async () => {
    assert.notEqual(archive, '', 'needs the previous test');
    const { ref, id, layers } = await podmanLoadAndInspect(archive);
    assert.match(ref, /sample:v1$/);
    assert.equal(id, hexOf(sample().configDigest as string), 'image id = config digest');
    assert.deepEqual(layers, sample().diffIds);
  });

  test('by digest reference too', async () => {
    const ws = await workspace('pull-tar-digest');
    const out = ws.out('by-digest.tar');
    assertOk(await cli(ws, ['--insecure', 'process', `registry://${registry.host}/sample@${oci.manifestDigest}`, `tar://${out}`]), ws);
    const r = await skopeo(['inspect', '--raw', `docker-archive:${out}`]);
    assert.equal(r.code, 0, r.stderr);
    const manifest = JSON.parse(r.stdout) as { config: { digest: string }; layers: Array<{ digest: string }> };
    assert.equal(manifest.config.digest, sample().configDigest);
    assert.deepEqual(
      manifest.layers.map((l) => l.digest),
      sample().diffIds,
    );
  });
});

describe('failures', () => {
  test('an unknown tag: exit 1, one line naming the image, nothing written', async () => {
    const ws = await workspace('pull-unknown');
    const store = ws.out('store');
    const r = await cli(ws, ['--insecure', 'process', `registry://${registry.host}/sample:nope`, `dir://${store}`]);
    const line = assertFailsOneLine(r, ws);
    assert.match(line, /sample/);
    assert.match(line, /nope/);
    assert.equal(existsSync(store), false, 'no store left');
  });

  test('an unknown repository: exit 1, one line', async () => {
    const ws = await workspace('pull-unknown-repo');
    const out = ws.out('x.tar');
    const r = await cli(ws, ['--insecure', 'process', `registry://${registry.host}/does/not-exist:v1`, `tar://${out}`]);
    const line = assertFailsOneLine(r, ws);
    assert.match(line, /does\/not-exist/);
    assert.equal(existsSync(out), false);
  });

  test('a digest that is not in the repository: exit 1, one line naming it', async () => {
    const ws = await workspace('pull-bad-digest');
    const missing = `sha256:${'0'.repeat(64)}`;
    const r = await cli(ws, ['--insecure', 'process', `registry://${registry.host}/sample@${missing}`, `dir://${ws.out('store')}`]);
    const line = assertFailsOneLine(r, ws);
    assert.ok(line.includes(missing) || line.includes('sample'), line);
  });

  test('plain HTTP registry without --insecure: exit 1, one line', async () => {
    const ws = await workspace('pull-no-insecure');
    const r = await cli(ws, ['--retries', '0', 'process', `registry://${oci.reference}`, `dir://${ws.out('store')}`]);
    const line = assertFailsOneLine(r, ws);
    assert.ok(line.includes(registry.host), line);
    assert.deepEqual(errorLines(r.stderr), [line]);
  });
});
