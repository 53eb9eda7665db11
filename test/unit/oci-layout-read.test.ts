// Behaviour of src/core/plans/oci-layout-read.ts: the oci-layout marker, index.json,
// choosing an image by tag, digest and platform through nested indexes, layer media types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { ImageIndex } from '../../src/core/codecs/oci.js';
import type { Digest } from '../../src/core/digest.js';
import { DEFAULT_PLATFORM } from '../../src/core/platform.js';
import {
  type BlobRequest,
  checkLayoutMarker,
  decodeLayoutIndex,
  digestOfBlobPath,
  layerMediaTypeCompression,
  layoutTags,
  MAX_INDEX_DEPTH,
  resolveLayoutImage,
  selectLayoutEntry,
} from '../../src/core/plans/oci-layout-read.js';

const enc = (s: string) => new TextEncoder().encode(s);
const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;
const hex = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const REF = 'org.opencontainers.image.ref.name';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';

const manifestBytes = (n: number) =>
  enc(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: hex(String(n)), size: 2 }, layers: [] }));
const entry = (digest: Digest, extra: Record<string, unknown> = {}) => ({ mediaType: MANIFEST, digest, size: 10, ...extra });
const index = (manifests: unknown[]) => ({ schemaVersion: 2, manifests }) as unknown as ImageIndex;

/** A blob store in memory; `read` does not verify (so loops can be built). */
function store(blobs: Record<string, Uint8Array>) {
  const reads: string[] = [];
  return {
    reads,
    read: async (r: BlobRequest) => {
      reads.push(r.digest);
      const b = blobs[r.digest];
      if (!b) throw new Error(`no blob ${r.digest}`);
      return b;
    },
  };
}

test('checkLayoutMarker accepts 1.x and refuses anything else with the reason', () => {
  assert.deepEqual(checkLayoutMarker(enc('{"imageLayoutVersion":"1.0.0"}')), E.right('1.0.0'));
  assert.ok(E.isLeft(checkLayoutMarker(enc('{"imageLayoutVersion":"2.0.0"}'))));
  const empty = checkLayoutMarker(enc('{}'));
  assert.ok(E.isLeft(empty) && /no "imageLayoutVersion"/.test(empty.left));
  const bad = checkLayoutMarker(enc('not json'));
  assert.ok(E.isLeft(bad) && /not valid JSON/.test(bad.left));
});

test('decodeLayoutIndex refuses a manifest, oversized and deeply nested documents', () => {
  assert.ok(E.isRight(decodeLayoutIndex('index.json', enc(JSON.stringify(index([entry(hex('a'))]))))));
  const m = decodeLayoutIndex('index.json', manifestBytes(1));
  assert.ok(E.isLeft(m) && /not an image index/.test(m.left));
  const big = decodeLayoutIndex('index.json', new Uint8Array(4 * 1024 * 1024 + 1));
  assert.ok(E.isLeft(big) && /over the 4194304-byte limit/.test(big.left));
  const deep = decodeLayoutIndex('index.json', enc(`${'['.repeat(200)}${']'.repeat(200)}`));
  assert.ok(E.isLeft(deep) && /nested more than/.test(deep.left));
  const badDigest = decodeLayoutIndex('index.json', enc(JSON.stringify(index([entry('sha256:../../etc/passwd' as Digest)]))));
  assert.ok(E.isLeft(badDigest) && /manifests\[0\]\.digest/.test(badDigest.left));
});

test('selectLayoutEntry picks by tag, by digest, the only entry, or refuses listing the tags', () => {
  const idx = index([entry(hex('a'), { annotations: { [REF]: 'one' } }), entry(hex('b'), { annotations: { [REF]: 'two' } })]);
  assert.deepEqual(layoutTags(idx), ['one', 'two']);
  const byTag = selectLayoutEntry(idx, { tag: 'two' });
  assert.ok(E.isRight(byTag) && byTag.right._tag === 'Entry' && byTag.right.descriptor.digest === hex('b'));
  const missing = selectLayoutEntry(idx, { tag: 'three' });
  assert.ok(E.isLeft(missing) && missing.left.includes('"one", "two"'));
  const none = selectLayoutEntry(idx, {});
  assert.ok(E.isLeft(none) && /lists 2 images/.test(none.left) && none.left.includes('"one"'));
  const byDigest = selectLayoutEntry(idx, { digest: hex('a') });
  assert.ok(E.isRight(byDigest) && byDigest.right._tag === 'Entry');
  const blob = selectLayoutEntry(idx, { digest: hex('c') });
  assert.deepEqual(blob, E.right({ _tag: 'Blob', digest: hex('c') }));
  const only = selectLayoutEntry(index([entry(hex('a'))]), {});
  assert.ok(E.isRight(only) && only.right._tag === 'Entry');
  assert.ok(E.isLeft(selectLayoutEntry(index([]), {})));
});

test('selectLayoutEntry: untagged entries that all carry a platform are chosen from as an index', () => {
  const plat = (architecture: string) => ({ platform: { os: 'linux', architecture } });
  const idx = index([entry(hex('a'), plat('amd64')), entry(hex('b'), plat('arm64'))]);
  const start = selectLayoutEntry(idx, {});
  assert.ok(E.isRight(start) && start.right._tag === 'Platforms' && start.right.manifests.length === 2);
  const tagged = index([entry(hex('a'), { ...plat('amd64'), annotations: { [REF]: 'x' } }), entry(hex('b'), { ...plat('arm64'), annotations: { [REF]: 'x' } })]);
  const both = selectLayoutEntry(tagged, { tag: 'x' });
  assert.ok(E.isRight(both) && both.right._tag === 'Platforms');
  const ambiguous = selectLayoutEntry(index([entry(hex('a'), { annotations: { [REF]: 'x' } }), entry(hex('b'), { annotations: { [REF]: 'x' } })]), { tag: 'x' });
  assert.ok(E.isLeft(ambiguous) && /2 different images/.test(ambiguous.left));
});

test('resolveLayoutImage follows a nested index by platform, as registry:// chooses', async () => {
  const amd = manifestBytes(1);
  const arm = manifestBytes(2);
  const nested = enc(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [
    { mediaType: MANIFEST, digest: sha(amd), size: amd.length, platform: { os: 'linux', architecture: 'amd64' } },
    { mediaType: MANIFEST, digest: sha(arm), size: arm.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ] }));
  const s = store({ [sha(amd)]: amd, [sha(arm)]: arm, [sha(nested)]: nested });
  const start = { _tag: 'Entry' as const, descriptor: { mediaType: INDEX, digest: sha(nested), size: nested.length } };
  const a = await resolveLayoutImage(start, DEFAULT_PLATFORM, s.read);
  assert.ok(E.isRight(a) && a.right.digest === sha(amd) && a.right.platform === 'linux/amd64');
  const b = await resolveLayoutImage(start, { os: 'linux', architecture: 'arm64', variant: '' }, s.read);
  assert.ok(E.isRight(b) && b.right.digest === sha(arm));
  const c = await resolveLayoutImage(start, { os: 'linux', architecture: 's390x', variant: '' }, s.read);
  assert.ok(E.isLeft(c) && c.left.includes('linux/amd64, linux/arm64/v8') && /no image for linux\/s390x/.test(c.left));
});

test('resolveLayoutImage refuses a loop of indexes and too deep a chain', async () => {
  // A read that does not verify digests lets an index name itself: the loop guard must stop it.
  const self = hex('e');
  const loop = enc(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: INDEX, digest: self, size: 1, platform: { os: 'linux', architecture: 'amd64' } }] }));
  const s = store({ [self]: loop });
  const r = await resolveLayoutImage({ _tag: 'Blob', digest: self }, DEFAULT_PLATFORM, s.read);
  assert.ok(E.isLeft(r) && /refers back to itself/.test(r.left));
  assert.equal(s.reads.length, 1);

  const blobs: Record<string, Uint8Array> = {};
  let next = manifestBytes(9);
  blobs[sha(next)] = next;
  for (let i = 0; i < MAX_INDEX_DEPTH + 2; i++) {
    const idx = enc(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: INDEX, digest: sha(next), size: next.length, platform: { os: 'linux', architecture: 'amd64' } }] }));
    blobs[sha(idx)] = idx;
    next = idx;
  }
  const deep = await resolveLayoutImage({ _tag: 'Blob', digest: sha(next) }, DEFAULT_PLATFORM, store(blobs).read);
  assert.ok(E.isLeft(deep) && /more than 8 levels/.test(deep.left));
});

test('layerMediaTypeCompression knows OCI and Docker layer types and refuses others', () => {
  assert.deepEqual(layerMediaTypeCompression('application/vnd.oci.image.layer.v1.tar+gzip'), E.right('gzip'));
  assert.deepEqual(layerMediaTypeCompression('application/vnd.oci.image.layer.v1.tar+zstd'), E.right('zstd'));
  assert.deepEqual(layerMediaTypeCompression('application/vnd.oci.image.layer.v1.tar'), E.right('none'));
  assert.deepEqual(layerMediaTypeCompression('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip'), E.right('gzip'));
  assert.deepEqual(layerMediaTypeCompression('application/vnd.docker.image.rootfs.diff.tar.gzip'), E.right('gzip'));
  assert.deepEqual(layerMediaTypeCompression('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'), E.right('gzip'));
  const bad = layerMediaTypeCompression('application/x-evil+gzip');
  assert.ok(E.isLeft(bad) && /unknown layer media type/.test(bad.left));
});

test('digestOfBlobPath validates the digest a blobs/ path names', () => {
  assert.deepEqual(digestOfBlobPath(`blobs/sha256/${'a'.repeat(64)}`), E.right(hex('a')));
  assert.equal(digestOfBlobPath('layer.tar'), undefined);
  assert.ok(E.isLeft(digestOfBlobPath('blobs/sha256/..') as E.Either<string, Digest>));
  assert.ok(E.isLeft(digestOfBlobPath(`blobs/md5/${'a'.repeat(32)}`) as E.Either<string, Digest>));
  assert.ok(E.isLeft(digestOfBlobPath(`blobs/sha256/${'A'.repeat(64)}`) as E.Either<string, Digest>));
});

test('resolveLayoutImage refuses a blob whose body contradicts the descriptor media type', async () => {
  const m = manifestBytes(1);
  const asIndex = { _tag: 'Entry' as const, descriptor: { mediaType: INDEX, digest: sha(m), size: m.length } };
  const r = await resolveLayoutImage(asIndex, DEFAULT_PLATFORM, store({ [sha(m)]: m }).read);
  assert.ok(E.isLeft(r) && /body says application\/vnd\.oci\.image\.manifest\.v1\+json/.test(r.left));
});
