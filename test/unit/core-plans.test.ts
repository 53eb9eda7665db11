// Behaviour of src/core/plans/*: docker-save archive plans and the dir:// store catalog.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import {
  dockerSaveManifestBytes,
  imageNameOf,
  parseRepoTag,
  repositoriesBytes,
  type SavedImagePlan,
  savedConfigPath,
  savedLayerPath,
  selectImage,
} from '../../src/core/plans/docker-save.js';
import { type Catalog, catalogBytes, decodeCatalog, dirManifestBytes, manifestFileName, mergeCatalog } from '../../src/core/plans/dir-store.js';
import type { DockerSaveEntry, DockerSaveManifest } from '../../src/core/codecs/docker-save.js';
import type { Digest } from '../../src/core/digest.js';

const hex = (c: string) => c.repeat(64);
const dec = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));
const enc = (s: string) => new TextEncoder().encode(s);

// ---- parseRepoTag ---------------------------------------------------------------------

test('parseRepoTag splits at the last colon after the last slash', () => {
  assert.deepEqual(parseRepoTag('host:5000/a/b:tag'), { name: 'host:5000/a/b', tag: 'tag' });
  assert.deepEqual(parseRepoTag('busybox:1.36'), { name: 'busybox', tag: '1.36' });
  assert.deepEqual(parseRepoTag('docker.io/library/busybox:latest'), { name: 'docker.io/library/busybox', tag: 'latest' });
});

test('parseRepoTag defaults the tag to latest (a registry port is not a tag)', () => {
  assert.deepEqual(parseRepoTag('busybox'), { name: 'busybox', tag: 'latest' });
  assert.deepEqual(parseRepoTag('host:5000/a/b'), { name: 'host:5000/a/b', tag: 'latest' });
});

test('parseRepoTag: name@sha256:… puts the digest in the tag', () => {
  assert.deepEqual(parseRepoTag(`a/b@sha256:${hex('c')}`), { name: 'a/b', tag: `sha256:${hex('c')}` });
  assert.deepEqual(parseRepoTag(`host:5000/a@sha256:${hex('c')}`), { name: 'host:5000/a', tag: `sha256:${hex('c')}` });
});

test('property: parseRepoTag inverts name:tag for names without a colon after the last slash', () => {
  const part = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,10}$/);
  fc.assert(
    fc.property(fc.option(fc.tuple(part, fc.nat({ max: 65535 }))), fc.array(part, { minLength: 1, maxLength: 3 }), part, (host, repo, tag) => {
      const name = `${host ? `${host[0]}:${host[1]}/` : ''}${repo.join('/')}`;
      assert.deepEqual(parseRepoTag(`${name}:${tag}`), { name, tag });
      assert.deepEqual(parseRepoTag(name), { name, tag: 'latest' });
    }),
  );
});

// ---- selectImage ------------------------------------------------------------------------

const entry = (tags: string[] | null, c: string): DockerSaveEntry => ({
  Config: `${hex(c)}.json`,
  Layers: [`${hex(c)}/layer.tar`],
  RepoTags: tags,
});

const archive: DockerSaveManifest = [
  entry(['busybox:latest', 'busybox:1.36'], '1'),
  entry(['localhost:5000/team/app:v1'], '2'),
  entry(null, '3'),
  entry(['ghcr.io/org/tool:2'], '4'),
];

function pick(selector: Parameters<typeof selectImage>[1]): number {
  const r = selectImage(archive, selector);
  if (E.isLeft(r)) assert.fail(r.left);
  return r.right.position;
}
function pickErr(selector: Parameters<typeof selectImage>[1]): string {
  const r = selectImage(archive, selector);
  if (E.isRight(r)) assert.fail(`expected an error, got position ${r.right.position}`);
  return r.left;
}

test('selectImage: First and Index', () => {
  assert.equal(pick({ _tag: 'First' }), 0);
  assert.equal(pick({ _tag: 'Index', index: 2 }), 2);
  const r = selectImage(archive, { _tag: 'Index', index: 3 });
  assert.ok(E.isRight(r));
  assert.equal(r.right.entry, archive[3]);
});

test('selectImage: an index out of range lists the images', () => {
  const e = pickErr({ _tag: 'Index', index: 4 });
  assert.equal(
    e,
    'the archive holds 4 image(s), no index 4 (0: busybox:latest, busybox:1.36; 1: localhost:5000/team/app:v1; 2: (untagged); 3: ghcr.io/org/tool:2)',
  );
  assert.match(pickErr({ _tag: 'Index', index: -1 }), /no index -1/);
});

test('selectImage: by tag, with docker.io/library short forms and a default tag', () => {
  assert.equal(pick({ _tag: 'Tag', tag: 'busybox:1.36' }), 0);
  assert.equal(pick({ _tag: 'Tag', tag: 'busybox' }), 0);
  assert.equal(pick({ _tag: 'Tag', tag: 'library/busybox:latest' }), 0);
  assert.equal(pick({ _tag: 'Tag', tag: 'docker.io/library/busybox:1.36' }), 0);
  assert.equal(pick({ _tag: 'Tag', tag: 'docker.io/busybox' }), 0);
  assert.equal(pick({ _tag: 'Tag', tag: 'localhost:5000/team/app:v1' }), 1);
  assert.equal(pick({ _tag: 'Tag', tag: 'ghcr.io/org/tool:2' }), 3);
});

test('selectImage: a registry port is not taken for a tag', () => {
  // localhost:5000/team/app means tag latest, which the archive does not have.
  assert.match(pickErr({ _tag: 'Tag', tag: 'localhost:5000/team/app' }), /no image tagged localhost:5000\/team\/app/);
});

test('selectImage: an unknown tag lists the images', () => {
  const e = pickErr({ _tag: 'Tag', tag: 'alpine:3' });
  assert.match(e, /^no image tagged alpine:3 in the archive \(/);
  assert.match(e, /0: busybox:latest, busybox:1\.36/);
  assert.match(e, /2: \(untagged\)/);
  assert.match(pickErr({ _tag: 'Tag', tag: 'busybox:1.35' }), /no image tagged/);
});

test('imageNameOf: the matching RepoTag, the first RepoTag, or unknown', () => {
  assert.deepEqual(imageNameOf(archive[0]!, { _tag: 'Tag', tag: 'docker.io/library/busybox:1.36' }), { name: 'busybox', tag: '1.36' });
  assert.deepEqual(imageNameOf(archive[0]!, { _tag: 'First' }), { name: 'busybox', tag: 'latest' });
  assert.deepEqual(imageNameOf(archive[1]!, { _tag: 'Index', index: 1 }), { name: 'localhost:5000/team/app', tag: 'v1' });
  assert.deepEqual(imageNameOf(archive[2]!, { _tag: 'Index', index: 2 }), { name: 'unknown', tag: 'unknown' });
});

// ---- docker-save output ---------------------------------------------------------------

const cfg = `sha256:${hex('a')}` as Digest;
const l1 = `sha256:${hex('b')}` as Digest;
const l2 = `sha256:${hex('c')}` as Digest;

test('saved paths are <config hex>.json and <diff_id hex>/layer.tar', () => {
  assert.equal(savedConfigPath(cfg), `${hex('a')}.json`);
  assert.equal(savedLayerPath(l1), `${hex('b')}/layer.tar`);
});

const plan: SavedImagePlan = {
  configPath: savedConfigPath(cfg),
  layerPaths: [savedLayerPath(l1), savedLayerPath(l2)],
  repoTags: ['busybox:latest', 'localhost:5000/a/b:v1'],
};

test('dockerSaveManifestBytes writes compact JSON with Config, RepoTags, Layers in that order', () => {
  const text = dec(dockerSaveManifestBytes([plan]));
  assert.equal(
    text,
    `[{"Config":"${hex('a')}.json","RepoTags":["busybox:latest","localhost:5000/a/b:v1"],"Layers":["${hex('b')}/layer.tar","${hex('c')}/layer.tar"]}]`,
  );
  assert.equal(dec(dockerSaveManifestBytes([])), '[]');
  assert.equal(JSON.parse(dec(dockerSaveManifestBytes([plan, { ...plan, repoTags: [] }]))!).length, 2);
});

test('repositoriesBytes maps repository → tag → top layer id', () => {
  assert.deepEqual(JSON.parse(dec(repositoriesBytes([plan]))!), {
    busybox: { latest: hex('c') },
    'localhost:5000/a/b': { v1: hex('c') },
  });
  // Two images sharing a repository.
  const other: SavedImagePlan = { configPath: 'x.json', layerPaths: [savedLayerPath(l1)], repoTags: ['busybox:1.36'] };
  assert.deepEqual(JSON.parse(dec(repositoriesBytes([plan, other]))!), {
    busybox: { latest: hex('c'), '1.36': hex('b') },
    'localhost:5000/a/b': { v1: hex('c') },
  });
});

test('repositoriesBytes is undefined when nothing is tagged or there are no layers', () => {
  assert.equal(repositoriesBytes([]), undefined);
  assert.equal(repositoriesBytes([{ ...plan, repoTags: [] }]), undefined);
  assert.equal(repositoriesBytes([{ ...plan, layerPaths: [] }]), undefined);
});

// ---- dir:// store ---------------------------------------------------------------------

test('manifestFileName: manifest.json, or a unique cleaned name', () => {
  assert.equal(manifestFileName({ name: 'busybox', tag: 'latest' }, false), 'manifest.json');
  assert.equal(manifestFileName({ name: 'busybox', tag: 'latest' }, true), 'manifest-busybox-latest.json');
  assert.equal(manifestFileName({ name: 'localhost:5000/team/app', tag: 'v1' }, true), 'manifest-localhost_5000_team_app-v1.json');
  assert.equal(manifestFileName({ name: 'a/b', tag: `sha256:${hex('d')}` }, true), `manifest-a_b-sha256_${hex('d')}.json`);
});

test('property: unique manifest file names are single safe path components', () => {
  fc.assert(
    fc.property(fc.string(), fc.string(), (name, tag) => {
      const f = manifestFileName({ name, tag }, true);
      assert.match(f, /^manifest-[A-Za-z0-9._-]*-[A-Za-z0-9._-]*\.json$/);
      assert.ok(!f.includes('/'));
      assert.notEqual(f, '..');
    }),
  );
});

test('dirManifestBytes writes a one-element manifest list, ImageName optional', () => {
  const text = dec(dirManifestBytes({ configPath: 'c.json', layerPaths: ['l/layer.tar'], repoTags: ['a:b'] }))!;
  assert.ok(text.endsWith('\n'));
  assert.deepEqual(JSON.parse(text), [{ Config: 'c.json', Layers: ['l/layer.tar'], RepoTags: ['a:b'] }]);
  const named = JSON.parse(dec(dirManifestBytes({ configPath: 'c.json', layerPaths: [], repoTags: [], imageName: 'a' }))!);
  assert.equal(named[0].ImageName, 'a');
});

test('mergeCatalog adds an image and sorts names and tags', () => {
  let c: Catalog = {};
  c = mergeCatalog(c, { name: 'zeta', tag: 'v2' }, 'manifest-zeta-v2.json');
  c = mergeCatalog(c, { name: 'alpha', tag: 'latest' }, 'manifest-alpha-latest.json');
  c = mergeCatalog(c, { name: 'zeta', tag: 'v1' }, 'manifest-zeta-v1.json');
  assert.deepEqual(Object.keys(c), ['alpha', 'zeta']);
  assert.deepEqual(Object.keys(c['zeta']!), ['v1', 'v2']);
  assert.equal(
    dec(catalogBytes(c)),
    `${JSON.stringify({ alpha: { latest: 'manifest-alpha-latest.json' }, zeta: { v1: 'manifest-zeta-v1.json', v2: 'manifest-zeta-v2.json' } }, null, 4)}\n`,
  );
});

test('mergeCatalog replaces an existing tag and does not mutate its input', () => {
  const before: Catalog = { a: { t: 'old.json' } };
  const after = mergeCatalog(before, { name: 'a', tag: 't' }, 'new.json');
  assert.deepEqual(after, { a: { t: 'new.json' } });
  assert.deepEqual(before, { a: { t: 'old.json' } });
});

// Integer-like keys ("0", "10") always enumerate first in JavaScript, whatever the
// insertion order, so "sorted" is checked for the other keys; stability for all.
const isIndexLike = (k: string) => /^(?:0|[1-9]\d*)$/.test(k) && Number(k) < 2 ** 32 - 1;

test('property: mergeCatalog output is sorted and contains the merged image', () => {
  const key = fc.string({ maxLength: 6 }).filter((k) => k !== '__proto__');
  fc.assert(
    fc.property(fc.dictionary(key, fc.dictionary(key, key)), key, key, key, (catalog, name, tag, file) => {
      const merged = mergeCatalog(catalog, { name, tag }, file);
      const sortedOthers = (keys: string[]) => {
        const others = keys.filter((k) => !isIndexLike(k));
        assert.deepEqual(others, [...others].sort());
      };
      sortedOthers(Object.keys(merged));
      for (const n of Object.keys(merged)) sortedOthers(Object.keys(merged[n]!));
      assert.equal(merged[name]?.[tag], file);
      assert.deepEqual(Object.keys(merged).length, Object.keys({ ...catalog, [name]: {} }).length);
      // Idempotent.
      assert.deepEqual(mergeCatalog(merged, { name, tag }, file), merged);
    }),
  );
});

test('property: catalog bytes do not depend on the order images were merged in', () => {
  const key = fc.string({ maxLength: 4 }).filter((k) => k !== '__proto__');
  fc.assert(
    fc.property(fc.uniqueArray(fc.tuple(key, key), { selector: ([n, t]) => `${n}\0${t}`, maxLength: 8 }), (images) => {
      const build = (list: [string, string][]) =>
        list.reduce<Catalog>((c, [name, tag]) => mergeCatalog(c, { name, tag }, `${name}-${tag}.json`), {});
      const forward = catalogBytes(build(images));
      const backward = catalogBytes(build([...images].reverse()));
      assert.deepEqual(Buffer.from(forward), Buffer.from(backward));
    }),
  );
});

test('mergeCatalog keeps an image named __proto__', () => {
  const merged = mergeCatalog({}, { name: '__proto__', tag: 't' }, 'p.json');
  assert.deepEqual(Object.keys(merged), ['__proto__']);
  const fromFile = decodeCatalog(enc('{"__proto__":{"t":"p.json"}}'));
  assert.ok(E.isRight(fromFile));
  const again = mergeCatalog(fromFile.right, { name: 'b', tag: 't' }, 'b.json');
  assert.deepEqual(JSON.parse(dec(catalogBytes(again))!), JSON.parse('{"__proto__":{"t":"p.json"},"b":{"t":"b.json"}}'));
});

test('decodeCatalog: missing file is an empty catalog; valid JSON decodes', () => {
  assert.deepEqual(decodeCatalog(undefined), E.right({}));
  assert.deepEqual(decodeCatalog(enc('{"a":{"t":"m.json"}}')), E.right({ a: { t: 'm.json' } }));
  const c: Catalog = mergeCatalog({}, { name: 'x', tag: 'y' }, 'z.json');
  assert.deepEqual(decodeCatalog(catalogBytes(c)), E.right(c));
});

test('decodeCatalog errors name the document and path', () => {
  const bad = decodeCatalog(enc('{"a":{"t":5}}'));
  assert.ok(E.isLeft(bad));
  assert.equal(bad.left.document, 'catalog.json');
  assert.equal(bad.left.path, 'a.t');
  assert.match(bad.left.message, /got 5/);
  const notJson = decodeCatalog(enc('{oops'));
  assert.ok(E.isLeft(notJson));
  assert.match(notJson.left.message, /not valid JSON/);
  const arr = decodeCatalog(enc('[]'));
  assert.ok(E.isLeft(arr));
  assert.equal(arr.left.path, '(root)');
  const flat = decodeCatalog(enc('{"a":"m.json"}'));
  assert.ok(E.isLeft(flat));
  assert.equal(flat.left.path, 'a');
});
