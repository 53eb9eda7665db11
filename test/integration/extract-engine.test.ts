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
