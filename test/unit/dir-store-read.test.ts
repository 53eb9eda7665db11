// Reading a dir:// store back, the pure decisions: which catalog entry, which names may
// be used as paths, which manifest entry is the image.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import { checkManifestFileName, selectManifestEntry, selectStoreImage, storeEntryPath, storeLayerSourceId } from '../../src/core/plans/dir-store-read.js';

const catalog = {
  'docker.io/library/sample': { v1: 'manifest-docker.io_library_sample-v1.json', v2: 'manifest-docker.io_library_sample-v2.json' },
  other: { v1: 'manifest.json' },
};

const left = <A>(r: E.Either<string, A>): string => {
  assert.ok(E.isLeft(r), `expected a refusal, got ${JSON.stringify(r)}`);
  return r.left;
};

test('one image needs no choice; several need one, and the refusal lists them', () => {
  assert.deepEqual(selectStoreImage({ a: { t: 'manifest.json' } }, {}), E.right({ image: { name: 'a', tag: 't' }, manifestFile: 'manifest.json' }));
  assert.equal(left(selectStoreImage(catalog, {})), 'the store holds 3 images (docker.io/library/sample:v1, docker.io/library/sample:v2, other:v1); choose one with ?image=NAME&tag=TAG');
  assert.equal(left(selectStoreImage(catalog, { tag: 'v1' })), '2 images match ?tag=v1 (docker.io/library/sample:v1, other:v1); choose one with ?image=NAME&tag=TAG');
  assert.equal(left(selectStoreImage(catalog, { image: 'nope' })), 'no image in the store matches ?image=nope; it holds docker.io/library/sample:v1, docker.io/library/sample:v2, other:v1');
  assert.equal(left(selectStoreImage({}, {})), 'catalog.json lists no images; the store is empty');
});

test('either option alone picks the image when it matches one', () => {
  const byTag = selectStoreImage(catalog, { tag: 'v2' });
  assert.ok(E.isRight(byTag) && byTag.right.image.name === 'docker.io/library/sample' && byTag.right.manifestFile.endsWith('-v2.json'));
  const byName = selectStoreImage(catalog, { image: 'other' });
  assert.ok(E.isRight(byName) && byName.right.image.tag === 'v1');
  const both = selectStoreImage(catalog, { image: 'docker.io/library/sample', tag: 'v1' });
  assert.ok(E.isRight(both) && both.right.manifestFile === 'manifest-docker.io_library_sample-v1.json');
});

test('a manifest name from the catalog must be a plain file name at the top of the store', () => {
  for (const bad of ['../manifest.json', '/etc/passwd', 'a/b.json', '..', '.', '', 'a\\b', 'x\0y']) {
    assert.ok(E.isLeft(checkManifestFileName(bad)), JSON.stringify(bad));
  }
  assert.match(left(selectStoreImage({ a: { t: '../m.json' } }, {})), /^catalog\.json names "\.\.\/m\.json" as the manifest of a:t, which is not a plain file name; refusing a path outside the store's top directory$/);
  // occystrap keeps a registry port's colon in the name: still a plain name.
  assert.deepEqual(checkManifestFileName('manifest-127.0.0.1:5000_app-v1.json'), E.right('manifest-127.0.0.1:5000_app-v1.json'));
});

test('an image name that is not a valid reference is refused (it would reach the terminal and archives)', () => {
  assert.match(left(selectStoreImage({ 'Bad\u001b[31m': { t: 'manifest.json' } }, {})), /^catalog\.json: ".*\\x1b.*" is not a valid image reference/);
});

test('paths in a manifest are normalised; absolute and .. paths are refused', () => {
  assert.deepEqual(storeEntryPath('./abc/layer.tar', 'Layers[0]'), E.right('abc/layer.tar'));
  assert.deepEqual(storeEntryPath('blobs/sha256/abc', 'Config'), E.right('blobs/sha256/abc'));
  assert.equal(left(storeEntryPath('../x/layer.tar', 'manifest.json Layers[0]')), 'manifest.json Layers[0] "../x/layer.tar" has a ".." component; refusing a path outside the store');
  assert.equal(left(storeEntryPath('/etc/passwd', 'manifest.json Config')), 'manifest.json Config "/etc/passwd" is absolute; refusing a path outside the store');
});

test('the manifest entry is the image by ImageName or by a full or last-part RepoTag', () => {
  const image = { name: 'library/sample', tag: 'v1' };
  const occystrap = { Config: 'c.json', Layers: [], RepoTags: ['sample:v1'], ImageName: 'library/sample' };
  const ours = { Config: 'c.json', Layers: [], RepoTags: ['library/sample:v1'] };
  const short = { Config: 'c.json', Layers: [], RepoTags: ['sample:v1'] };
  const untagged = { Config: 'c.json', Layers: [] };
  for (const entry of [occystrap, ours, short, untagged]) assert.deepEqual(selectManifestEntry([entry], image, 'm.json'), E.right(entry));
  // manifest.json replaced by a later image written without unique names.
  assert.equal(
    left(selectManifestEntry([{ Config: 'c.json', Layers: [], RepoTags: ['other:v2'] }], image, 'manifest.json')),
    'catalog.json names manifest.json for library/sample:v1, but manifest.json holds other:v2 (a later image written without ?unique_names=true replaced it); write library/sample:v1 into the store again, with ?unique_names=true',
  );
  assert.ok(E.isLeft(selectManifestEntry([{ ...occystrap, ImageName: 'library/other' }], image, 'm.json')));
});

test('a layer source id is the directory of <id>/layer.tar, else the file name', () => {
  assert.equal(storeLayerSourceId('abc/layer.tar'), 'abc');
  assert.equal(storeLayerSourceId('x/abc/layer.tar'), 'abc');
  assert.equal(storeLayerSourceId('blobs/sha256/def'), 'def');
});
