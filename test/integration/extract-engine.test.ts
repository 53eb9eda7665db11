// The layer-apply engine (src/shell/extract/rootfs-builder.ts) against umoci: the rootfs
// built from the test images equals `umoci unpack`'s, compared as tree manifests (path,
// type, mode, owner, size, sha256, link target, device numbers, xattrs, mtime).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { createGunzip } from 'node:zlib';
import { RootfsBuilder } from '../../src/shell/extract/rootfs-builder.js';
import { treeManifest } from '../support/tree-manifest.js';
import { fixturePath } from './fixtures.js';

const work = mkdtempSync(path.join(tmpdir(), 'occystrap-engine-'));
after(() => rmSync(work, { recursive: true, force: true }));
const isRoot = process.getuid?.() === 0;

interface Descriptor {
  readonly digest: string;
  readonly mediaType: string;
}

function layersOf(layout: string, tag: string): Descriptor[] {
  const index = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: (Descriptor & { annotations?: Record<string, string> })[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(entry, `${tag} in ${layout}`);
  const blob = (d: string) => path.join(layout, 'blobs', 'sha256', d.slice('sha256:'.length));
  return (JSON.parse(readFileSync(blob(entry.digest), 'utf8')) as { layers: Descriptor[] }).layers.map((l) => ({ ...l, digest: blob(l.digest) }));
}

/** Build the rootfs of `layout:tag` with the engine into a fresh private dir. */
async function build(layout: string, tag: string, root: string, privileged: boolean): Promise<RootfsBuilder> {
  mkdirSync(root, { mode: 0o700 });
  const builder = new RootfsBuilder({ root, mode: 'merged', privileged, label: `${layout}:${tag}` });
  for (const [index, layer] of layersOf(layout, tag).entries()) {
    const raw = createReadStream(layer.digest);
    await builder.applyLayer(layer.mediaType.endsWith('+gzip') ? raw.pipe(createGunzip()) : raw, index);
  }
  builder.finish();
  return builder;
}

/** Our rootfs of `layout:tag` and umoci's, as tree manifests (the rootfs directory itself left out: umoci stamps it with the unpack's time). */
async function bothTrees(layout: string, tag: string, name: string): Promise<{ mine: string[]; theirs: string[] }> {
  assert.ok(isRoot, 'the extraction oracle tests run as root (CI does): owners, devices and security xattrs need it');
  const ours = path.join(work, `${name}-ours`);
  await build(layout, tag, ours, true);
  const bundle = path.join(work, `${name}-umoci`);
  execFileSync('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle], { stdio: 'pipe' });
  const withoutRoot = (lines: string[]) => lines.filter((l) => !l.startsWith('. '));
  return { mine: withoutRoot(treeManifest(ours)), theirs: withoutRoot(treeManifest(path.join(bundle, 'rootfs'))) };
}

test("the sample image (whiteout, symlinks, a hard link, non-ASCII and long names): our rootfs equals umoci unpack's", async () => {
  const { mine, theirs } = await bothTrees(fixturePath('oci'), 'sample', 'sample');
  assert.deepEqual(mine, theirs);
  assert.ok(mine.length > 30, `${mine.length} paths`);
  assert.ok(!mine.some((l) => l.startsWith('etc/hostname ')), 'the whiteout removed etc/hostname');
});

test("the filters image (capability xattr, uid 3000000, GNU long names, an opaque whiteout, base-256 uid): our rootfs equals umoci unpack's", async () => {
  const layout = path.join(work, 'filters-layout');
  execFileSync('skopeo', ['--insecure-policy', 'copy', '--quiet', `docker-archive:${fixturePath('filters-sample.tar')}`, `oci:${layout}:filters`], { stdio: 'pipe' });
  const { mine, theirs } = await bothTrees(layout, 'filters', 'filters');
  assert.deepEqual(mine, theirs);
  assert.ok(mine.some((l) => / xattrs=security\.capability=/.test(l)), 'a file keeps its security.capability xattr');
  assert.ok(mine.some((l) => / uid=3000000 /.test(l)), 'an owner beyond 2^21 from PAX');
});

test("devices, a FIFO, setuid/setgid/sticky modes, owners, a hard link and a link's owner (uids beyond 2^21: the filters image): our rootfs equals umoci unpack's", async () => {
  assert.ok(isRoot, 'device nodes need root (CI runs as root)');
  const { pack: makePack } = await import('tar-stream');
  const pack = makePack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  const at = new Date(1_700_000_000_000);
  const entry = (h: Record<string, unknown>, body?: Buffer) =>
    new Promise<void>((resolve, reject) => {
      const cb = (e?: Error | null) => (e ? reject(e) : resolve());
      if (body) pack.entry({ mtime: at, uid: 0, gid: 0, ...h, size: body.length } as never, body, cb);
      else pack.entry({ mtime: at, uid: 0, gid: 0, size: 0, ...h } as never, cb);
    });
  await entry({ name: 'dev', type: 'directory', mode: 0o755 });
  await entry({ name: 'dev/null-copy', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 });
  await entry({ name: 'dev/loop-copy', type: 'block-device', mode: 0o660, devmajor: 7, devminor: 0, gid: 6 });
  await entry({ name: 'run', type: 'directory', mode: 0o755 });
  await entry({ name: 'run/pipe', type: 'fifo', mode: 0o620, uid: 1234, gid: 5678 });
  await entry({ name: 'tmp', type: 'directory', mode: 0o1777 });
  await entry({ name: 'usr', type: 'directory', mode: 0o755 });
  await entry({ name: 'usr/bin', type: 'directory', mode: 0o2755, gid: 50 });
  await entry({ name: 'usr/bin/su-copy', type: 'file', mode: 0o4755 }, Buffer.from('#!/bin/sh\n'));
  await entry({ name: 'usr/bin/sg-copy', type: 'file', mode: 0o2711, uid: 40000, gid: 40001 }, Buffer.from('x'));
  await entry({ name: 'usr/bin/again', type: 'link', linkname: 'usr/bin/su-copy', mode: 0o4755 });
  await entry({ name: 'usr/bin/owned-link', type: 'symlink', linkname: 'su-copy', uid: 1000, gid: 1000 });
  pack.finalize();
  await done;
  const layer = Buffer.concat(chunks);
  const dir = path.join(work, 'special');
  mkdirSync(dir);
  const { writeOneLayerImage } = await import('./archive-builder.js');
  await writeOneLayerImage(path.join(dir, 'special.tar'), layer, 'special:1');
  const layout = path.join(dir, 'layout');
  execFileSync('skopeo', ['--insecure-policy', 'copy', '--quiet', `docker-archive:${path.join(dir, 'special.tar')}`, `oci:${layout}:special`], { stdio: 'pipe' });
  const { mine, theirs } = await bothTrees(layout, 'special', 'special');
  assert.deepEqual(mine, theirs);
  for (const expected of [/^dev\/null-copy char mode=666 .* rdev=259 /, /^dev\/loop-copy block mode=660 uid=0 gid=6 rdev=1792 /, /^run\/pipe fifo mode=620 uid=1234 gid=5678 /, /^tmp dir mode=1777 /, /^usr\/bin dir mode=2755 uid=0 gid=50 /, /^usr\/bin\/su-copy file mode=4755 /, /^usr\/bin\/sg-copy file mode=2711 uid=40000 gid=40001 /, /^usr\/bin\/owned-link symlink mode=777 uid=1000 gid=1000 /]) {
    assert.ok(mine.some((l) => expected.test(l)), `${expected} in\n${mine.join('\n')}`);
  }
});
