// tar:// -> dir:// with the real CLI on every valid docker-save fixture:
// the store's files are checked against the facts in fixtures.json (diff_ids,
// config digest, RepoTags), and every run must leave its --temp-dir empty.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { cleanupTmpDirs, fixture, fixturePath, sha256File, tmpDir, VALID_ARCHIVES, type ImageFacts } from './fixtures.js';
import {
  errorLines,
  hexOf,
  identity,
  jsonSummary,
  listDir,
  occystrap,
  runDirs,
  splitRepoTag,
  strayTempFiles,
  summaryLines,
} from './cli-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});


interface Workspace {
  base: string;
  temp: string;
  out: string;
}

async function workspace(name: string): Promise<Workspace> {
  const base = await tmpDir(name);
  return { base, temp: path.join(base, 'tmp'), out: path.join(base, 'store') };
}

/** The --temp-dir holds nothing (the CLI creates it, then removes its run dir). */
function assertTempEmpty(temp: string): void {
  assert.deepEqual(listDir(temp), [], `${temp} should be empty after the run`);
}

function readJson(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'));
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

/**
 * Checks one image in a store: its manifest file lists Config/Layers/RepoTags
 * as expected, every layer file hashes to its diff_id and the config file to
 * the config digest. Returns the sum of the stored layer sizes.
 */
async function assertImageInStore(store: string, manifestName: string, facts: ImageFacts, repoTag: string, imageName?: string): Promise<number> {
  const manifest = readJson(path.join(store, manifestName));
  const expected: Record<string, unknown> = {
    Config: `${hexOf(facts.configDigest as string)}.json`,
    Layers: facts.diffIds.map((d) => `${hexOf(d)}/layer.tar`),
    RepoTags: [repoTag],
  };
  if (imageName !== undefined) expected['ImageName'] = imageName;
  assert.deepEqual(manifest, [expected], `${manifestName} contents`);

  assert.equal(await sha256File(path.join(store, `${hexOf(facts.configDigest as string)}.json`)), facts.configDigest, 'config bytes hash to the config digest');
  let bytes = 0;
  for (const diffId of unique(facts.diffIds)) {
    const dir = path.join(store, hexOf(diffId));
    assert.deepEqual(listDir(dir), ['layer.tar'], `${dir} holds just layer.tar`);
    const layer = path.join(dir, 'layer.tar');
    assert.ok(statSync(layer).isFile(), `${layer} is a regular file`);
    assert.equal(await sha256File(layer), diffId, `${layer} hashes to its diff_id`);
    bytes += statSync(layer).size;
  }
  return bytes;
}

describe('tar:// -> dir:// for every valid fixture', () => {
  for (const name of VALID_ARCHIVES) {
    test(name, async () => {
      const facts = fixture(name);
      const image = facts.images[0] as ImageFacts;
      const repoTag = image.repoTags[0] as string;
      const ws = await workspace(`t2d-${name}`);
      const r = await occystrap(['--temp-dir', ws.temp, '-O', 'json', 'process', `tar://${fixturePath(name)}`, `dir://${ws.out}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(errorLines(r.stderr), []);
      const summaries = summaryLines(r.stderr);
      assert.equal(summaries.length, 1, r.stderr);
      assert.match(summaries[0] as string, new RegExp(`^Summary: 1/1 images, ${image.layerCount} layers`));

      const uniqueDiffIds = unique(image.diffIds);
      const configName = `${hexOf(image.configDigest as string)}.json`;
      assert.deepEqual(listDir(ws.out), ['catalog.json', 'manifest.json', configName, ...uniqueDiffIds.map(hexOf)].sort(), 'store contents');
      const bytes = await assertImageInStore(ws.out, 'manifest.json', image, repoTag);
      const { name: imageName, tag } = splitRepoTag(repoTag);
      assert.deepEqual(readJson(path.join(ws.out, 'catalog.json')), { [imageName]: { [tag]: 'manifest.json' } });

      const summary = jsonSummary(r.stdout);
      assert.equal(summary.images, 1);
      assert.equal(summary.layers, image.layerCount);
      assert.equal(summary.layersSkipped, image.layerCount - uniqueDiffIds.length, 'repeated layers are stored once');
      assert.equal(summary.bytes, bytes, 'summary bytes = bytes of the stored layers');
      assert.equal(summary.copiedAcrossDevices, 0, 'temp dir and store are on one filesystem: layers are renamed, not copied');
      assert.equal(path.resolve(summary.destination), path.resolve(ws.out));

      assertTempEmpty(ws.temp);
      assert.deepEqual(strayTempFiles(ws.base), []);
    });
  }
});

describe('multi-image archive (podman-multi.tar)', () => {
  const multi = () => fixture('podman-multi.tar');
  const src = () => fixturePath('podman-multi.tar');

  const selectors: Array<[string, number]> = [
    ['?index=0', 0],
    ['?index=1', 1],
    ['?tag=other:v2', 1],
    ['?tag=docker.io/library/other:v2', 1],
    ['?tag=sample:v1', 0],
  ];
  for (const [query, which] of selectors) {
    test(`${query} selects image ${which}`, async () => {
      const image = multi().images[which] as ImageFacts;
      const repoTag = image.repoTags[0] as string;
      const ws = await workspace('multi-select');
      const r = await occystrap(['--temp-dir', ws.temp, 'process', `tar://${src()}${query}`, `dir://${ws.out}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(summaryLines(r.stderr)[0] ?? '', new RegExp(`^Summary: 1/1 images, ${image.layerCount} layers`));
      const configName = `${hexOf(image.configDigest as string)}.json`;
      assert.deepEqual(listDir(ws.out), ['catalog.json', 'manifest.json', configName, ...unique(image.diffIds).map(hexOf)].sort());
      await assertImageInStore(ws.out, 'manifest.json', image, repoTag);
      const { name, tag } = splitRepoTag(repoTag);
      assert.deepEqual(readJson(path.join(ws.out, 'catalog.json')), { [name]: { [tag]: 'manifest.json' } });
      assertTempEmpty(ws.temp);
    });
  }

  const badSelectors: Array<[string, RegExp]> = [
    ['?index=2', /index 2/],
    ['?index=7', /index 7/],
    ['?tag=nope:v9', /nope:v9/],
    ['?tag=other:v1', /other:v1/],
  ];
  for (const [query, phrase] of badSelectors) {
    test(`${query} fails at run time (exit 1) naming the images the archive holds`, async () => {
      const ws = await workspace('multi-bad');
      const r = await occystrap(['--temp-dir', ws.temp, 'process', `tar://${src()}${query}`, `dir://${ws.out}`]);
      assert.equal(r.code, 1, r.stderr);
      const errors = errorLines(r.stderr);
      assert.equal(errors.length, 1, r.stderr);
      const line = errors[0] as string;
      assert.match(line, /^occystrap: error: /);
      assert.match(line, phrase);
      for (const img of multi().images) {
        for (const t of img.repoTags) assert.ok(line.includes(t), `the message names ${t}: ${line}`);
      }
      assert.deepEqual(summaryLines(r.stderr), []);
      assert.equal(existsSync(ws.out), false, 'no store is left behind');
      assertTempEmpty(ws.temp);
      assert.deepEqual(strayTempFiles(ws.base), []);
    });
  }

  test('?unique_names=true: both images in one store, shared base layer stored once', async () => {
    const [sample, other] = multi().images as [ImageFacts, ImageFacts];
    const ws = await workspace('multi-unique');
    const target = `dir://${ws.out}?unique_names=true`;

    const first = await occystrap(['--temp-dir', ws.temp, '-O', 'json', 'process', `tar://${src()}?index=0`, target]);
    assert.equal(first.code, 0, first.stderr);
    const shared = sample.diffIds.filter((d) => other.diffIds.includes(d));
    assert.ok(shared.length >= 1, 'the fixture images share a base layer');
    const sharedBefore = shared.map((d) => identity(path.join(ws.out, hexOf(d), 'layer.tar')));

    const second = await occystrap(['--temp-dir', ws.temp, '-O', 'json', 'process', `tar://${src()}?tag=other:v2`, target]);
    assert.equal(second.code, 0, second.stderr);
    const s2 = jsonSummary(second.stdout);
    assert.equal(s2.layers, other.layerCount);
    assert.equal(s2.layersSkipped, unique(shared).length, 'the shared base layer is not fetched again');
    assert.match(summaryLines(second.stderr)[0] ?? '', new RegExp(`\\(${unique(shared).length} skipped\\)`));

    const sampleManifest = `manifest-${splitRepoTag(sample.repoTags[0] as string).name.replace(/[/:@]/g, '_')}-${splitRepoTag(sample.repoTags[0] as string).tag}.json`;
    const otherManifest = `manifest-${splitRepoTag(other.repoTags[0] as string).name.replace(/[/:@]/g, '_')}-${splitRepoTag(other.repoTags[0] as string).tag}.json`;
    assert.equal(sampleManifest, 'manifest-docker.io_library_sample-v1.json');
    assert.equal(otherManifest, 'manifest-docker.io_library_other-v2.json');

    const allDiffIds = unique([...sample.diffIds, ...other.diffIds]);
    assert.deepEqual(
      listDir(ws.out),
      [
        'catalog.json',
        sampleManifest,
        otherManifest,
        `${hexOf(sample.configDigest as string)}.json`,
        `${hexOf(other.configDigest as string)}.json`,
        ...allDiffIds.map(hexOf),
      ].sort(),
      'one directory per distinct layer, no plain manifest.json',
    );
    await assertImageInStore(ws.out, sampleManifest, sample, sample.repoTags[0] as string, splitRepoTag(sample.repoTags[0] as string).name);
    await assertImageInStore(ws.out, otherManifest, other, other.repoTags[0] as string, splitRepoTag(other.repoTags[0] as string).name);
    const sampleName = splitRepoTag(sample.repoTags[0] as string);
    const otherName = splitRepoTag(other.repoTags[0] as string);
    assert.deepEqual(readJson(path.join(ws.out, 'catalog.json')), {
      [otherName.name]: { [otherName.tag]: otherManifest },
      [sampleName.name]: { [sampleName.tag]: sampleManifest },
    });
    const sharedAfter = shared.map((d) => identity(path.join(ws.out, hexOf(d), 'layer.tar')));
    assert.deepEqual(sharedAfter, sharedBefore, 'the shared layer file was not replaced');
    assertTempEmpty(ws.temp);
    assert.deepEqual(strayTempFiles(ws.out), []);
  });
});

describe('the same image twice into one store', () => {
  for (const name of ['skopeo-legacy.tar', 'docker25-zstd.tar']) {
    test(`${name}: the second run skips every layer and leaves the layer files alone`, async () => {
      const image = fixture(name).images[0] as ImageFacts;
      const ws = await workspace('twice');
      const args = ['--temp-dir', ws.temp, '-O', 'json', 'process', `tar://${fixturePath(name)}`, `dir://${ws.out}`];

      const first = await occystrap(args);
      assert.equal(first.code, 0, first.stderr);
      const s1 = jsonSummary(first.stdout);
      const uniqueCount = unique(image.diffIds).length;
      assert.equal(s1.layersSkipped, image.layerCount - uniqueCount);
      const layerFiles = unique(image.diffIds).map((d) => path.join(ws.out, hexOf(d), 'layer.tar'));
      const configFile = path.join(ws.out, `${hexOf(image.configDigest as string)}.json`);
      const before = layerFiles.map(identity);
      const configBefore = identity(configFile);
      const listingBefore = listDir(ws.out);

      const second = await occystrap(args);
      assert.equal(second.code, 0, second.stderr);
      const s2 = jsonSummary(second.stdout);
      assert.equal(s2.layers, image.layerCount);
      assert.equal(s2.layersSkipped, image.layerCount, 'the output told the input it already has every layer');
      assert.equal(s2.bytes, 0, 'no layer bytes stored the second time');
      assert.match(summaryLines(second.stderr)[0] ?? '', new RegExp(`^Summary: 1/1 images, ${image.layerCount} layers \\(${image.layerCount} skipped\\), 0 B`));

      assert.deepEqual(layerFiles.map(identity), before, 'layer files keep their inodes and mtimes');
      assert.deepEqual(identity(configFile), configBefore, 'the config file is not rewritten');
      assert.deepEqual(listDir(ws.out), listingBefore);
      await assertImageInStore(ws.out, 'manifest.json', image, image.repoTags[0] as string);
      assertTempEmpty(ws.temp);
      assert.deepEqual(runDirs(ws.temp), []);
      assert.deepEqual(strayTempFiles(ws.out), []);
    });
  }
});

describe('temp dir on another filesystem', () => {
  test('layers are copied across (and counted), nothing left in either place', async (t) => {
    const shm = '/dev/shm';
    const ws = await workspace('xdev');
    if (!existsSync(shm) || statSync(shm).dev === statSync(ws.base).dev) {
      t.skip(`${shm} is missing or on the same filesystem as ${ws.base}`);
      return;
    }
    const temp = await mkdtemp(path.join(shm, 'occystrap-it-'));
    try {
      const name = 'skopeo-legacy.tar';
      const image = fixture(name).images[0] as ImageFacts;
      const r = await occystrap(['--temp-dir', temp, '-O', 'json', 'process', `tar://${fixturePath(name)}`, `dir://${ws.out}`]);
      assert.equal(r.code, 0, r.stderr);
      const s = jsonSummary(r.stdout);
      const uniqueCount = unique(image.diffIds).length;
      assert.equal(s.copiedAcrossDevices, uniqueCount, 'every stored layer had to be copied');
      assert.match(summaryLines(r.stderr)[0] ?? '', new RegExp(`, ${uniqueCount} copied across filesystems$`));
      await assertImageInStore(ws.out, 'manifest.json', image, image.repoTags[0] as string);
      for (const d of unique(image.diffIds)) assert.deepEqual(listDir(path.join(ws.out, hexOf(d))), ['layer.tar'], 'no staging copy left');
      assert.deepEqual(strayTempFiles(ws.out), []);
      assert.deepEqual(listDir(temp), []);
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
  });
});
