/**
 * The pure plans of registry pushes: the manifest format chosen (src/core/plans/
 * registry-push.ts) and the platforms and index of multi-platform copies
 * (src/core/plans/registry-index.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import type { Digest } from '../../src/core/digest.js';
import { MediaTypes } from '../../src/core/media-types.js';
import { chooseManifestFormat, layerMediaTypeFor, type PushedLayer, pushManifest, reusableManifest } from '../../src/core/plans/registry-push.js';
import { choosePlatforms, indexToPush, parsePlatformList } from '../../src/core/plans/registry-index.js';
import type { ImageIndex } from '../../src/core/codecs/oci.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const layer = (c: string, sourceMediaType: string, compression: 'gzip' | 'zstd' = 'gzip', mediaType = MediaTypes.ociLayerGzip): PushedLayer => ({
  blob: { digest: d(c), size: 10, mediaType },
  compression,
  sourceMediaType,
});

describe('manifest format', () => {
  test('auto keeps a Docker source Docker, anything else OCI; zstd forces OCI', () => {
    assert.deepEqual(chooseManifestFormat([layer('1', MediaTypes.dockerLayerGzip), layer('2', MediaTypes.dockerLayerTar)], 'auto'), { ok: true, format: 'docker' });
    assert.deepEqual(chooseManifestFormat([layer('1', MediaTypes.dockerLayerGzip), layer('2', MediaTypes.ociLayer)], 'auto'), { ok: true, format: 'oci' });
    assert.deepEqual(chooseManifestFormat([layer('1', MediaTypes.dockerLayerTar, 'zstd')], 'auto'), { ok: true, format: 'oci' });
    assert.deepEqual(chooseManifestFormat([layer('1', MediaTypes.dockerLayerTar)], 'oci'), { ok: true, format: 'oci' });
    const refused = chooseManifestFormat([layer('1', MediaTypes.dockerLayerTar, 'zstd')], 'docker');
    assert.equal(refused.ok, false);
  });

  test('layer media types follow the format; the bytes named are the same', () => {
    assert.equal(layerMediaTypeFor('docker', MediaTypes.ociLayerGzip, 'gzip'), MediaTypes.dockerLayerGzip);
    assert.equal(layerMediaTypeFor('oci', MediaTypes.dockerLayerGzip, 'gzip'), MediaTypes.ociLayerGzip);
    assert.equal(layerMediaTypeFor('docker', MediaTypes.ociLayerZstd, 'zstd'), MediaTypes.ociLayerZstd);
    const m = JSON.parse(new TextDecoder().decode(pushManifest('docker', { digest: d('c'), size: 5 }, [layer('1', MediaTypes.dockerLayerTar)]).bytes));
    assert.deepEqual(m, {
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifest,
      config: { mediaType: MediaTypes.dockerConfig, digest: d('c'), size: 5 },
      layers: [{ mediaType: MediaTypes.dockerLayerGzip, digest: d('1'), size: 10 }],
    });
  });

  test("the source's manifest is reused only when it names exactly this config and these blobs", () => {
    const raw = pushManifest('oci', { digest: d('c'), size: 5 }, [layer('1', MediaTypes.ociLayerGzip)]).bytes;
    const source = { mediaType: MediaTypes.ociManifest, raw };
    assert.equal(reusableManifest(source, d('c'), [layer('1', MediaTypes.ociLayerGzip)], 'auto')?.bytes, raw);
    assert.equal(reusableManifest(source, d('c'), [layer('2', MediaTypes.ociLayerGzip)], 'auto'), undefined, 'another blob');
    assert.equal(reusableManifest(source, d('e'), [layer('1', MediaTypes.ociLayerGzip)], 'auto'), undefined, 'another config');
    assert.equal(reusableManifest(source, d('c'), [layer('1', MediaTypes.ociLayerGzip)], 'docker'), undefined, 'another format asked');
    assert.equal(reusableManifest(undefined, d('c'), [], 'auto'), undefined);
  });
});

describe('multi-platform copies', () => {
  const entry = (c: string, os: string, architecture: string, variant?: string) => ({ mediaType: MediaTypes.ociManifest, digest: d(c), size: 100, platform: { os, architecture, ...(variant ? { variant } : {}) } });
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: [entry('a', 'linux', 'arm64'), entry('b', 'linux', 'arm', 'v7'), entry('c', 'linux', 'amd64'), entry('f', 'unknown', 'unknown')],
  } as ImageIndex;

  test('platform lists parse; a bad item is named', () => {
    assert.deepEqual(parsePlatformList('linux/amd64,linux/arm/v7'), E.right([{ os: 'linux', architecture: 'amd64', variant: '' }, { os: 'linux', architecture: 'arm', variant: 'v7' }]));
    assert.ok(E.isLeft(parsePlatformList('linux')));
    assert.ok(E.isLeft(parsePlatformList('linux/amd64,')));
  });

  test('all: every image entry in index order (not attestations); a list: those asked, in index order', () => {
    assert.deepEqual(E.map((ds: { digest: string }[]) => ds.map((x) => x.digest))(choosePlatforms(index, 'all')), E.right([d('a'), d('b'), d('c')]));
    const some = choosePlatforms(index, [{ os: 'linux', architecture: 'amd64', variant: '' }, { os: 'linux', architecture: 'arm64', variant: '' }]);
    assert.deepEqual(E.map((ds: { digest: string }[]) => ds.map((x) => x.digest))(some), E.right([d('a'), d('c')]));
    const missing = choosePlatforms(index, [{ os: 'linux', architecture: 's390x', variant: '' }]);
    assert.ok(E.isLeft(missing) && /no image for linux\/s390x in the index/.test(missing.left));
  });

  test('the index: the source bytes when every entry is copied unchanged, else a new one in source order', () => {
    const raw = new TextEncoder().encode(JSON.stringify(index));
    const source = { mediaType: MediaTypes.ociIndex, raw, document: index };
    const all = index.manifests.map((m) => ({ source: m, pushed: { digest: m.digest, size: m.size, mediaType: m.mediaType } }));
    assert.equal(indexToPush(source, all).bytes, raw);
    const rewritten = all.slice(0, 2).map((c) => ({ ...c, pushed: { ...c.pushed, digest: d('9') } }));
    const made = JSON.parse(new TextDecoder().decode(indexToPush(source, rewritten).bytes));
    assert.equal(made.mediaType, MediaTypes.ociIndex);
    assert.deepEqual(made.manifests.map((m: { digest: string; platform: { architecture: string } }) => [m.digest, m.platform.architecture]), [[d('9'), 'arm64'], [d('9'), 'arm']]);
  });
});
