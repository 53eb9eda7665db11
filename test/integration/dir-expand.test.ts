// dir://DIR?expand=true: the store as without it, plus the merged rootfs beside the
// manifest (`manifest/`, or `manifest-<image>-<tag>/` with unique_names), equal to umoci
// unpack's; built again from the store on every run and swapped in whole; a refused
// layer leaves neither the rootfs nor the image's metadata.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { treeManifest } from '../support/tree-manifest.js';
import { makeImage, manifestBytes, tarBytes, writeArchive } from './archive-builder.js';
import { errorLines, occystrap, strayTempFiles } from './cli-helpers.js';
import { fixturePath } from './fixtures.js';

const work = mkdtempSync(path.join(tmpdir(), 'occystrap-expand-'));
after(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => path.join(work, `${n++}-${name}`);
const withoutRoot = (lines: string[]) => lines.filter((l) => !l.startsWith('. '));

test("ocidir:// -> dir://?expand=true: the store, and manifest/ equal to umoci unpack's rootfs", async () => {
  assert.equal(process.getuid?.(), 0, 'the umoci comparison runs as root (CI does)');
  const layout = fixturePath('oci');
  const store = fresh('store');
  const r = await occystrap(['process', `ocidir://${layout}:sample`, `dir://${store}?expand=true`]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(path.join(store, 'manifest.json')) && existsSync(path.join(store, 'catalog.json')));
  const bundle = fresh('umoci');
  execFileSync('umoci', ['unpack', '--image', `${layout}:sample`, bundle], { stdio: 'pipe' });
  assert.deepEqual(withoutRoot(treeManifest(path.join(store, 'manifest'))), withoutRoot(treeManifest(path.join(bundle, 'rootfs'))));
  assert.deepEqual(readdirSync(store).filter((f) => f.startsWith('.')), [], 'no working directory left');
});

test('unique_names: the rootfs is manifest-<image>-<tag>/; a second run rebuilds it from the store and swaps it in whole', async () => {
  const store = fresh('unique');
  const uri = `dir://${store}?expand=true&unique_names=true`;
  const first = await occystrap(['process', `tar://${fixturePath('docker-classic.tar')}`, uri]);
  assert.equal(first.code, 0, first.stderr);
  const rootfs = readdirSync(store).find((f) => f.startsWith('manifest-') && !f.endsWith('.json'));
  assert.ok(rootfs, readdirSync(store).join(' '));
  const before = treeManifest(path.join(store, rootfs));
  writeFileSync(path.join(store, rootfs, 'stray'), 'left by hand');
  const second = await occystrap(['process', `tar://${fixturePath('docker-classic.tar')}`, uri]);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /5 skipped/, 'every layer came from the store');
  assert.deepEqual(treeManifest(path.join(store, rootfs)), before);
  assert.deepEqual(readdirSync(store).filter((f) => f.startsWith('.')), []);
});

test('a refused layer: one line, exit 1, no rootfs, no manifest, nothing added to the store', async () => {
  const dir = fresh('hostile');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir);
  const image = await makeImage(1, 'e');
  const hostile = await tarBytes([{ name: 'x', type: 'symlink', linkname: '/' }, { name: 'd/.wh.', data: Buffer.alloc(0) }]);
  const diffIds = [image.diffIds[0], `sha256:${createHash('sha256').update(hostile).digest('hex')}`];
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } }));
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  const archive = path.join(dir, 'image.tar');
  await writeArchive(archive, [
    { name: configName, data: config },
    { name: 'a/layer.tar', data: image.layers[0] as Buffer },
    { name: 'b/layer.tar', data: hostile },
    { name: 'manifest.json', data: manifestBytes([{ Config: configName, RepoTags: ['e:1'], Layers: ['a/layer.tar', 'b/layer.tar'] }]) },
  ]);
  const store = path.join(dir, 'store');
  const r = await occystrap(['process', `tar://${archive}`, `dir://${store}?expand=true`]);
  assert.equal(r.code, 1, r.stderr);
  const lines = errorLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] as string, /layer 1: entry "d\/\.wh\.": "\.wh\." is not a valid whiteout name; refusing the image/);
  assert.ok(!existsSync(store), `the store this run created is gone: ${existsSync(store) ? readdirSync(store).join(' ') : ''}`);
  assert.deepEqual(strayTempFiles(dir), []);
});
