// The ocidir:// output with real tools as oracles: skopeo (inspect, copy) and umoci
// (unpack) accept the layouts occystrap writes; registry:// -> ocidir:// passes the
// registry's blobs through untouched (no inflate, no compress); tar:// sources are
// compressed with gzip or zstd, deterministically; several tags share a layout; blobs
// already there are not fetched again; a failed run leaves the layout as it was; links
// inside the layout are refused.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'zstd-napi';
import * as tarStream from 'tar-stream';
import { Readable } from 'node:stream';
import { cleanupTmpDirs, fixture, fixturePath, run, skopeo } from './fixtures.js';
import { errorLines, jsonSummary, listDir, startOccystrap, waitFor } from './cli-helpers.js';
import { blobPath, httpGet, startFaultProxy, type FaultProxy, type PushedImage, type Registry } from '../registry/harness.js';
import { registryWith } from '../support/sample-registry.js';
import { assertFailsOneLine, assertOk, cli, isolatedEnv, workspace, type Workspace } from '../registry/cli.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let registry: Registry;
let oci: PushedImage;
let docker: PushedImage;

before(async () => {
  ({ registry, pushed: [oci, docker] } = await registryWith([['sample', 'sample:v1'], ['sample', 'team/sample-docker:v1', 'v2s2']]));
});

after(async () => {
  await registry?.stop();
  await cleanupTmpDirs();
});

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}
interface Manifest {
  schemaVersion: number;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const blob = (layout: string, digest: string) => readFileSync(path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)));

function readIndex(layout: string): { manifests: Descriptor[] } {
  return JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
}

function entryFor(layout: string, tag: string): Descriptor {
  const found = readIndex(layout).manifests.filter((m) => m.annotations?.[REF_NAME] === tag);
  assert.equal(found.length, 1, `one index entry named ${tag}`);
  return found[0] as Descriptor;
}

function manifestFor(layout: string, tag: string): Manifest {
  const entry = entryFor(layout, tag);
  const bytes = blob(layout, entry.digest);
  assert.equal(sha256(bytes), entry.digest, 'the manifest blob hashes to its name');
  return JSON.parse(bytes.toString('utf8')) as Manifest;
}

function configFor(layout: string, tag: string): { rootfs: { diff_ids: string[] } } {
  return JSON.parse(blob(layout, manifestFor(layout, tag).config.digest).toString('utf8')) as { rootfs: { diff_ids: string[] } };
}

/** Every entry under `dir` with its kind and content hash (to show a layout did not change). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const full = path.join(dir, rel);
    const st = lstatSync(full);
    if (st.isSymbolicLink()) out[rel] = `link:${readlinkSync(full)}`;
    else if (st.isDirectory()) {
      if (rel !== '') out[rel] = 'dir';
      for (const name of readdirSync(full)) walk(path.join(rel, name));
    } else out[rel] = `file:${sha256(readFileSync(full))}`;
  };
  if (existsSync(dir)) walk('');
  return out;
}

async function skopeoOk(args: string[]): Promise<string> {
  const r = await skopeo(args);
  assert.equal(r.code, 0, `skopeo ${args.join(' ')}:\n${r.stderr}`);
  return r.stdout;
}

/** skopeo inspect oci:DIR:TAG accepts the image; returns its layer digests. */
async function skopeoInspect(layout: string, tag: string): Promise<string[]> {
  return (JSON.parse(await skopeoOk(['inspect', `oci:${layout}:${tag}`])) as { Layers: string[] }).Layers;
}

function uncompress(bytes: Buffer, mediaType: string): Buffer {
  if (mediaType.endsWith('+gzip')) return gunzipSync(bytes);
  if (mediaType.endsWith('+zstd')) return zstdDecompress(bytes);
  return bytes;
}

/** Each layer blob uncompresses to the config's diff_id. */
function assertDiffIds(layout: string, tag: string): void {
  const manifest = manifestFor(layout, tag);
  const diffIds = configFor(layout, tag).rootfs.diff_ids;
  assert.equal(manifest.layers.length, diffIds.length);
  manifest.layers.forEach((l, i) => {
    const bytes = blob(layout, l.digest);
    assert.equal(bytes.length, l.size, `layer ${i} size`);
    assert.equal(sha256(bytes), l.digest, `layer ${i} digest`);
    assert.equal(sha256(uncompress(bytes, l.mediaType)), diffIds[i], `layer ${i} uncompresses to its diff_id`);
  });
}

/** The registry's manifest for `name:tag`, as it serves it. */
async function registryManifest(name: string, tag: string): Promise<Manifest> {
  const r = await httpGet(`${registry.url}/v2/${name}/manifests/${tag}`, { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' });
  assert.equal(r.status, 200);
  return JSON.parse(r.body.toString('utf8')) as Manifest;
}

const effectLines = (stderr: string) => stderr.split('\n').filter((l) => /^debug: (inflate|compress) /.test(l));

/** The config of the one image in a docker-save tar. */
async function configInTar(file: string): Promise<{ rootfs: { diff_ids: string[] } }> {
  const entries = new Map<string, Buffer>();
  const extract = tarStream.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        if (header.name.endsWith('.json')) entries.set(header.name, Buffer.concat(chunks));
        next();
      });
      stream.resume();
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  Readable.from(readFileSync(file)).pipe(extract);
  await done;
  const manifest = JSON.parse((entries.get('manifest.json') as Buffer).toString('utf8')) as { Config: string }[];
  return JSON.parse((entries.get((manifest[0] as { Config: string }).Config) as Buffer).toString('utf8')) as { rootfs: { diff_ids: string[] } };
}

describe('tar:// -> ocidir://', () => {
  const tarFixture = () => fixturePath('docker25-plain.tar');

  test('gzip (the default): skopeo inspects and copies it, umoci unpacks it, blobs hash to the diff_ids, a second run writes the same bytes', async () => {
    const ws = await workspace('ocidir-tar-gzip');
    const layout = ws.out('layout');
    const r = assertOk(await cli(ws, ['-O', 'json', '--debug', 'process', `tar://${tarFixture()}`, `ocidir://${layout}:v1`]), ws);
    const summary = jsonSummary(r.stdout);
    assert.equal(summary.compressed, 4, 'each distinct layer compressed once');
    assert.ok(effectLines(r.stderr).some((l) => / with gzip /.test(l)), 'the effect log shows the compress effects');
    const manifest = manifestFor(layout, 'v1');
    assert.equal(manifest.schemaVersion, 2);
    assert.equal(manifest.mediaType, OCI_MANIFEST);
    assert.equal(manifest.config.mediaType, 'application/vnd.oci.image.config.v1+json');
    assert.equal(manifest.config.digest, fixture('docker25-plain.tar').configDigest);
    assert.ok(manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+gzip'));
    assertDiffIds(layout, 'v1');
    assert.deepEqual(await skopeoInspect(layout, 'v1'), manifest.layers.map((l) => l.digest));
    await skopeoOk(['copy', '--quiet', `oci:${layout}:v1`, `docker-archive:${ws.out('copy.tar')}`]);
    const unpack = await run('umoci', ['unpack', '--rootless', '--image', `${layout}:v1`, ws.out('bundle')]);
    assert.equal(unpack.code, 0, unpack.stderr);
    assert.ok(existsSync(path.join(ws.out('bundle'), 'rootfs')));
    assert.deepEqual(JSON.parse(readFileSync(path.join(layout, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });

    const again = ws.out('again');
    assertOk(await cli(ws, ['process', `tar://${tarFixture()}`, `ocidir://${again}:v1`]), ws);
    assert.equal(entryFor(again, 'v1').digest, entryFor(layout, 'v1').digest, 'deterministic: same manifest digest');
  });

  test('--compression zstd and OCCYSTRAP_COMPRESSION=zstd: zstd layers skopeo copies, deterministic', async () => {
    const ws = await workspace('ocidir-tar-zstd');
    const layout = ws.out('layout');
    const r = assertOk(await cli(ws, ['-O', 'json', '--compression', 'zstd', 'process', `tar://${tarFixture()}`, `ocidir://${layout}:z`]), ws);
    assert.equal(jsonSummary(r.stdout).compressed, 4);
    const manifest = manifestFor(layout, 'z');
    assert.ok(manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd'));
    assert.ok(manifest.layers.every((l) => blob(layout, l.digest).subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))), 'zstd frames');
    assertDiffIds(layout, 'z');
    await skopeoInspect(layout, 'z');
    await skopeoOk(['copy', '--quiet', `oci:${layout}:z`, `dir:${ws.out('copy')}`]);

    const again = ws.out('again');
    assertOk(await cli(ws, ['process', `tar://${tarFixture()}`, `ocidir://${again}:z`], { env: { OCCYSTRAP_COMPRESSION: 'zstd' } }), ws);
    assert.equal(entryFor(again, 'z').digest, entryFor(layout, 'z').digest, 'deterministic: same manifest digest');
  });

  test('a bad --compression or OCCYSTRAP_COMPRESSION is a usage error (exit 2), one line', async () => {
    const ws = await workspace('ocidir-bad-compression');
    const layout = ws.out('layout');
    const line = assertFailsOneLine(await cli(ws, ['--compression', 'lz4', 'process', `tar://${tarFixture()}`, `ocidir://${layout}`]), ws, 2);
    assert.match(line, /--compression takes gzip or zstd, got "lz4"/);
    const envLine = assertFailsOneLine(await cli(ws, ['process', `tar://${tarFixture()}`, `ocidir://${layout}`], { env: { OCCYSTRAP_COMPRESSION: 'xz' } }), ws, 2);
    assert.match(envLine, /OCCYSTRAP_COMPRESSION takes gzip or zstd/);
    const digestLine = assertFailsOneLine(await cli(ws, ['process', `tar://${tarFixture()}`, `ocidir://${layout}@sha256:${'a'.repeat(64)}`]), ws, 2);
    assert.match(digestLine, /a destination takes a tag, not a digest/);
    assert.equal(existsSync(layout), false);
  });

  test('two tags share one layout; the same tag again names the new manifest only; no tag uses the source tag', async () => {
    const ws = await workspace('ocidir-tags');
    const layout = ws.out('layout');
    assertOk(await cli(ws, ['process', `tar://${tarFixture()}`, `ocidir://${layout}:one`]), ws);
    assertOk(await cli(ws, ['--compression', 'zstd', 'process', `tar://${tarFixture()}`, `ocidir://${layout}:two`]), ws);
    assert.notEqual(entryFor(layout, 'one').digest, entryFor(layout, 'two').digest);
    await skopeoInspect(layout, 'one');
    await skopeoInspect(layout, 'two');
    // `one` again, now as zstd: the tag moves to that manifest; `two` (the same manifest) keeps its own entry.
    assertOk(await cli(ws, ['--compression', 'zstd', 'process', `tar://${tarFixture()}`, `ocidir://${layout}:one`]), ws);
    assert.equal(entryFor(layout, 'one').digest, entryFor(layout, 'two').digest);
    assert.equal(readIndex(layout).manifests.length, 2);
    // No tag in the URI: the source's tag (sample:v1 -> v1).
    assertOk(await cli(ws, ['process', `tar://${tarFixture()}`, `ocidir://${layout}`]), ws);
    assert.deepEqual(readIndex(layout).manifests.map((m) => m.annotations?.[REF_NAME]).sort(), ['one', 'two', 'v1']);
    await skopeoInspect(layout, 'v1');
  });
});

describe('registry:// -> ocidir://', () => {
  for (const which of ['oci', 'docker'] as const) {
    test(`${which} media types: layer digests are the registry's, nothing inflated or compressed; skopeo and umoci accept it`, async () => {
      const image = which === 'oci' ? oci : docker;
      const ws = await workspace(`ocidir-pass-${which}`);
      const layout = ws.out('layout');
      const r = assertOk(await cli(ws, ['-O', 'json', '--debug', 'process', `registry://${image.reference}?insecure=true`, `ocidir://${layout}:pulled`]), ws);
      const summary = jsonSummary(r.stdout);
      assert.equal(summary.inflated, 0, 'no layer inflated');
      assert.equal(summary.compressed, 0, 'no layer compressed');
      assert.deepEqual(effectLines(r.stderr), [], 'no inflate/compress effect in the log');
      const source = await registryManifest(image.name, image.tag);
      const written = manifestFor(layout, 'pulled');
      assert.deepEqual(
        written.layers.map((l) => [l.digest, l.size]),
        source.layers.map((l) => [l.digest, l.size]),
      );
      assert.equal(written.config.digest, source.config.digest);
      // Docker layer types become their OCI equivalents (same bytes).
      assert.ok(written.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+gzip'), JSON.stringify(written.layers));
      assertDiffIds(layout, 'pulled');
      assert.deepEqual(await skopeoInspect(layout, 'pulled'), source.layers.map((l) => l.digest));
      await skopeoOk(['copy', '--quiet', `oci:${layout}:pulled`, `docker-archive:${ws.out('copy.tar')}`]);
      const unpack = await run('umoci', ['unpack', '--rootless', '--image', `${layout}:pulled`, ws.out('bundle')]);
      assert.equal(unpack.code, 0, unpack.stderr);
    });
  }

  test('-f normalize-timestamps: skopeo accepts it, diff_ids equal those of the same filter into tar://, a second run gives the same bytes', async () => {
    const ws = await workspace('ocidir-normalize');
    const layout = ws.out('layout');
    const src = `registry://${oci.reference}?insecure=true`;
    const r = assertOk(await cli(ws, ['-O', 'json', 'process', src, `ocidir://${layout}:norm`, '-f', 'normalize-timestamps']), ws);
    assert.ok((jsonSummary(r.stdout).compressed ?? 0) > 0, 'rewritten layers are compressed');
    await skopeoInspect(layout, 'norm');
    assertDiffIds(layout, 'norm');
    const archive = ws.out('norm.tar');
    assertOk(await cli(ws, ['process', src, `tar://${archive}`, '-f', 'normalize-timestamps']), ws);
    assert.deepEqual(configFor(layout, 'norm').rootfs.diff_ids, (await configInTar(archive)).rootfs.diff_ids);
    const again = ws.out('again');
    assertOk(await cli(ws, ['process', src, `ocidir://${again}:norm`, '-f', 'normalize-timestamps']), ws);
    assert.equal(entryFor(again, 'norm').digest, entryFor(layout, 'norm').digest);
    assert.deepEqual(snapshot(again), snapshot(layout));
  });

  test('concurrent runs into one layout keep every tag (index.json is merged under the lock)', async () => {
    const ws = await workspace('ocidir-concurrent');
    const layout = ws.out('layout');
    const tags = ['c1', 'c2', 'c3', 'c4'];
    const runs = await Promise.all(
      tags.map((tag, i) =>
        cli(ws, ['process', i % 2 ? `registry://${oci.reference}?insecure=true` : `tar://${fixturePath('docker25-plain.tar')}`, `ocidir://${layout}:${tag}`]),
      ),
    );
    for (const r of runs) assertOk(r, ws);
    assert.deepEqual(readIndex(layout).manifests.map((m) => m.annotations?.[REF_NAME]).sort(), tags);
    for (const tag of tags) {
      await skopeoInspect(layout, tag);
      assertDiffIds(layout, tag);
    }
    assert.deepEqual(readdirSync(layout).sort(), ['blobs', 'index.json', 'oci-layout']);
  });

  test('blobs already in the layout are not fetched again', async (t) => {
    const proxy = await startFaultProxy(registry.url);
    t.after(() => proxy.stop());
    const ws = await workspace('ocidir-present');
    const layout = ws.out('layout');
    const src = `registry://${proxy.host}/sample:v1?insecure=true`;
    const source = await registryManifest('sample', 'v1');
    const distinct = [...new Set(source.layers.map((l) => l.digest))];
    const layerGets = () => distinct.reduce((n, digest) => n + proxy.matching(blobPath(digest), 'GET').length, 0);
    assertOk(await cli(ws, ['process', src, `ocidir://${layout}:first`]), ws);
    const firstRun = layerGets();
    assert.equal(firstRun, distinct.length, 'each distinct layer fetched once');
    const r = assertOk(await cli(ws, ['-O', 'json', 'process', src, `ocidir://${layout}:second`]), ws);
    assert.equal(layerGets(), firstRun, 'no layer blob fetched on the second run');
    assert.equal(jsonSummary(r.stdout).layersSkipped, source.layers.length);
    assert.equal(entryFor(layout, 'first').digest, entryFor(layout, 'second').digest);
    await skopeoInspect(layout, 'second');
    // A present blob that no longer hashes to its digest is fetched again.
    const big = source.layers.reduce((a, b) => (b.size > a.size ? b : a));
    const bigPath = path.join(layout, 'blobs', 'sha256', big.digest.slice(7));
    const bytes = readFileSync(bigPath);
    bytes.writeUInt8((bytes.at(-1) as number) ^ 0xff, bytes.length - 1);
    await writeFile(bigPath, bytes);
    assertOk(await cli(ws, ['process', src, `ocidir://${layout}:third`]), ws);
    assert.equal(layerGets(), firstRun + 1, 'only the damaged blob fetched');
    assertDiffIds(layout, 'third');
  });

  test('a failure mid-run (a corrupt blob) leaves the layout as it was and no temp files', async (t) => {
    const source = await registryManifest('sample', 'v1');
    const big = source.layers.reduce((a, b) => (b.size > a.size ? b : a));
    const proxy: FaultProxy = await startFaultProxy(registry.url, [{ path: blobPath(big.digest), times: Infinity, fault: { kind: 'corrupt', offset: 5000 } }]);
    t.after(() => proxy.stop());
    const ws: Workspace = await workspace('ocidir-fail');
    const src = `registry://${proxy.host}/sample:v1?insecure=true`;

    // Into an existing layout (holding another image): unchanged afterwards.
    const layout = ws.out('layout');
    assertOk(await cli(ws, ['process', `tar://${fixturePath('docker25-plain.tar')}`, `ocidir://${layout}:kept`]), ws);
    const before = snapshot(layout);
    const line = assertFailsOneLine(await cli(ws, ['-j', '1', 'process', src, `ocidir://${layout}:broken`]), ws);
    assert.match(line, /digest|sha256/);
    assert.ok(proxy.matching(blobPath(big.digest), 'GET').length > 0, 'the corrupt blob was fetched');
    assert.deepEqual(snapshot(layout), before, 'the layout is unchanged (no blob, no temp file left)');

    // Into a new layout: no directory left.
    const fresh = ws.out('fresh');
    assertFailsOneLine(await cli(ws, ['process', src, `ocidir://${fresh}:broken`]), ws);
    assert.equal(existsSync(fresh), false, 'the layout directory this run created is gone');
  });
});

describe('ocidir:// interrupted', () => {
  for (const [signals, into] of [
    [1, 'an existing layout'],
    [2, 'a new layout'],
  ] as const) {
    test(`SIGINT ×${signals} into ${into} after some blobs landed: exit 130, the layout as it was, no temp files`, async (t) => {
      const source = await registryManifest('sample', 'v1');
      const big = source.layers.reduce((a, b) => (b.size > a.size ? b : a));
      const proxy = await startFaultProxy(registry.url, [{ path: blobPath(big.digest), times: Infinity, fault: { kind: 'throttle', bytesPerSecond: 100_000 } }]);
      t.after(() => proxy.stop());
      const ws = await workspace(`ocidir-int-${signals}`);
      const layout = ws.out('layout');
      if (signals === 1) assertOk(await cli(ws, ['process', `tar://${fixturePath('docker25-plain.tar')}`, `ocidir://${layout}:kept`]), ws);
      const before = snapshot(layout);
      const blobsBefore = signals === 1 ? readdirSync(path.join(layout, 'blobs', 'sha256')).length : 0;
      const started = startOccystrap(['--temp-dir', ws.temp, 'process', `registry://${proxy.host}/sample:v1?insecure=true`, `ocidir://${layout}:new`], isolatedEnv(ws));
      try {
        // The config and the small layers are in; the big layer is still coming.
        await waitFor('blobs of this run in the layout', () => (existsSync(path.join(layout, 'blobs', 'sha256')) && readdirSync(path.join(layout, 'blobs', 'sha256')).length >= blobsBefore + 3 ? true : undefined), 30_000, 2);
      } catch (e) {
        started.child.kill('SIGKILL');
        throw e;
      }
      for (let i = 0; i < signals; i++) started.child.kill('SIGINT');
      const r = await started.exited;
      assert.equal(r.code, 130, r.stderr);
      assert.deepEqual(snapshot(layout), before, 'the layout is as it was');
      assert.deepEqual(listDir(ws.temp), [], 'no temp files');
    });
  }
});

describe('ocidir:// refuses links inside the layout', () => {
  const tarSource = () => `tar://${fixturePath('docker25-plain.tar')}`;

  test('a symlinked blobs dir, blobs/sha256 or index.json: one line, nothing written through it', async () => {
    const ws = await workspace('ocidir-links');
    for (const [name, make] of [
      ['blobs', async (layout: string, elsewhere: string) => symlink(elsewhere, path.join(layout, 'blobs'))],
      ['blobs/sha256', async (layout: string, elsewhere: string) => {
        await mkdir(path.join(layout, 'blobs'));
        await symlink(elsewhere, path.join(layout, 'blobs', 'sha256'));
      }],
      ['index.json', async (layout: string, elsewhere: string) => {
        await writeFile(path.join(elsewhere, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [] }));
        await symlink(path.join(elsewhere, 'index.json'), path.join(layout, 'index.json'));
      }],
    ] as const) {
      const layout = ws.out(`layout-${name.replace('/', '-')}`);
      const elsewhere = ws.out(`elsewhere-${name.replace('/', '-')}`);
      await mkdir(layout);
      await mkdir(elsewhere);
      await make(layout, elsewhere);
      const beforeLayout = snapshot(layout);
      const beforeElsewhere = snapshot(elsewhere);
      const line = assertFailsOneLine(await cli(ws, ['process', tarSource(), `ocidir://${layout}:x`]), ws);
      assert.match(line, new RegExp(`${name.replace('/', '\\/')} is a symbolic link`));
      assert.deepEqual(snapshot(layout), beforeLayout, `${name}: layout unchanged`);
      assert.deepEqual(snapshot(elsewhere), beforeElsewhere, `${name}: nothing written through the link`);
    }
  });

  test('a bad index.json is refused before any layer is fetched, and the layout stays as it was', async () => {
    const ws = await workspace('ocidir-bad-index');
    const layout = ws.out('layout');
    await mkdir(layout);
    await writeFile(path.join(layout, 'index.json'), '{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:../../etc/passwd","size":1}]}');
    const before = snapshot(layout);
    const line = assertFailsOneLine(await cli(ws, ['process', tarSource(), `ocidir://${layout}:x`]), ws);
    assert.match(line, /index\.json/);
    assert.deepEqual(snapshot(layout), before);
    assert.deepEqual(errorLines(line), [line]);
  });

  test('the layout path itself may be a symlink to a directory (as dir:// allows)', async () => {
    const ws = await workspace('ocidir-root-link');
    const real = ws.out('real');
    await mkdir(real);
    const link = ws.out('link');
    await symlink(real, link);
    assertOk(await cli(ws, ['process', tarSource(), `ocidir://${link}:v1`]), ws);
    await skopeoInspect(real, 'v1');
    // A run's leftovers would show as dot-files beside the blobs.
    assert.deepEqual(readdirSync(path.join(real, 'blobs', 'sha256')).filter((n) => n.startsWith('.')), []);
  });
});
