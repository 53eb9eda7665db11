// oci://DIR: an OCI runtime bundle that runc runs, with config.json from the image config
// as umoci generates it, rootfs/ equal to umoci unpack's, container-config.json the
// source's bytes; a bundle is written whole or not at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { treeManifest } from '../support/tree-manifest.js';
import { errorLines, occystrap, strayTempFiles } from './cli-helpers.js';
import { fixturePath } from './fixtures.js';
import { makeImage, manifestBytes, writeArchive } from './archive-builder.js';

const work = mkdtempSync(path.join(tmpdir(), 'occystrap-bundle-'));
after(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => path.join(work, `${n++}-${name}`);

interface Spec {
  process: { args: string[]; env: string[]; cwd: string; user: { uid: number; gid: number; additionalGids?: number[] }; capabilities: Record<string, string[]> };
  root: { path: string; readonly?: boolean };
  hostname: string;
  annotations?: Record<string, string>;
}

test('ocidir:// runnable image -> oci://: runc runs it as the image says (user, groups, cwd, env, entrypoint)', async () => {
  assert.equal(process.getuid?.(), 0, 'runc runs bundles as root here; CI runs as root');
  const bundle = fresh('runnable');
  const r = await occystrap(['process', `ocidir://${fixturePath('runnable')}:v1`, `oci://${bundle}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(bundle).sort(), ['config.json', 'container-config.json', 'rootfs']);
  const run = spawnSync('runc', ['run', '-b', bundle, `occystrap-${process.pid}`], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'hello from 1000:1000 groups 1000 50 in /home/app, occystrap-bundle');
});

test("config.json: the image's fields as umoci generates them; rootfs/ equals umoci unpack's; container-config.json is the source config", async () => {
  const layout = fixturePath('runnable');
  const bundle = fresh('compare');
  const r = await occystrap(['process', `ocidir://${layout}:v1`, `oci://${bundle}`]);
  assert.equal(r.code, 0, r.stderr);
  const umoci = fresh('umoci');
  execFileSync('umoci', ['unpack', '--image', `${layout}:v1`, umoci], { stdio: 'pipe' });
  const ours = JSON.parse(readFileSync(path.join(bundle, 'config.json'), 'utf8')) as Spec;
  const theirs = JSON.parse(readFileSync(path.join(umoci, 'config.json'), 'utf8')) as Spec;
  for (const field of ['args', 'env', 'cwd', 'user'] as const) assert.deepEqual(ours.process[field], theirs.process[field], field);
  for (const [k, v] of Object.entries(theirs.annotations ?? {})) if (v !== '') assert.equal(ours.annotations?.[k], v, k);
  // Known, documented differences: occystrap's template (read-only root, its hostname),
  // and no inheritable capabilities (CVE-2022-29162).
  assert.equal(ours.root.readonly, true);
  assert.equal(ours.hostname, 'occystrap');
  assert.equal(ours.process.capabilities.inheritable, undefined);
  const withoutRoot = (lines: string[]) => lines.filter((l) => !l.startsWith('. '));
  assert.deepEqual(withoutRoot(treeManifest(path.join(bundle, 'rootfs'))), withoutRoot(treeManifest(path.join(umoci, 'rootfs'))));
  const index = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(path.join(layout, 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { config: { digest: string } };
  const configHash = `sha256:${createHash('sha256').update(readFileSync(path.join(bundle, 'container-config.json'))).digest('hex')}`;
  assert.equal(configHash, manifest.config.digest);
});

test('a destination that exists and is not empty is refused before anything is read; it is left as it was', async () => {
  const bundle = fresh('taken');
  mkdirSync(bundle);
  writeFileSync(path.join(bundle, 'keep.txt'), 'mine');
  const r = await occystrap(['process', `tar://${fixturePath('docker-classic.tar')}`, `oci://${bundle}`]);
  assert.equal(r.code, 1, r.stderr);
  const lines = errorLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] as string, /exists and is not empty; remove it or give a new path/);
  assert.deepEqual(readdirSync(bundle), ['keep.txt']);
  assert.deepEqual(readdirSync(path.dirname(bundle)).filter((f) => f.includes('.occystrap-')), []);
});

test('a layer the engine refuses (the root turned into a symlink) fails the run: one line, no bundle, no working directory, no temp files', async () => {
  const dir = fresh('hostile');
  mkdirSync(dir);
  const { tarBytes } = await import('./archive-builder.js');
  const image = await makeImage(1, 'h');
  const hostile = await tarBytes([{ name: './', type: 'symlink', linkname: '/tmp' }, { name: 'etc/passwd', data: Buffer.from('x') }]);
  const diffId = `sha256:${createHash('sha256').update(hostile).digest('hex')}`;
  const config = Buffer.from(JSON.stringify({ ...JSON.parse(image.config.toString()), rootfs: { type: 'layers', diff_ids: [image.diffIds[0], diffId] } }));
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  const archive = path.join(dir, 'hostile.tar');
  await writeArchive(archive, [
    { name: configName, data: config },
    { name: 'l0/layer.tar', data: image.layers[0] as Buffer },
    { name: 'l1/layer.tar', data: hostile },
    { name: 'manifest.json', data: manifestBytes([{ Config: configName, RepoTags: ['hostile:1'], Layers: ['l0/layer.tar', 'l1/layer.tar'] }]) },
  ]);
  const bundle = path.join(dir, 'bundle');
  const r = await occystrap(['process', `tar://${archive}`, `oci://${bundle}`]);
  assert.equal(r.code, 1, r.stderr);
  const lines = errorLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] as string, /layer 1: entry "\.\/": it would make the root a symlink; the root stays a directory; refusing the image/);
  assert.ok(!existsSync(bundle));
  assert.deepEqual(readdirSync(dir).sort(), ['hostile.tar']);
  assert.deepEqual(strayTempFiles(dir), []);
});
