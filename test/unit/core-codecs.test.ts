// Behaviour of src/core/codecs/*: manifests, indexes, configs and docker-save manifest.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import {
  type DecodeError,
  decodeDockerSaveManifest,
  decodeImageConfig,
  decodeManifestDocument,
  describeDecodeError,
  MAX_JSON_BYTES,
  type ManifestDocument,
  parseJsonBytes,
} from '../../src/core/codecs/index.js';
import { MediaTypes } from '../../src/core/media-types.js';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const d = (c: string) => `sha256:${c.repeat(64)}`;

const desc = (mediaType: string, c: string, size = 10) => ({ mediaType, digest: d(c), size });

function manifest(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    config: desc(MediaTypes.ociConfig, '1'),
    layers: [desc(MediaTypes.ociLayerGzip, '2'), desc(MediaTypes.ociLayerGzip, '3'), desc(MediaTypes.ociLayerGzip, '4')],
    ...extra,
  };
}

function index(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    manifests: [{ ...desc(MediaTypes.ociManifest, '5'), platform: { architecture: 'amd64', os: 'linux' } }],
    ...extra,
  };
}

function right<A>(r: E.Either<DecodeError, A>): A {
  if (E.isLeft(r)) assert.fail(`expected success, got ${describeDecodeError(r.left)}`);
  return r.right;
}

function left<A>(r: E.Either<DecodeError, A>): DecodeError {
  if (E.isRight(r)) assert.fail(`expected a DecodeError, got ${JSON.stringify(r.right)}`);
  assert.equal(r.left._tag, 'DecodeError');
  return r.left;
}

function asManifest(doc: ManifestDocument) {
  assert.equal(doc._tag, 'Manifest');
  if (doc._tag !== 'Manifest') throw new Error('unreachable');
  return doc;
}
function asIndex(doc: ManifestDocument) {
  assert.equal(doc._tag, 'Index');
  if (doc._tag !== 'Index') throw new Error('unreachable');
  return doc;
}

// ---- dispatch -------------------------------------------------------------------------

test('body mediaType decides: an OCI manifest', () => {
  const doc = asManifest(right(decodeManifestDocument('m', enc(manifest({ mediaType: MediaTypes.ociManifest })))));
  assert.equal(doc.mediaType, MediaTypes.ociManifest);
  assert.equal(doc.manifest.layers.length, 3);
  assert.equal(doc.manifest.config.digest, d('1'));
});

test('body mediaType decides: a Docker manifest list is an index', () => {
  const doc = asIndex(right(decodeManifestDocument('m', enc(index({ mediaType: MediaTypes.dockerManifestList })))));
  assert.equal(doc.mediaType, MediaTypes.dockerManifestList);
  assert.equal(doc.index.manifests.length, 1);
  assert.deepEqual(doc.index.manifests[0]?.platform, { architecture: 'amd64', os: 'linux' });
});

test('body mediaType wins over the structure: a body saying index without manifests fails as an index', () => {
  const e = left(decodeManifestDocument('m', enc({ schemaVersion: 2, mediaType: MediaTypes.ociIndex })));
  assert.equal(e.path, 'manifests');
});

test('without a body mediaType, the transport Content-Type decides (parameters ignored)', () => {
  const doc = asManifest(
    right(decodeManifestDocument('m', enc(manifest()), `${MediaTypes.dockerManifest}; charset=utf-8`)),
  );
  assert.equal(doc.mediaType, MediaTypes.dockerManifest);
  const idx = asIndex(right(decodeManifestDocument('m', enc(index()), MediaTypes.ociIndex)));
  assert.equal(idx.mediaType, MediaTypes.ociIndex);
});

test('transport says index but the body has layers: decoded as an index, so it fails', () => {
  const e = left(decodeManifestDocument('m', enc(manifest()), MediaTypes.ociIndex));
  assert.equal(e.path, 'manifests');
});

test('without any media type, the structure decides and OCI types are assumed', () => {
  const m = asManifest(right(decodeManifestDocument('m', enc(manifest()))));
  assert.equal(m.mediaType, MediaTypes.ociManifest);
  const i = asIndex(right(decodeManifestDocument('m', enc(index()))));
  assert.equal(i.mediaType, MediaTypes.ociIndex);
});

test('an unknown transport type (e.g. application/json) falls back to the structure', () => {
  const m = asManifest(right(decodeManifestDocument('m', enc(manifest()), 'application/json')));
  assert.equal(m.mediaType, MediaTypes.ociManifest);
  const i = asIndex(right(decodeManifestDocument('m', enc(index()), 'application/octet-stream')));
  assert.equal(i.mediaType, MediaTypes.ociIndex);
});

test('an unknown body mediaType is rejected, naming the mediaType path', () => {
  const e = left(decodeManifestDocument('m', enc(manifest({ mediaType: 'application/x-foo' }))));
  assert.equal(e.path, 'mediaType');
  assert.match(e.message, /unknown manifest media type "application\/x-foo"/);
});

test('a document with both manifests and layers is rejected (CVE-2021-41190)', () => {
  const both = { ...manifest(), manifests: index()['manifests'] };
  const e = left(decodeManifestDocument('m', enc(both)));
  assert.equal(e.path, '(root)');
  assert.match(e.message, /ambiguous/);
  // Even when a media type claims one of them.
  left(decodeManifestDocument('m', enc({ ...both, mediaType: MediaTypes.ociManifest })));
  left(decodeManifestDocument('m', enc({ ...both, mediaType: MediaTypes.ociIndex })));
  left(decodeManifestDocument('m', enc(both), MediaTypes.ociIndex));
  // manifests + config only is just as ambiguous.
  left(decodeManifestDocument('m', enc({ ...index(), config: desc(MediaTypes.ociConfig, '1') })));
});

test('a body/transport kind mismatch is rejected', () => {
  const e = left(decodeManifestDocument('m', enc(manifest({ mediaType: MediaTypes.ociManifest })), MediaTypes.ociIndex));
  assert.equal(e.path, 'mediaType');
  assert.match(e.message, /body says .*manifest.* but it was served as .*index/);
  left(decodeManifestDocument('m', enc(index({ mediaType: MediaTypes.dockerManifestList })), MediaTypes.dockerManifest));
});

test('a Docker body served with the OCI type of the same kind is accepted (kinds agree)', () => {
  const m = asManifest(right(decodeManifestDocument('m', enc(manifest({ mediaType: MediaTypes.dockerManifest })), MediaTypes.ociManifest)));
  assert.equal(m.mediaType, MediaTypes.dockerManifest);
});

test('schema 1 gives a clear unsupported error, by body type, transport type or schemaVersion', () => {
  const schema1 = { schemaVersion: 1, name: 'library/x', tag: 'latest', fsLayers: [], history: [] };
  for (const [body, transport] of [
    [{ ...schema1, mediaType: MediaTypes.dockerManifestSchema1 }, undefined],
    [schema1, MediaTypes.dockerManifestSchema1Signed],
    [schema1, undefined],
  ] as const) {
    const e = left(decodeManifestDocument('m', enc(body), transport));
    assert.equal(e.path, 'schemaVersion');
    assert.match(e.message, /schema 1 manifests are not supported/);
  }
});

test('unknown fields survive decoding (annotations, x-extra, on descriptors too)', () => {
  const body = manifest({
    mediaType: MediaTypes.ociManifest,
    annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
    'x-extra': { keep: [1, 2, 3] },
  });
  (body['layers'] as Record<string, unknown>[])[0]!['x-layer-extra'] = 'still here';
  const doc = asManifest(right(decodeManifestDocument('m', enc(body))));
  const m = doc.manifest as unknown as Record<string, unknown>;
  assert.deepEqual(m['annotations'], { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' });
  assert.deepEqual(m['x-extra'], { keep: [1, 2, 3] });
  assert.equal((doc.manifest.layers[0] as unknown as Record<string, unknown>)['x-layer-extra'], 'still here');

  const idx = asIndex(right(decodeManifestDocument('i', enc(index({ 'x-extra': true })))));
  assert.equal((idx.index as unknown as Record<string, unknown>)['x-extra'], true);
});

test('errors name the path: a bad digest in layers[2]', () => {
  const body = manifest();
  (body['layers'] as Record<string, unknown>[])[2]!['digest'] = 'sha256:../../etc/passwd';
  const e = left(decodeManifestDocument('manifest', enc(body)));
  assert.equal(e.path, 'layers[2].digest');
  assert.equal(e.document, 'manifest');
  assert.match(e.message, /lowercase hexadecimal/);
  assert.match(describeDecodeError(e), /^manifest: layers\[2\]\.digest: /);
});

test('errors name the path: config.size, manifests[0].platform.os, schemaVersion', () => {
  const badSize = manifest({ config: { ...desc(MediaTypes.ociConfig, '1'), size: -1 } });
  let e = left(decodeManifestDocument('m', enc(badSize)));
  assert.equal(e.path, 'config.size');
  assert.match(e.message, /non-negative integer, got -1/);

  const badPlatform = index({ manifests: [{ ...desc(MediaTypes.ociManifest, '5'), platform: { architecture: 'arm64' } }] });
  e = left(decodeManifestDocument('m', enc(badPlatform)));
  assert.equal(e.path, 'manifests[0].platform.os');
  assert.match(e.message, /got missing/);

  e = left(decodeManifestDocument('m', enc(manifest({ schemaVersion: 3 }))));
  assert.equal(e.path, 'schemaVersion');

  e = left(decodeManifestDocument('m', enc(manifest({ layers: [desc(MediaTypes.ociLayer, '2'), { mediaType: 'x', size: 1 }] }))));
  assert.equal(e.path, 'layers[1].digest');
  assert.match(e.message, /got missing/);
});

test('non-object JSON and invalid JSON/UTF-8 are rejected at the root', () => {
  for (const body of ['[]', 'null', '"x"', '42']) {
    const e = left(decodeManifestDocument('m', enc(body)));
    assert.equal(e.path, '(root)');
    assert.match(e.message, /JSON object/);
  }
  assert.match(left(decodeManifestDocument('m', enc('{'))).message, /not valid JSON/);
  assert.match(left(decodeManifestDocument('m', new Uint8Array([0x7b, 0xff, 0x7d]))).message, /not valid JSON/);
});

test('JSON over 4 MiB is refused before parsing; exactly 4 MiB is read', () => {
  assert.equal(MAX_JSON_BYTES, 4 * 1024 * 1024);
  const over = new Uint8Array(MAX_JSON_BYTES + 1).fill(0x20);
  for (const r of [
    decodeManifestDocument('m', over),
    decodeImageConfig('c', over),
    decodeDockerSaveManifest(over),
    parseJsonBytes('x', over),
  ] as E.Either<DecodeError, unknown>[]) {
    const e = left(r);
    assert.equal(e.path, '(root)');
    assert.match(e.message, /over the 4194304-byte limit/);
  }
  // A valid document padded to exactly the limit is accepted.
  const json = enc(manifest());
  const exact = new Uint8Array(MAX_JSON_BYTES).fill(0x20);
  exact.set(json, 0);
  right(decodeManifestDocument('m', exact));
});

// ---- image config ---------------------------------------------------------------------

const config = (extra: Record<string, unknown> = {}) => ({
  architecture: 'amd64',
  os: 'linux',
  rootfs: { type: 'layers', diff_ids: [d('a'), d('b')] },
  config: { Env: ['PATH=/bin'], Cmd: null, Labels: null },
  ...extra,
});

test('decodeImageConfig accepts a config with rootfs.diff_ids and keeps unknown fields', () => {
  const c = right(decodeImageConfig('config', enc(config({ 'x-extra': 1, container_config: { Hostname: 'h' } }))));
  assert.deepEqual(c.rootfs.diff_ids, [d('a'), d('b')]);
  assert.equal((c as unknown as Record<string, unknown>)['x-extra'], 1);
  assert.deepEqual((c as unknown as Record<string, unknown>)['container_config'], { Hostname: 'h' });
  // Empty diff_ids are fine (an image with no layers).
  right(decodeImageConfig('config', enc(config({ rootfs: { type: 'layers', diff_ids: [] } }))));
  // config: null is allowed.
  right(decodeImageConfig('config', enc(config({ config: null }))));
});

test('decodeImageConfig requires rootfs and rootfs.diff_ids', () => {
  const noRootfs = config();
  delete (noRootfs as Record<string, unknown>)['rootfs'];
  let e = left(decodeImageConfig('config', enc(noRootfs)));
  assert.equal(e.path, 'rootfs');
  e = left(decodeImageConfig('config', enc(config({ rootfs: { type: 'layers' } }))));
  assert.equal(e.path, 'rootfs.diff_ids');
  e = left(decodeImageConfig('config', enc(config({ rootfs: { type: 'layers', diff_ids: 'nope' } }))));
  assert.equal(e.path, 'rootfs.diff_ids');
});

test('decodeImageConfig requires valid digests in diff_ids, naming the index', () => {
  const e = left(decodeImageConfig('config', enc(config({ rootfs: { type: 'layers', diff_ids: [d('a'), 'sha256:ABC'] } }))));
  assert.equal(e.path, 'rootfs.diff_ids[1]');
  assert.equal(e.document, 'config');
  const e2 = left(decodeImageConfig('config', enc(config({ rootfs: { type: 'layers', diff_ids: [7] } }))));
  assert.equal(e2.path, 'rootfs.diff_ids[0]');
  assert.match(e2.message, /expected a digest string, got 7/);
});

test('decodeImageConfig checks the container config shape', () => {
  const e = left(decodeImageConfig('config', enc(config({ config: { Env: 'PATH=/bin' } }))));
  assert.equal(e.path, 'config.Env');
  const h = left(decodeImageConfig('config', enc(config({ history: [{ empty_layer: 'yes' }] }))));
  assert.equal(h.path, 'history[0].empty_layer');
});

// ---- docker-save manifest.json --------------------------------------------------------

const saveEntry = (extra: Record<string, unknown> = {}) => ({
  Config: `${'a'.repeat(64)}.json`,
  RepoTags: ['busybox:latest'],
  Layers: [`${'b'.repeat(64)}/layer.tar`, `${'c'.repeat(64)}/layer.tar`],
  ...extra,
});

test('decodeDockerSaveManifest accepts a normal manifest.json, null RepoTags and unknown fields', () => {
  const m = right(decodeDockerSaveManifest(enc([saveEntry(), saveEntry({ RepoTags: null, 'x-extra': 'kept' })])));
  assert.equal(m.length, 2);
  assert.deepEqual(m[0]?.RepoTags, ['busybox:latest']);
  assert.equal(m[1]?.RepoTags, null);
  assert.equal((m[1] as unknown as Record<string, unknown>)['x-extra'], 'kept');
  right(decodeDockerSaveManifest(enc([saveEntry({ LayerSources: { x: {} } })])));
});

test('decodeDockerSaveManifest rejects an empty array', () => {
  const e = left(decodeDockerSaveManifest(enc([])));
  assert.equal(e.document, 'manifest.json');
  assert.equal(e.path, '(root)');
  assert.match(e.message, /lists no images/);
});

test('decodeDockerSaveManifest names [i].Field paths', () => {
  let e = left(decodeDockerSaveManifest(enc([saveEntry({ Layers: 'x' })])));
  assert.equal(e.path, '[0].Layers');
  e = left(decodeDockerSaveManifest(enc([saveEntry(), saveEntry({ Layers: ['ok', 7] })])));
  assert.equal(e.path, '[1].Layers[1]');
  assert.match(e.message, /got 7/);
  const noConfig = saveEntry();
  delete (noConfig as Record<string, unknown>)['Config'];
  e = left(decodeDockerSaveManifest(enc([noConfig])));
  assert.equal(e.path, '[0].Config');
  assert.match(e.message, /got missing/);
  e = left(decodeDockerSaveManifest(enc({ Config: 'x' })));
  assert.equal(e.path, '(root)');
  e = left(decodeDockerSaveManifest(enc([saveEntry({ RepoTags: 'busybox' })])));
  assert.equal(e.path, '[0].RepoTags');
});

test('long offending values are shortened in messages', () => {
  const e = left(decodeDockerSaveManifest(enc([saveEntry({ Layers: 'x'.repeat(500) })])));
  assert.ok(e.message.length < 120, e.message);
  assert.ok(e.message.includes('...'));
});

test('deeply nested JSON is refused with a clear error for every document kind, not a stack overflow', () => {
  const deepArray = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  const deepObject = (inner: string) => `${'{"a":'.repeat(100_000)}${inner}${'}'.repeat(100_000)}`;
  const cases: [string, () => E.Either<DecodeError, unknown>][] = [
    ['manifest.json', () => decodeDockerSaveManifest(enc(deepArray))],
    ['manifest.json', () => decodeDockerSaveManifest(enc(`[{"Config":"a.json","Layers":[],"LayerSources":${deepObject('1')}}]`))],
    ['config x', () => decodeImageConfig('config x', enc(`{"rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":${deepObject('1')}}}`))],
    ['manifest m', () => decodeManifestDocument('manifest m', enc(`{"schemaVersion":2,"annotations":${deepObject('"x"')}}`))],
    ['index i', () => decodeManifestDocument('index i', enc(`{"schemaVersion":2,"manifests":${deepArray}}`), MediaTypes.ociIndex)],
  ];
  for (const [document, run] of cases) {
    const r = run();
    assert.ok(E.isLeft(r), `${document} accepted`);
    assert.equal(r.left.document, document);
    assert.match(describeDecodeError(r.left), /nested more than 100 levels deep/);
  }
});

test('nesting is counted outside strings only, and 100 levels are accepted', () => {
  const hundred = `${'['.repeat(100)}${']'.repeat(100)}`;
  assert.ok(E.isRight(parseJsonBytes('x', enc(hundred))));
  assert.ok(E.isLeft(parseJsonBytes('x', enc(`[${hundred}]`))));
  // Brackets and escaped quotes inside strings are not nesting.
  assert.ok(E.isRight(parseJsonBytes('x', enc(JSON.stringify({ s: `\\"${'['.repeat(500)}` })))));
  const r = parseJsonBytes('x', enc(JSON.stringify({ s: '[[[' }).replace('}', ',"t":[[]]}')));
  assert.ok(E.isRight(r));
});
