// Multi-platform copies between registries (a real docker-registry, two of them): a
// three-platform OCI index built in the test setup is copied whole with --all-platforms
// (the index keeps its digest: every image passes through unchanged), a chosen subset
// with --platforms (a new index of those, in the source's order), and with a filter
// (every platform rewritten, the new index naming the new manifests); skopeo reads each
// back. Misuse is one line.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { skopeo } from './fixtures.js';
import { pushMultiPlatform, startRegistry, type MultiPlatformImage, type Registry } from '../registry/harness.js';
import { assertFailsOneLine, assertOk, cli, stdoutJson, workspace } from '../registry/cli.js';

let source: Registry;
let target: Registry;
let multi: MultiPlatformImage;

before(async () => {
  source = await startRegistry();
  target = await startRegistry();
  multi = await pushMultiPlatform(source, 'multi:v1');
});

after(async () => {
  await source?.stop();
  await target?.stop();
});

interface RawIndex {
  mediaType: string;
  manifests: { digest: string; platform: { os: string; architecture: string; variant?: string } }[];
}

async function raw<T>(ref: string): Promise<{ doc: T; digest: string }> {
  const r = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  assert.equal(r.code, 0, r.stderr);
  const { createHash } = await import('node:crypto');
  return { doc: JSON.parse(r.stdout) as T, digest: `sha256:${createHash('sha256').update(r.stdout).digest('hex')}` };
}

const platformOf = (m: RawIndex['manifests'][number]) => [m.platform.os, m.platform.architecture, ...(m.platform.variant ? [m.platform.variant] : [])].join('/');

/** skopeo copies every platform back out (each manifest, config and blob read and verified). */
async function copyAllBack(ref: string, dir: string): Promise<void> {
  const r = await skopeo(['copy', '--all', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}:back`]);
  assert.equal(r.code, 0, r.stderr);
}

describe('multi-platform copies', () => {
  test('--all-platforms: every platform and the index; unchanged, the index keeps its digest', async () => {
    const ws = await workspace('platforms-all');
    const dest = `${target.host}/copy/multi:v1`;
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', '--all-platforms', `registry://${multi.reference}`, `registry://${dest}`]), ws);
    const index = await raw<RawIndex>(dest);
    assert.equal(index.digest, multi.indexDigest, 'the source index, byte for byte');
    assert.deepEqual(index.doc.manifests.map(platformOf), multi.platforms.map((p) => p.platform));
    const summary = stdoutJson<{ images: number; platforms: { platform: string; source: string; pushed: string }[] }>(r);
    assert.equal(summary.images, 3);
    for (const p of summary.platforms) assert.equal(p.pushed, p.source, `${p.platform} passed through unchanged`);
    assert.match(r.stderr, /^Summary: 3\/3 images, /m);
    await copyAllBack(dest, ws.out('back'));
  });

  test('--platforms: the chosen ones, in the source index order, under a new index', async () => {
    const ws = await workspace('platforms-some');
    const dest = `${target.host}/copy/some:v1`;
    assertOk(await cli(ws, ['--insecure', 'process', '--platforms', 'linux/amd64,linux/arm64', `registry://${multi.reference}`, `registry://${dest}`]), ws);
    const index = await raw<RawIndex>(dest);
    assert.deepEqual(index.doc.manifests.map(platformOf), ['linux/arm64', 'linux/amd64'], 'source order, not the order asked');
    assert.equal(index.doc.mediaType, 'application/vnd.oci.image.index.v1+json');
    for (const m of index.doc.manifests) assert.equal(m.digest, multi.platforms.find((p) => p.platform === platformOf(m))?.manifestDigest);
    await copyAllBack(dest, ws.out('back'));
  });

  test('with a filter: every platform rewritten; the new index names the new manifests', async () => {
    const ws = await workspace('platforms-filter');
    const dest = `${target.host}/copy/filtered:v1`;
    assertOk(await cli(ws, ['--insecure', 'process', '--all-platforms', `registry://${multi.reference}`, `registry://${dest}`, '-f', 'normalize-timestamps:ts=0']), ws);
    const index = await raw<RawIndex>(dest);
    assert.equal(index.doc.manifests.length, 3);
    for (const m of index.doc.manifests) {
      assert.notEqual(m.digest, multi.platforms.find((p) => p.platform === platformOf(m))?.manifestDigest, `${platformOf(m)} was rewritten`);
    }
    await copyAllBack(dest, ws.out('back'));
  });

  test('misuse is one line: a platform not in the index, a non-registry destination, both options', async () => {
    const ws = await workspace('platforms-misuse');
    const missing = assertFailsOneLine(await cli(ws, ['--insecure', 'process', '--platforms', 'linux/s390x', `registry://${multi.reference}`, `registry://${target.host}/x/y:v1`]), ws, 2);
    assert.match(missing, /no image for linux\/s390x in the index \(available: linux\/arm64, linux\/arm\/v7, linux\/amd64\)/);
    const notRegistry = assertFailsOneLine(await cli(ws, ['--insecure', 'process', '--all-platforms', `registry://${multi.reference}`, `dir://${ws.out('store')}`]), ws, 2);
    assert.match(notRegistry, /copy an index from a registry:\/\/ source to a registry:\/\/ destination/);
    const both = assertFailsOneLine(await cli(ws, ['--insecure', 'process', '--all-platforms', '--platforms', 'linux/amd64', `registry://${multi.reference}`, `registry://${target.host}/x/y:v1`]), ws, 2);
    assert.match(both, /give --all-platforms or --platforms, not both/);
    // The index is pushed under a tag: a destination by digest (or without a tag) has none.
    for (const dest of [`${target.host}/x/y@${multi.indexDigest}`, `${target.host}/x/y`]) {
      const untagged = assertFailsOneLine(await cli(ws, ['--insecure', 'process', '--all-platforms', `registry://${multi.reference}`, `registry://${dest}`]), ws, 2);
      assert.match(untagged, /a multi-platform copy needs a destination tag/);
    }
  });
});
