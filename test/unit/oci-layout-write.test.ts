// Behaviour of src/core/plans/oci-layout-write.ts: the manifest and index.json the ocidir:// output writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import type { Digest } from '../../src/core/digest.js';
import { MediaTypes } from '../../src/core/media-types.js';
import { REF_NAME_ANNOTATION } from '../../src/core/plans/oci-layout.js';
import {
  blobsNamedByManifest,
  decodeLayoutIndex,
  defaultRefName,
  imageManifestBytes,
  type LayoutIndex,
  mergeLayoutIndex,
  ociLayerMediaType,
} from '../../src/core/plans/oci-layout-write.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const json = (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) as Record<string, any>;

function index(v: unknown): LayoutIndex {
  const r = decodeLayoutIndex(enc(v));
  if (E.isLeft(r)) throw new Error(r.left.message);
  return r.right;
}

test('Docker layer media types become their OCI equivalents; OCI types stay; unknown ones follow the compression', () => {
  assert.equal(ociLayerMediaType(MediaTypes.dockerLayerGzip, 'gzip'), MediaTypes.ociLayerGzip);
  assert.equal(ociLayerMediaType(MediaTypes.dockerLayerForeignGzip, 'gzip'), MediaTypes.ociLayerNondistributableGzip);
  assert.equal(ociLayerMediaType(MediaTypes.dockerLayerZstd, 'zstd'), MediaTypes.ociLayerZstd);
  assert.equal(ociLayerMediaType(MediaTypes.dockerLayerTar, 'none'), MediaTypes.ociLayer);
  assert.equal(ociLayerMediaType(MediaTypes.ociLayerNondistributableZstd, 'zstd'), MediaTypes.ociLayerNondistributableZstd);
  assert.equal(ociLayerMediaType('application/x-odd', 'zstd'), MediaTypes.ociLayerZstd);
  assert.equal(ociLayerMediaType('application/x-odd', 'none'), MediaTypes.ociLayer);
});

test('the image manifest is an OCI manifest, with equal bytes for equal plans', () => {
  const plan = { config: { digest: d('c'), size: 10 }, layers: [{ digest: d('a'), size: 5, mediaType: MediaTypes.ociLayerGzip }] };
  const bytes = imageManifestBytes(plan);
  assert.deepEqual(bytes, imageManifestBytes(plan));
  const m = json(bytes);
  assert.equal(m['schemaVersion'], 2);
  assert.equal(m['mediaType'], MediaTypes.ociManifest);
  assert.deepEqual(m['config'], { mediaType: MediaTypes.ociConfig, digest: d('c'), size: 10 });
  assert.deepEqual(m['layers'], [{ mediaType: MediaTypes.ociLayerGzip, digest: d('a'), size: 5 }]);
});

test('the default ref.name is the source tag; none without a usable one', () => {
  assert.equal(defaultRefName({ name: 'busybox', tag: 'latest' }), 'latest');
  assert.equal(defaultRefName({ name: 'unknown', tag: 'unknown' }), undefined);
  assert.equal(defaultRefName({ name: 'busybox', tag: d('e'), digest: d('e') }), undefined);
});

test('merging keeps other images and unknown fields, and appends the new entry', () => {
  const existing = index({
    schemaVersion: 2,
    annotations: { keep: 'me' },
    manifests: [{ mediaType: MediaTypes.ociManifest, digest: d('1'), size: 1, annotations: { [REF_NAME_ANNOTATION]: 'old' }, extra: true }],
  });
  const merged = json(mergeLayoutIndex(existing, { digest: d('2'), size: 2, refName: 'new', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }));
  assert.equal(merged['mediaType'], MediaTypes.ociIndex);
  assert.deepEqual(merged['annotations'], { keep: 'me' });
  assert.equal(merged['manifests'].length, 2);
  assert.equal(merged['manifests'][0].extra, true);
  assert.deepEqual(merged['manifests'][1], {
    mediaType: MediaTypes.ociManifest,
    digest: d('2'),
    size: 2,
    platform: { architecture: 'arm64', os: 'linux', variant: 'v8' },
    annotations: { [REF_NAME_ANNOTATION]: 'new' },
  });
});

test('a tag names one manifest: the entry that held it is dropped; other tags of that manifest stay', () => {
  const existing = index({
    schemaVersion: 2,
    manifests: [
      { mediaType: MediaTypes.ociManifest, digest: d('1'), size: 1, annotations: { [REF_NAME_ANNOTATION]: 'v1' } },
      { mediaType: MediaTypes.ociManifest, digest: d('1'), size: 1, annotations: { [REF_NAME_ANNOTATION]: 'stable' } },
    ],
  });
  const merged = json(mergeLayoutIndex(existing, { digest: d('2'), size: 2, refName: 'v1' }));
  const names = merged['manifests'].map((m: any) => `${m.annotations[REF_NAME_ANNOTATION]}=${m.digest}`);
  assert.deepEqual(names, [`stable=${d('1')}`, `v1=${d('2')}`]);
});

test('an untagged image replaces an untagged entry of the same digest only', () => {
  const existing = index({
    schemaVersion: 2,
    manifests: [
      { mediaType: MediaTypes.ociManifest, digest: d('1'), size: 1 },
      { mediaType: MediaTypes.ociManifest, digest: d('1'), size: 1, annotations: { [REF_NAME_ANNOTATION]: 'v1' } },
      { mediaType: MediaTypes.ociManifest, digest: d('3'), size: 1 },
    ],
  });
  const merged = json(mergeLayoutIndex(existing, { digest: d('1'), size: 1, refName: undefined }));
  assert.deepEqual(
    merged['manifests'].map((m: any) => [m.digest, m.annotations?.[REF_NAME_ANNOTATION]]),
    [
      [d('1'), 'v1'],
      [d('3'), undefined],
      [d('1'), undefined],
    ],
  );
  assert.equal(merged['manifests'][2].annotations, undefined);
});

test('a bad index.json is refused: bad JSON, bad digest, wrong media type', () => {
  for (const bad of ['{', JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'x', digest: 'sha256:../../etc', size: 1 }] }), JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, manifests: [] }), JSON.stringify({ schemaVersion: 1, manifests: [] })]) {
    assert.ok(E.isLeft(decodeLayoutIndex(new TextEncoder().encode(bad))), bad);
  }
});

test('blobsNamedByManifest returns only well-formed digests', () => {
  const named = blobsNamedByManifest(enc({ config: { digest: d('c') }, layers: [{ digest: d('a') }, { digest: 'sha256:../x' }, null], manifests: [{ digest: d('b') }] }));
  assert.deepEqual(named, [d('c'), d('a'), d('b')]);
  assert.deepEqual(blobsNamedByManifest(new TextEncoder().encode('not json')), []);
});
