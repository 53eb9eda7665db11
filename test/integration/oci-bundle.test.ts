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
import { cliPath, errorLines, occystrap, strayTempFiles } from './cli-helpers.js';
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

test('tar:// -> oci:// streams each layer into the engine: with a 256 KiB --temp-dir, every docker-save flavour (digest-sorted, manifest order, gzip, zstd) builds the same rootfs as umoci unpack', async () => {
  assert.equal(process.getuid?.(), 0, 'the small temp dir is a tmpfs mount; CI runs as root');
  const dir = fresh('streamed');
  const small = path.join(dir, 'tmp');
  mkdirSync(small, { recursive: true });
  // Each fixture's layers are ~2 MB: spooled to temp files, any would fill this tmpfs (ENOSPC).
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', small]);
  try {
    const umoci = fresh('umoci-sample');
    execFileSync('umoci', ['unpack', '--image', `${fixturePath('oci')}:sample`, umoci], { stdio: 'pipe' });
    const expected = treeManifest(path.join(umoci, 'rootfs'), { mtimes: false }).filter((l) => !l.startsWith('. '));
    for (const flavour of ['docker-classic', 'docker25-plain', 'docker25-gzip', 'docker25-zstd', 'skopeo-legacy', 'podman-legacy']) {
      const bundle = path.join(dir, flavour);
      const r = await occystrap(['--temp-dir', small, 'process', `tar://${fixturePath(`${flavour}.tar`)}`, `oci://${bundle}`]);
      assert.equal(r.code, 0, `${flavour}: ${r.stderr}`);
      assert.deepEqual(treeManifest(path.join(bundle, 'rootfs'), { mtimes: false }).filter((l) => !l.startsWith('. ')), expected, flavour);
      assert.deepEqual(readdirSync(small), [], `${flavour}: nothing left in the temp dir`);
    }
  } finally {
    execFileSync('umount', [small]);
  }
});

test('a layer whose bytes do not hash to its diff_id, streamed into the bundle: one line, exit 1, no bundle, no working directory', async () => {
  const dir = fresh('mismatch');
  mkdirSync(dir);
  const bundle = path.join(dir, 'bundle');
  const r = await occystrap(['process', `tar://${fixturePath('bad-diffid-mismatch.tar')}`, `oci://${bundle}`]);
  assert.equal(r.code, 1, r.stderr);
  const lines = errorLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] as string, /layer 2 \(.*\) has diff_id sha256:[0-9a-f]{64}, but the config says sha256:[0-9a-f]{64}; the archive is corrupt/);
  assert.deepEqual(readdirSync(dir), []);
  assert.deepEqual(strayTempFiles(dir), []);
});

/** A docker-save archive of one layer built by tar-stream from `entries` (any entry type). */
async function specialArchive(file: string, entries: { header: Record<string, unknown>; body?: Buffer }[]): Promise<void> {
  const { pack: makePack } = await import('tar-stream');
  const pack = makePack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const { header, body } of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (e?: Error | null) => (e ? reject(e) : resolve());
      const h = { mtime: new Date(1_700_000_000_000), uid: 0, gid: 0, mode: 0o644, ...header };
      if (body) pack.entry({ ...h, size: body.length } as never, body, cb);
      else pack.entry({ size: 0, ...h } as never, cb);
    });
  }
  pack.finalize();
  await done;
  const { writeOneLayerImage } = await import('./archive-builder.js');
  await writeOneLayerImage(file, Buffer.concat(chunks), 'special:1');
}

test('not root: owners stay the runner\'s, devices become empty mode-0 files, FIFOs are made, only user.* xattrs are set; one warning line each', async () => {
  const dir = fresh('rootless');
  mkdirSync(dir, { mode: 0o777 });
  const { chmodSync } = await import('node:fs');
  chmodSync(dir, 0o777);
  chmodSync(work, 0o755);
  const archive = path.join(dir, 'special.tar');
  await specialArchive(archive, [
    { header: { name: 'dev', type: 'directory', mode: 0o755 } },
    { header: { name: 'dev/null-copy', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 } },
    { header: { name: 'run/pipe', type: 'fifo', mode: 0o620 } },
    { header: { name: 'etc/note', uid: 1234, gid: 1234, pax: { 'SCHILY.xattr.user.note': 'kept', 'SCHILY.xattr.trusted.secret': 'dropped' } }, body: Buffer.from('x') },
  ]);
  chmodSync(archive, 0o644);
  const bundle = path.join(dir, 'bundle');
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cliPath, '--temp-dir', dir, 'process', `tar://${archive}`, `oci://${bundle}`], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
  });
  assert.equal(r.status, 0, r.stderr);
  const warningLines = r.stderr.split('\n').filter((l) => l.startsWith('occystrap: warning: '));
  assert.deepEqual(warningLines.map((l) => l.replace(/^.*?: (?=\d|xattr)/, '')), ['1 device node(s) made as empty files (not running as root)', 'xattr trusted.secret not set on 1 path(s) (not running as root)']);
  const rootfs = path.join(bundle, 'rootfs');
  const { lstatSync } = await import('node:fs');
  const device = lstatSync(path.join(rootfs, 'dev', 'null-copy'));
  assert.ok(device.isFile() && device.size === 0 && (device.mode & 0o7777) === 0, 'an empty mode-0 file stands for the device');
  assert.ok(lstatSync(path.join(rootfs, 'run', 'pipe')).isFIFO());
  const note = lstatSync(path.join(rootfs, 'etc', 'note'));
  assert.equal(note.uid, 65534, 'the runner owns what it made');
  const { loadAddon } = await import('../../src/shell/fs/native-addons.js');
  const fsops = loadAddon<{ llistxattr(p: string): string[] }>('fsops');
  assert.ok(typeof fsops !== 'string');
  assert.deepEqual(fsops.llistxattr(path.join(rootfs, 'etc', 'note')), ['user.note']);
});

test('Ctrl-C while a layer is being extracted: exit 130, no bundle, no working directory, no temp files', async () => {
  const dir = fresh('interrupt');
  mkdirSync(dir);
  const { tarBytes } = await import('./archive-builder.js');
  const entries = Array.from({ length: 30_000 }, (_, i) => ({ name: `usr/share/many/d${Math.floor(i / 100)}/f${i}`, data: Buffer.from(`file ${i}\n`) }));
  const layer = await tarBytes(entries);
  const { writeOneLayerImage } = await import('./archive-builder.js');
  const archive = path.join(dir, 'many.tar');
  await writeOneLayerImage(archive, layer, 'many:1');
  const bundle = path.join(dir, 'bundle');
  const { startOccystrap } = await import('./cli-helpers.js');
  const run = startOccystrap(['--temp-dir', dir, 'process', `tar://${archive}`, `oci://${bundle}`]);
  // Wait until the working directory holds part of the tree, then interrupt.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const work = readdirSync(dir).find((f) => f.startsWith('.bundle.occystrap-'));
    if (work && existsSync(path.join(dir, work, 'rootfs', 'usr', 'share', 'many', 'd5'))) break;
    if (Date.now() > deadline) throw new Error('the extraction never started');
    await new Promise((r) => setTimeout(r, 20));
  }
  run.child.kill('SIGINT');
  const exit = await run.exited;
  assert.equal(exit.code, 130, exit.stderr);
  assert.ok(!existsSync(bundle));
  assert.deepEqual(readdirSync(dir).sort(), ['many.tar']);
  assert.deepEqual(strayTempFiles(dir), []);
});
