// The CLI's basics through the real binary: help, version, the JSON summary,
// and the URI spellings file://, tar:PATH (no //), relative paths.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, fixture, fixturePath, repoRoot, sha256File, tmpDir, type ImageFacts } from './fixtures.js';
import { errorLines, hexOf, jsonSummary, listDir, occystrap, strayTempFiles, summaryLines } from './cli-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});

const SAMPLE = 'skopeo-legacy.tar';
const image = () => fixture(SAMPLE).images[0] as ImageFacts;

/** Store contents worth comparing: file names, manifest, catalog and each layer's hash. */
async function storeDigest(store: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of listDir(store)) {
    const p = path.join(store, name);
    if (name.endsWith('.json')) out[name] = readFileSync(p, 'utf8');
    else out[`${name}/layer.tar`] = await sha256File(path.join(p, 'layer.tar'));
  }
  return out;
}

describe('help and version', () => {
  test('--help exits 0 and lists the process command', async () => {
    const r = await occystrap(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /occystrap \[OPTIONS\] process/);
    assert.match(r.stdout, /0\.1\.0/);
  });

  test('process --help exits 0 and describes process', async () => {
    const r = await occystrap(['process', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: occystrap \[OPTIONS\] process SOURCE DESTINATION/m);
    assert.match(r.stdout, /tar:\/\//);
    assert.match(r.stdout, /dir:\/\//);
    assert.match(r.stdout, /--filter/);
  });

  test('-h is --help', async () => {
    const r = await occystrap(['-h']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /occystrap \[OPTIONS\] process/);
  });

  test('--version prints 0.1.0 (the package version)', async () => {
    const r = await occystrap(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '0.1.0');
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(r.stdout.trim(), pkg.version);
  });
});

describe('summary output', () => {
  test('text mode: nothing on stdout, one Summary line on stderr', async () => {
    const base = await tmpDir('basics-text');
    const r = await occystrap(['--temp-dir', path.join(base, 'tmp'), 'process', `tar://${fixturePath(SAMPLE)}`, `dir://${path.join(base, 'store')}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    const summaries = summaryLines(r.stderr);
    assert.equal(summaries.length, 1);
    assert.match(summaries[0] as string, /^Summary: 1\/1 images, 5 layers \(1 skipped\), [\d.]+ MB written, [\d.]+s at [\d.]+ (B|KB|MB)\/s$/);
    assert.deepEqual(errorLines(r.stderr), []);
  });

  test('-O json prints one JSON summary on stdout with layers and bytes', async () => {
    const base = await tmpDir('basics-json');
    const store = path.join(base, 'store');
    const r = await occystrap(['--temp-dir', path.join(base, 'tmp'), '-O', 'json', 'process', `tar://${fixturePath(SAMPLE)}`, `dir://${store}`]);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonSummary(r.stdout);
    assert.deepEqual(Object.keys(s).sort(), [
      'bytes', 'compressed', 'copiedAcrossDevices', 'destination', 'downloaded', 'image', 'images', 'inflated', 'layers', 'layersSkipped', 'rate', 'rateLimited', 'retries', 'seconds', 'source', 'uploaded', 'written',
    ]);
    assert.equal(s.images, 1);
    assert.equal(s.image, `${image().repoTags?.[0] ?? ''}`, 'the image, NAME:TAG');
    assert.equal(s.downloaded, 0, 'nothing downloaded from a file');
    assert.equal(s.written, s.bytes);
    assert.equal(typeof s.rate, 'number');
    assert.equal(s.inflated, 0, 'docker-save layers are tars: nothing to decompress');
    assert.equal(s.compressed, 0);
    assert.equal(s.layers, image().layerCount);
    assert.equal(s.layersSkipped, 1);
    let bytes = 0;
    for (const d of new Set(image().diffIds)) bytes += readFileSync(path.join(store, hexOf(d), 'layer.tar')).length;
    assert.equal(s.bytes, bytes);
    assert.equal(typeof s.seconds, 'number');
    assert.ok(s.seconds >= 0);
    assert.equal(path.resolve(s.destination), store);
  });

  test('-O json for tar://: bytes are the layer bytes written into the archive', async () => {
    const base = await tmpDir('basics-json-tar');
    const out = path.join(base, 'out.tar');
    const r = await occystrap(['--temp-dir', path.join(base, 'tmp'), 'process', `tar://${fixturePath(SAMPLE)}`, `tar://${out}`, '-O', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonSummary(r.stdout);
    assert.equal(s.layers, image().layerCount);
    assert.equal(s.layersSkipped, 1, 'the repeated layer is written once');
    assert.ok(s.bytes > 2_000_000);
    assert.equal(path.resolve(s.destination), out);
  });
});

describe('URI spellings', () => {
  test('file:// is the same as tar:// (source and destination)', async () => {
    const base = await tmpDir('basics-file');
    const tmp = path.join(base, 'tmp');
    const a = await occystrap(['--temp-dir', tmp, 'process', `tar://${fixturePath(SAMPLE)}`, `dir://${path.join(base, 'a')}`]);
    const b = await occystrap(['--temp-dir', tmp, 'process', `file://${fixturePath(SAMPLE)}`, `dir://${path.join(base, 'b')}`]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(await storeDigest(path.join(base, 'b')), await storeDigest(path.join(base, 'a')));

    const t1 = await occystrap(['--temp-dir', tmp, 'process', `tar://${fixturePath(SAMPLE)}`, `tar://${path.join(base, 't1.tar')}`]);
    const t2 = await occystrap(['--temp-dir', tmp, 'process', `file://${fixturePath(SAMPLE)}`, `file://${path.join(base, 't2.tar')}`]);
    assert.equal(t1.code, 0, t1.stderr);
    assert.equal(t2.code, 0, t2.stderr);
    assert.ok(readFileSync(path.join(base, 't1.tar')).equals(readFileSync(path.join(base, 't2.tar'))));
    assert.deepEqual(listDir(tmp), []);
    assert.deepEqual(strayTempFiles(base), []);
  });

  test('tar:PATH and dir:PATH without // work', async () => {
    const base = await tmpDir('basics-noslash');
    const tmp = path.join(base, 'tmp');
    const a = await occystrap(['--temp-dir', tmp, 'process', `tar://${fixturePath(SAMPLE)}`, `dir://${path.join(base, 'a')}`]);
    const b = await occystrap(['--temp-dir', tmp, 'process', `tar:${fixturePath(SAMPLE)}`, `dir:${path.join(base, 'b')}`]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(await storeDigest(path.join(base, 'b')), await storeDigest(path.join(base, 'a')));
    const t = await occystrap(['--temp-dir', tmp, 'process', `tar:${fixturePath(SAMPLE)}`, `tar:${path.join(base, 'c.tar')}`]);
    assert.equal(t.code, 0, t.stderr);
    assert.deepEqual(listDir(tmp), []);
  });

  test('relative paths resolve against the working directory; schemes are case-insensitive', async () => {
    const base = await tmpDir('basics-relative');
    const rel = path.relative(base, fixturePath(SAMPLE));
    const r = await occystrap(['--temp-dir', 'tmp', 'process', `TAR://${rel}`, 'Dir://store'], { cwd: base });
    assert.equal(r.code, 0, r.stderr);
    const img = image();
    assert.deepEqual(
      listDir(path.join(base, 'store')),
      ['catalog.json', 'manifest.json', `${hexOf(img.configDigest as string)}.json`, ...[...new Set(img.diffIds)].map(hexOf)].sort(),
    );
    assert.deepEqual(listDir(path.join(base, 'tmp')), []);
    const t = await occystrap(['--temp-dir', 'tmp', 'process', `tar:${rel}`, 'tar:out.tar'], { cwd: base });
    assert.equal(t.code, 0, t.stderr);
    assert.deepEqual(listDir(base), ['out.tar', 'store', 'tmp']);
  });
});

describe('the gzip engine setting', () => {
  test('OCCYSTRAP_GZIP_ENGINE with an unknown value: one usage line, exit 2, nothing written', async () => {
    const { cleanEnv } = await import('./cli-helpers.js');
    const dir = await tmpDir('basics-gzip-engine');
    const r = await occystrap(['--temp-dir', dir, 'process', `tar://${fixturePath(SAMPLE)}`, `ocidir://${path.join(dir, 'layout')}`], { env: cleanEnv({ OCCYSTRAP_GZIP_ENGINE: 'pigz' }) });
    assert.equal(r.code, 2, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] as string, /^occystrap: usage error: OCCYSTRAP_GZIP_ENGINE="pigz" is not a gzip engine; use isa-l or zlib$/);
    assert.deepEqual(listDir(dir), []);
  });

  test('OCCYSTRAP_GZIP_ENGINE=zlib and =isa-l both write a layout that skopeo reads back; each is deterministic', async () => {
    const { cleanEnv } = await import('./cli-helpers.js');
    const dir = await tmpDir('basics-gzip-engines');
    const digests: Record<string, string[]> = {};
    for (const engine of ['zlib', 'isa-l', 'zlib']) {
      const layout = path.join(dir, `${engine}-${Object.keys(digests).length}`);
      const r = await occystrap(['--temp-dir', dir, 'process', `tar://${fixturePath(SAMPLE)}`, `ocidir://${layout}:v1`], { env: cleanEnv({ OCCYSTRAP_GZIP_ENGINE: engine }) });
      assert.equal(r.code, 0, r.stderr);
      const index = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      const manifest = JSON.parse(readFileSync(path.join(layout, 'blobs', 'sha256', (index.manifests[0] as { digest: string }).digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
      const layers = manifest.layers.map((l) => l.digest);
      // skopeo reads every blob back against its digest (gunzip included) into a dir: copy.
      const { execFileSync } = await import('node:child_process');
      execFileSync('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci:${layout}:v1`, `dir:${layout}-copy`], { stdio: 'pipe' });
      if (digests[engine]) assert.deepEqual(layers, digests[engine], `${engine} gives the same blobs twice`);
      digests[engine] = layers;
    }
    assert.notDeepEqual(digests['zlib'], digests['isa-l'], 'the engines really differ');
  });
});
