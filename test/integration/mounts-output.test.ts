// mounts://DIR: each layer alone in layers/<diff_id hex>/ with overlayfs whiteouts (0/0
// character devices, trusted.overlay.opaque), the overlay mounted at rootfs/ whose
// listing equals the expanded rootfs (umoci unpack's), runc runs it; not root is a
// clear error before anything is read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { loadAddon } from '../../src/shell/fs/native-addons.js';
import type { FsOps } from '../../src/shell/extract/rootfs-builder.js';
import { treeManifest } from '../support/tree-manifest.js';
import { cliPath, errorLines, occystrap } from './cli-helpers.js';
import { fixturePath } from './fixtures.js';

const work = mkdtempSync(path.join(tmpdir(), 'occystrap-mounts-'));
const mounted: string[] = [];
after(() => {
  for (const m of mounted) spawnSync('umount', [m]);
  rmSync(work, { recursive: true, force: true });
});
let n = 0;
const fresh = (name: string) => path.join(work, `${n++}-${name}`);

test("the sample image: per-layer whiteout devices and opaque markers; the mounted rootfs equals umoci unpack's", async () => {
  assert.equal(process.getuid?.(), 0, 'mounts:// needs root; CI runs as root');
  const layout = fixturePath('oci');
  const dir = fresh('sample');
  const r = await occystrap(['process', `ocidir://${layout}:sample`, `mounts://${dir}`]);
  assert.equal(r.code, 0, r.stderr);
  mounted.push(path.join(dir, 'rootfs'));
  assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'container-config.json', 'delta', 'layers', 'rootfs', 'working']);
  // The update layer deletes etc/hostname: a 0/0 character device in its own directory.
  const devices = execFileSync('find', [path.join(dir, 'layers'), '-type', 'c'], { encoding: 'utf8' }).trim().split('\n');
  assert.equal(devices.length, 1, devices.join('\n'));
  assert.match(devices[0] as string, /\/etc\/hostname$/);
  assert.equal(lstatSync(devices[0] as string).rdev, 0);
  const bundle = fresh('umoci');
  execFileSync('umoci', ['unpack', '--image', `${layout}:sample`, bundle], { stdio: 'pipe' });
  const withoutRoot = (lines: string[]) => lines.filter((l) => !l.startsWith('. '));
  assert.deepEqual(withoutRoot(treeManifest(path.join(dir, 'rootfs'))), withoutRoot(treeManifest(path.join(bundle, 'rootfs'))));
});

test('an opaque whiteout becomes trusted.overlay.opaque=y on its directory (the filters image)', async () => {
  const layout = fresh('filters-layout');
  execFileSync('skopeo', ['--insecure-policy', 'copy', '--quiet', `docker-archive:${fixturePath('filters-sample.tar')}`, `oci:${layout}:filters`], { stdio: 'pipe' });
  const dir = fresh('filters');
  const r = await occystrap(['process', `ocidir://${layout}:filters`, `mounts://${dir}`]);
  assert.equal(r.code, 0, r.stderr);
  mounted.push(path.join(dir, 'rootfs'));
  const fsops = loadAddon<FsOps>('fsops');
  assert.ok(typeof fsops !== 'string', String(fsops));
  const opaque = readdirSync(path.join(dir, 'layers'))
    .map((l) => path.join(dir, 'layers', l, 'app', 'cache'))
    .filter((p) => existsSync(p) && fsops.lgetxattr(p, 'trusted.overlay.opaque') !== null);
  assert.equal(opaque.length, 1, 'one layer marks app/cache opaque');
  assert.equal(Buffer.from(fsops.lgetxattr(opaque[0] as string, 'trusted.overlay.opaque') as Uint8Array).toString(), 'y');
});

test('runc runs the mounted bundle as the image says', async () => {
  const dir = fresh('runnable');
  const r = await occystrap(['process', `ocidir://${fixturePath('runnable')}:v1`, `mounts://${dir}`]);
  assert.equal(r.code, 0, r.stderr);
  mounted.push(path.join(dir, 'rootfs'));
  const ran = spawnSync('runc', ['run', '-b', dir, `occystrap-mounts-${process.pid}`], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(ran.status, 0, ran.stderr);
  assert.equal(ran.stdout.trim(), 'hello from 1000:1000 groups 1000 50 in /home/app, occystrap-bundle');
});

test('not root: one clear line, exit 1, nothing written', async () => {
  const dir = fresh('rootless');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir);
  chmodSync(dir, 0o777);
  chmodSync(work, 0o755);
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cliPath, '--temp-dir', dir, 'process', `tar://${fixturePath('docker-classic.tar')}`, `mounts://${path.join(dir, 'out')}`], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir } });
  assert.equal(r.status, 1, r.stderr);
  const lines = errorLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] as string, /mounts:\/\/ needs root \(an overlay mount, whiteout devices, trusted\.\* xattrs\); run as root, or use oci:\/\/ or dir:\/\/\?expand=true/);
  assert.deepEqual(readdirSync(dir), []);
});
