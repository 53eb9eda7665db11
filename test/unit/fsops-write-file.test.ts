// native/fsops.c writeFile: the one-job small-file writer the extraction engine uses.
// It must create exclusively, never through a symlink, and apply owner, mode (setuid kept)
// and times on the descriptor, failing with Node-style errors.
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import type { FsOps } from '../../src/shell/extract/rootfs-builder.js';
import { loadAddon } from '../../src/shell/fs/native-addons.js';

const dir = mkdtempSync(path.join(tmpdir(), 'occystrap-fsops-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function fsops(): FsOps {
  const ops = loadAddon<FsOps>('fsops');
  assert.notEqual(typeof ops, 'string', `the fsops addon is built by npm run build: ${String(ops)}`);
  return ops as FsOps;
}

test('writeFile creates the file with its bytes, owner, mode (setuid kept after the owner) and fractional mtime', async () => {
  assert.equal(process.getuid?.(), 0, 'chown to another owner needs root; CI runs as root');
  const file = path.join(dir, 'setuid');
  const data = new TextEncoder().encode('#!/bin/sh\necho hi\n');
  await fsops().writeFile(file, data, 0o4755, 1234, 5678, true, 1_700_000_000.25);
  const st = lstatSync(file, { bigint: true });
  assert.equal(readFileSync(file, 'utf8'), '#!/bin/sh\necho hi\n');
  assert.equal(Number(st.mode & 0o7777n), 0o4755);
  assert.equal(st.uid, 1234n);
  assert.equal(st.gid, 5678n);
  assert.equal(st.mtimeNs, 1_700_000_000_250_000_000n);
  assert.equal(st.atimeNs, 1_700_000_000_250_000_000n);
});

test('writeFile without chown keeps the runner as owner; an empty file works', async () => {
  const file = path.join(dir, 'empty');
  await fsops().writeFile(file, new Uint8Array(), 0o600, 1234, 5678, false, 0);
  const st = lstatSync(file);
  assert.equal(st.size, 0);
  assert.equal(st.uid, process.getuid?.());
  assert.equal(st.mode & 0o7777, 0o600);
  assert.equal(st.mtimeMs, 0);
});

test('writeFile never replaces or follows: an existing name is EEXIST, a symlink is EEXIST and its target untouched', async () => {
  const existing = path.join(dir, 'existing');
  writeFileSync(existing, 'old');
  await assert.rejects(fsops().writeFile(existing, new TextEncoder().encode('new'), 0o644, 0, 0, false, 0), (e: NodeJS.ErrnoException) => {
    assert.equal(e.code, 'EEXIST');
    assert.equal(e.syscall, 'open');
    assert.equal(e.path, existing);
    assert.match(e.message, /^EEXIST: .*, open '.*existing'$/);
    return true;
  });
  assert.equal(readFileSync(existing, 'utf8'), 'old');
  const target = path.join(dir, 'target');
  writeFileSync(target, 'kept');
  const link = path.join(dir, 'link');
  symlinkSync(target, link);
  await assert.rejects(fsops().writeFile(link, new TextEncoder().encode('x'), 0o644, 0, 0, false, 0), { code: 'EEXIST' });
  assert.equal(readFileSync(target, 'utf8'), 'kept');
  const dangling = path.join(dir, 'dangling');
  symlinkSync(path.join(dir, 'nowhere'), dangling);
  await assert.rejects(fsops().writeFile(dangling, new TextEncoder().encode('x'), 0o644, 0, 0, false, 0), { code: 'EEXIST' });
  assert.throws(() => lstatSync(path.join(dir, 'nowhere')), { code: 'ENOENT' });
});

test('writeFile: a missing directory is ENOENT; bad arguments are a TypeError', async () => {
  await assert.rejects(fsops().writeFile(path.join(dir, 'no', 'such'), new Uint8Array(1), 0o644, 0, 0, false, 0), { code: 'ENOENT', syscall: 'open' });
  // @ts-expect-error: a string is not bytes
  assert.throws(() => fsops().writeFile(path.join(dir, 'bad'), 'text', 0o644, 0, 0, false, 0), TypeError);
  assert.throws(() => fsops().writeFile(path.join(dir, 'bad'), new Uint8Array(), 0o644, 0, 0, false, Number.NaN), TypeError);
});
