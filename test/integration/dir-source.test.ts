// dir:// as a source with the real CLI: stores written by this tool (tar:// -> dir://)
// rebuilt into docker-loadable archives skopeo reads, copied into another store and an
// OCI layout; a store written the way Python occystrap writes one (re-serialised config,
// manifest-<image>-<tag>.json, two images in the catalog) read by ?image= and ?tag=; and
// the faults: a layer that is not its diff_id, paths leaving the store, missing files, an
// unchosen image. Every failed run exits 1 with one line and leaves nothing behind.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tarStream from 'tar-stream';
import { cleanupTmpDirs, fixture, fixturePath, sha256File, skopeo, tmpDir, type ImageFacts } from './fixtures.js';
import { errorLines, hexOf, identity, listDir, occystrap, runDirs, splitRepoTag, strayTempFiles } from './cli-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});

interface Archive {
  manifest: { Config: string; Layers: string[]; RepoTags: string[] | null }[];
  /** sha256 of each entry's data, by name. */
  digests: Map<string, string>;
  /** Data of the small entries, by name. */
  small: Map<string, Buffer>;
}

async function readArchive(file: string): Promise<Archive> {
  const extract = tarStream.extract();
  const digests = new Map<string, string>();
  const small = new Map<string, Buffer>();
  const reading = (async () => {
    for await (const entry of extract) {
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      for await (const chunk of entry) {
        hash.update(chunk as Buffer);
        if (entry.header.size < 1 << 20) chunks.push(chunk as Buffer);
      }
      digests.set(entry.header.name, `sha256:${hash.digest('hex')}`);
      if (entry.header.size < 1 << 20) small.set(entry.header.name, Buffer.concat(chunks));
    }
  })();
  await pipeline(createReadStream(file), extract as unknown as Writable);
  await reading;
  const manifest = JSON.parse((small.get('manifest.json') as Buffer).toString('utf8')) as Archive['manifest'];
  return { manifest, digests, small };
}

/** What a docker-loadable archive says about its one image: RepoTags, config digest, diff_ids, and each layer's own sha256. */
async function imageOf(file: string): Promise<{ repoTags: string[]; configDigest: string; diffIds: string[]; layerDigests: string[]; config: Buffer }> {
  const a = await readArchive(file);
  assert.equal(a.manifest.length, 1, `${file} holds one image`);
  const m = a.manifest[0] as Archive['manifest'][number];
  const config = a.small.get(m.Config) as Buffer;
  const parsed = JSON.parse(config.toString('utf8')) as { rootfs: { diff_ids: string[] } };
  return {
    repoTags: m.RepoTags ?? [],
    configDigest: `sha256:${createHash('sha256').update(config).digest('hex')}`,
    diffIds: parsed.rootfs.diff_ids,
    layerDigests: m.Layers.map((l) => a.digests.get(l) as string),
    config,
  };
}

/** One error line, exit 1, nothing on stdout, no run directory or stray temp file left. */
function assertFailedCleanly(r: { code: number | null; stdout: string; stderr: string }, temp: string, pattern: RegExp): string {
  assert.equal(r.code, 1, r.stderr);
  const lines = errorLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] as string, pattern);
  assert.deepEqual(runDirs(temp), [], 'no run directory left');
  return lines[0] as string;
}

/** Stores built once from the fixtures, copied by each test that changes one. */
let base: string;
/** tar:// fixture -> dir:// per fixture name. */
const stores = new Map<string, string>();
/** podman-multi's two images in one store, with unique names. */
let multiStore: string;

const ROUND_TRIP = ['docker-classic.tar', 'skopeo-legacy.tar', 'docker25-gzip.tar', 'docker25-zstd.tar'];

before(async () => {
  base = await tmpDir('dir-source');
  for (const name of ROUND_TRIP) {
    const store = path.join(base, `store-${name}`);
    const r = await occystrap(['--temp-dir', path.join(base, 'tmp'), 'process', `tar://${fixturePath(name)}`, `dir://${store}`]);
    assert.equal(r.code, 0, r.stderr);
    stores.set(name, store);
  }
  multiStore = path.join(base, 'multi');
  for (const index of [0, 1]) {
    const r = await occystrap(['--temp-dir', path.join(base, 'tmp'), 'process', `tar://${fixturePath('podman-multi.tar')}?index=${index}`, `dir://${multiStore}?unique_names=true`]);
    assert.equal(r.code, 0, r.stderr);
  }
});

/** A fresh copy of a store, and a temp dir, for a test that changes it. */
async function copyOf(store: string, name: string): Promise<{ store: string; temp: string; dir: string }> {
  const dir = await tmpDir(`dir-source-${name}`);
  cpSync(store, path.join(dir, 'store'), { recursive: true });
  return { store: path.join(dir, 'store'), temp: path.join(dir, 'tmp'), dir };
}

function readJson(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'));
}

describe('tar:// -> dir:// -> tar:// rebuilds the archive', () => {
  for (const name of ROUND_TRIP) {
    test(name, async () => {
      const facts = fixture(name).images[0] as ImageFacts;
      const store = stores.get(name) as string;
      const layerFile = path.join(store, hexOf(facts.diffIds[0] as string), 'layer.tar');
      const before = identity(layerFile);
      const dir = await tmpDir(`dir-source-rt-${name}`);
      const out = path.join(dir, 'out.tar');
      const temp = path.join(dir, 'tmp');
      const r = await occystrap(['--temp-dir', temp, 'process', `dir://${store}`, `tar://${out}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(errorLines(r.stderr), []);

      const rebuilt = await imageOf(out);
      const original = await imageOf(fixturePath(name));
      assert.deepEqual(rebuilt.repoTags, facts.repoTags, 'RepoTags as in the original');
      assert.equal(rebuilt.configDigest, facts.configDigest, 'the config bytes are the original config');
      assert.deepEqual(rebuilt.config, original.config);
      assert.deepEqual(rebuilt.diffIds, facts.diffIds);
      assert.deepEqual(rebuilt.layerDigests, facts.diffIds, 'every layer of the archive is its diff_id');

      const inspected = await skopeo(['inspect', `docker-archive:${out}`]);
      assert.equal(inspected.code, 0, inspected.stderr);
      assert.deepEqual((JSON.parse(inspected.stdout) as { Layers: string[] }).Layers, facts.diffIds);
      const oci = path.join(dir, 'oci');
      const copied = await skopeo(['copy', `docker-archive:${out}`, `oci:${oci}:x`]);
      assert.equal(copied.code, 0, copied.stderr);

      // The store is read, never changed: its layer files stay where and what they were.
      assert.deepEqual(identity(layerFile), before);
      assert.equal(await sha256File(layerFile), facts.diffIds[0]);
      assert.deepEqual(listDir(temp), [], 'the --temp-dir is left empty');
      assert.deepEqual(strayTempFiles(dir), []);
    });
  }
});

describe('dir:// to the other destinations and commands', () => {
  test('dir:// -> dir:// copies the image into another store, byte for byte', async () => {
    const store = stores.get('docker-classic.tar') as string;
    const dir = await tmpDir('dir-source-d2d');
    const out = path.join(dir, 'store');
    const r = await occystrap(['--temp-dir', path.join(dir, 'tmp'), 'process', `dir://${store}`, `dir://${out}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(listDir(out), listDir(store));
    for (const name of listDir(store)) {
      const file = name.endsWith('.json') ? name : path.join(name, 'layer.tar');
      assert.equal(await sha256File(path.join(out, file)), await sha256File(path.join(store, file)), file);
    }
  });

  test('dir:// -> ocidir:// writes a layout skopeo reads', async () => {
    const facts = fixture('docker-classic.tar').images[0] as ImageFacts;
    const dir = await tmpDir('dir-source-d2o');
    const layout = path.join(dir, 'layout');
    const r = await occystrap(['--temp-dir', path.join(dir, 'tmp'), 'process', `dir://${stores.get('docker-classic.tar') as string}`, `ocidir://${layout}:v1`]);
    assert.equal(r.code, 0, r.stderr);
    const inspected = await skopeo(['inspect', '--config', `oci:${layout}:v1`]);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.deepEqual((JSON.parse(inspected.stdout) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids, facts.diffIds);
  });

  test('info, check and search read a dir:// source', async () => {
    const facts = fixture('docker-classic.tar').images[0] as ImageFacts;
    const uri = `dir://${stores.get('docker-classic.tar') as string}`;
    const info = await occystrap(['-O', 'json', 'info', uri]);
    assert.equal(info.code, 0, info.stderr);
    const described = JSON.parse(info.stdout) as Record<string, unknown>;
    assert.equal(described['config_digest'], facts.configDigest, info.stdout);
    const check = await occystrap(['check', uri]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /Check complete \(full\): 0 error\(s\)/);
    const search = await occystrap(['search', '--script-friendly', uri, 'etc/passwd']);
    assert.equal(search.code, 0, search.stderr);
    assert.match(search.stdout, /^sample:v1:[0-9a-f]{64}:etc\/passwd$/m);
  });

  test('a store with two images: each chosen by ?image= and ?tag=, none chosen is refused with the list', async () => {
    const multi = fixture('podman-multi.tar').images as ImageFacts[];
    const dir = await tmpDir('dir-source-multi');
    const temp = path.join(dir, 'tmp');
    for (const facts of multi) {
      const { name, tag } = splitRepoTag(facts.repoTags[0] as string);
      const out = path.join(dir, `${tag}.tar`);
      const r = await occystrap(['--temp-dir', temp, 'process', `dir://${multiStore}?image=${name}&tag=${tag}`, `tar://${out}`]);
      assert.equal(r.code, 0, r.stderr);
      const rebuilt = await imageOf(out);
      assert.deepEqual(rebuilt.repoTags, facts.repoTags);
      assert.equal(rebuilt.configDigest, facts.configDigest);
      assert.deepEqual(rebuilt.layerDigests, facts.diffIds);
    }
    const out = path.join(dir, 'none.tar');
    const r = await occystrap(['--temp-dir', temp, 'process', `dir://${multiStore}`, `tar://${out}`]);
    assertFailedCleanly(r, temp, /the store holds 2 images \(docker\.io\/library\/other:v2, docker\.io\/library\/sample:v1\); choose one with \?image=NAME&tag=TAG$/);
    assert.equal(existsSync(out), false);
    const wrong = await occystrap(['--temp-dir', temp, 'info', `dir://${multiStore}?tag=v9`]);
    assertFailedCleanly(wrong, temp, /no image in the store matches \?tag=v9; it holds docker\.io\/library\/other:v2, docker\.io\/library\/sample:v1$/);
  });
});

/** Python's json.dumps(value, indent=4, sort_keys=True) for the plain JSON of an image config (ASCII, no floats). */
function pythonJson(value: unknown): string {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as Record<string, unknown>)[k])]));
    return v;
  };
  return JSON.stringify(sorted(value), null, 4).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A store laid out as Python occystrap's DirWriter writes one with unique_names: the
 * config re-serialised under its source name, layers under ids that are not their
 * diff_ids, `manifest-<image>-<tag>.json` with ImageName and a basename RepoTag, and a
 * catalog of both images. Built from `multiStore`'s files.
 */
function occystrapStore(root: string): { images: { name: string; tag: string; facts: ImageFacts; configBytes: string }[] } {
  mkdirSync(root, { recursive: true });
  const multi = fixture('podman-multi.tar').images as ImageFacts[];
  const catalog: Record<string, Record<string, string>> = {};
  const images = multi.map((facts, n) => {
    const { tag } = splitRepoTag(facts.repoTags[0] as string);
    const name = n === 0 ? 'library/sample' : 'team/other';
    const configBytes = pythonJson(readJson(path.join(multiStore, `${hexOf(facts.configDigest as string)}.json`)));
    const configName = `${hexOf(facts.configDigest as string)}.json`;
    writeFileSync(path.join(root, configName), configBytes);
    const layers = facts.diffIds.map((diffId) => {
      // The id occystrap uses: the compressed digest or v1 id, never the diff_id.
      const id = createHash('sha256').update(`v1-id-${diffId}`).digest('hex');
      mkdirSync(path.join(root, id), { recursive: true });
      cpSync(path.join(multiStore, hexOf(diffId), 'layer.tar'), path.join(root, id, 'layer.tar'));
      return `${id}/layer.tar`;
    });
    const manifestName = `manifest-${name.replace(/\//g, '_')}-${tag.replace(/\//g, '_')}.json`;
    const manifest = [{ Config: configName, ImageName: name, Layers: layers, RepoTags: [`${name.split('/').pop() as string}:${tag}`] }];
    writeFileSync(path.join(root, manifestName), JSON.stringify(manifest, null, 4));
    catalog[name] = { [tag]: manifestName };
    return { name, tag, facts, configBytes };
  });
  writeFileSync(path.join(root, 'catalog.json'), JSON.stringify(catalog, null, 4));
  // An expanded rootfs directory, as expand=true leaves one: never read.
  mkdirSync(path.join(root, 'manifest-library_sample-v1', 'etc'), { recursive: true });
  writeFileSync(path.join(root, 'manifest-library_sample-v1', 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  return { images };
}

describe("a store written the way Python occystrap writes one", () => {
  test('each image is rebuilt by ?image= and ?tag=; the image id is the sha256 of the re-serialised config', async () => {
    const dir = await tmpDir('dir-source-py');
    const root = path.join(dir, 'store');
    const temp = path.join(dir, 'tmp');
    const { images } = occystrapStore(root);
    for (const { name, tag, facts, configBytes } of images) {
      const out = path.join(dir, `${tag}.tar`);
      const r = await occystrap(['--temp-dir', temp, 'process', `dir://${root}?image=${name}&tag=${tag}`, `tar://${out}`]);
      assert.equal(r.code, 0, r.stderr);
      const rebuilt = await imageOf(out);
      assert.deepEqual(rebuilt.repoTags, [`${name}:${tag}`], 'named as the catalog names it');
      assert.equal(rebuilt.config.toString('utf8'), configBytes, 'the config bytes as stored');
      assert.equal(rebuilt.configDigest, `sha256:${createHash('sha256').update(configBytes).digest('hex')}`);
      assert.notEqual(rebuilt.configDigest, facts.configDigest, 'occystrap re-serialised the config');
      assert.deepEqual(rebuilt.diffIds, facts.diffIds);
      assert.deepEqual(rebuilt.layerDigests, facts.diffIds);
      const inspected = await skopeo(['inspect', `docker-archive:${out}`]);
      assert.equal(inspected.code, 0, inspected.stderr);
    }
    // ?tag= alone is enough when one image has that tag.
    const info = await occystrap(['-O', 'json', 'info', `dir://${root}?tag=v2`]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /team\/other/);
    const none = await occystrap(['--temp-dir', temp, 'info', `dir://${root}`]);
    assertFailedCleanly(none, temp, /the store holds 2 images \(library\/sample:v1, team\/other:v2\); choose one with \?image=NAME&tag=TAG$/);
    assert.deepEqual(listDir(temp), []);
  });
});

describe('faults: exit 1, one line, nothing left behind', () => {
  const classic = () => fixture('docker-classic.tar').images[0] as ImageFacts;

  async function refused(store: string, temp: string, dir: string, pattern: RegExp, source = `dir://${store}`): Promise<string> {
    const out = path.join(dir, 'out.tar');
    const outStore = path.join(dir, 'out-store');
    const r = await occystrap(['--temp-dir', temp, 'process', source, `tar://${out}`]);
    const line = assertFailedCleanly(r, temp, pattern);
    assert.equal(existsSync(out), false, 'no archive written');
    assert.deepEqual(strayTempFiles(dir), []);
    const d = await occystrap(['--temp-dir', temp, 'process', source, `dir://${outStore}`]);
    assertFailedCleanly(d, temp, pattern);
    assert.equal(existsSync(outStore), false, 'no store left');
    return line;
  }

  test('a layer.tar that is not its diff_id', async () => {
    const { store, temp, dir } = await copyOf(stores.get('docker-classic.tar') as string, 'corrupt');
    const diffId = classic().diffIds[1] as string;
    appendFileSync(path.join(store, hexOf(diffId), 'layer.tar'), Buffer.alloc(512));
    const line = await refused(store, temp, dir, /: layer 1 [0-9a-f]{64}\/layer\.tar has sha256 sha256:[0-9a-f]{64}, but the config's diff_id is sha256:[0-9a-f]{64}; the store is corrupt/);
    assert.ok(line.includes(diffId), line);
  });

  test('a missing layer file', async () => {
    const { store, temp, dir } = await copyOf(stores.get('docker-classic.tar') as string, 'missing');
    rmSync(path.join(store, hexOf(classic().diffIds[2] as string), 'layer.tar'));
    await refused(store, temp, dir, /: layer 2 [0-9a-f]{64}\/layer\.tar is not in the store; the store is incomplete/);
  });

  test('a catalog naming a manifest that is not there', async () => {
    const { store, temp, dir } = await copyOf(stores.get('docker-classic.tar') as string, 'nomanifest');
    rmSync(path.join(store, 'manifest.json'));
    await refused(store, temp, dir, /: catalog\.json names manifest\.json for sample:v1, but there is no such file in the store; the store is incomplete/);
  });

  test('a directory without catalog.json', async () => {
    const { store, temp, dir } = await copyOf(stores.get('docker-classic.tar') as string, 'nocatalog');
    rmSync(path.join(store, 'catalog.json'));
    await refused(store, temp, dir, /: no catalog\.json in the directory; it is not a dir:\/\/ store/);
  });

  for (const [label, manifestFile] of [
    ['../', '../manifest.json'],
    ['an absolute path', '/etc/passwd'],
  ] as const) {
    test(`a catalog entry with ${label} is refused`, async () => {
      const { store, temp, dir } = await copyOf(stores.get('docker-classic.tar') as string, 'catalog-escape');
      writeFileSync(path.join(dir, 'manifest.json'), readFileSync(path.join(store, 'manifest.json')));
      writeFileSync(path.join(store, 'catalog.json'), JSON.stringify({ sample: { v1: manifestFile } }));
      await refused(store, temp, dir, /: catalog\.json names ".*" as the manifest of sample:v1, which is not a plain file name; refusing a path outside the store's top directory$/);
    });
  }

  for (const [label, bad] of [
    ['a ../ layer', (m: { Layers: string[] }) => (m.Layers[0] = `../outside/layer.tar`)],
    ['an absolute layer', (m: { Layers: string[] }) => (m.Layers[0] = `/etc/passwd`)],
    ['a ../ config', (m: { Config: string }) => (m.Config = `../config.json`)],
  ] as const) {
    test(`a manifest with ${label} path is refused`, async () => {
      const { store, temp, dir } = await copyOf(stores.get('docker-classic.tar') as string, 'manifest-escape');
      // The file a ../ path would reach exists, so only the check can stop it.
      mkdirSync(path.join(dir, 'outside'), { recursive: true });
      cpSync(path.join(store, hexOf(classic().diffIds[0] as string), 'layer.tar'), path.join(dir, 'outside', 'layer.tar'));
      cpSync(path.join(store, `${hexOf(classic().configDigest as string)}.json`), path.join(dir, 'config.json'));
      const manifest = readJson(path.join(store, 'manifest.json')) as [{ Config: string; Layers: string[] }];
      (bad as (m: { Config: string; Layers: string[] }) => void)(manifest[0]);
      writeFileSync(path.join(store, 'manifest.json'), JSON.stringify(manifest));
      await refused(store, temp, dir, /: manifest\.json (Layers\[0\]|Config) ".*" (has a "\.\." component|is absolute); refusing a path outside the store$/);
    });
  }

  test('a layer directory that is a symbolic link is not read through', async () => {
    const { store, temp, dir } = await copyOf(stores.get('docker-classic.tar') as string, 'symlink');
    const hex = hexOf(classic().diffIds[0] as string);
    renameSync(path.join(store, hex), path.join(dir, 'elsewhere'));
    symlinkSync(path.join(dir, 'elsewhere'), path.join(store, hex));
    await refused(store, temp, dir, new RegExp(`: layer 0 ${hex}/layer\\.tar: ${hex} is a symbolic link, not a directory; refusing to read through it$`));
  });

  test('an image whose manifest.json a later image replaced (written without unique names)', async () => {
    const dir = await tmpDir('dir-source-replaced');
    const temp = path.join(dir, 'tmp');
    const store = path.join(dir, 'store');
    for (const index of [0, 1]) {
      const r = await occystrap(['--temp-dir', temp, 'process', `tar://${fixturePath('podman-multi.tar')}?index=${index}`, `dir://${store}`]);
      assert.equal(r.code, 0, r.stderr);
    }
    await refused(
      store,
      temp,
      dir,
      /: catalog\.json names manifest\.json for docker\.io\/library\/sample:v1, but manifest\.json holds docker\.io\/library\/other:v2 \(a later image written without \?unique_names=true replaced it\)/,
      `dir://${store}?image=docker.io/library/sample&tag=v1`,
    );
    // The image manifest.json does hold is read as usual.
    const r = await occystrap(['--temp-dir', temp, 'process', `dir://${store}?tag=v2`, `tar://${path.join(dir, 'v2.tar')}`]);
    assert.equal(r.code, 0, r.stderr);
  });

  test('a catalog.json or layer.tar that is a FIFO is refused without blocking', async () => {
    const { store, temp, dir } = await copyOf(stores.get('docker-classic.tar') as string, 'fifo');
    rmSync(path.join(store, 'catalog.json'));
    execFileSync('mkfifo', [path.join(store, 'catalog.json')]);
    await refused(store, temp, dir, /: catalog\.json is a FIFO, not a regular file; refusing it$/);
    rmSync(path.join(store, 'catalog.json'));
    cpSync(path.join(stores.get('docker-classic.tar') as string, 'catalog.json'), path.join(store, 'catalog.json'));
    const hex = hexOf(classic().diffIds[3] as string);
    rmSync(path.join(store, hex, 'layer.tar'));
    execFileSync('mkfifo', [path.join(store, hex, 'layer.tar')]);
    await refused(store, temp, dir, new RegExp(`: layer 3 ${hex}/layer\\.tar is a FIFO, not a regular file; refusing it$`));
  });

  test('a store with several images and no choice', async () => {
    const dir = await tmpDir('dir-source-several');
    await refused(multiStore, path.join(dir, 'tmp'), dir, /the store holds 2 images \(.*\); choose one with \?image=NAME&tag=TAG$/);
  });

  test('a dir:// source that does not exist is a usage error (exit 2)', async () => {
    const dir = await tmpDir('dir-source-absent');
    const r = await occystrap(['process', `dir://${path.join(dir, 'nope')}`, `tar://${path.join(dir, 'out.tar')}`]);
    assert.equal(r.code, 2, r.stderr);
    assert.deepEqual(errorLines(r.stderr), [`occystrap: usage error: dir://${path.join(dir, 'nope')}: ${path.join(dir, 'nope')} does not exist; give the directory of a dir:// store`]);
  });
});
