// Shared by the hardening tests: what a clean failure looks like, device nodes and
// tmpfs mounts made in the test's own temp dir (we are root), a small valid archive.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { errorLines } from './cli-helpers.js';
import { craftedImage, rawTar } from './crafted-archives.js';

/** What every failed run must look like on stderr: one error line, no stack, no Node warning. */
export function assertCleanFailure(stderr: string, code: number | null, expected = 1): void {
  assert.equal(code, expected, `exit status\n${stderr}`);
  assert.equal(errorLines(stderr).length, 1, `exactly one error line\n${stderr}`);
  assert.ok(!/^\s+at /m.test(stderr), `no stack trace\n${stderr}`);
  assert.ok(!/Warning|\(node:\d+\)|node:internal|Unhandled/.test(stderr), `no Node warning or crash text\n${stderr}`);
}

const mounts: string[] = [];

/** Mount a private tmpfs on `dir` to get a real ENOSPC or EROFS; see unmountAll. */
export function mountTmpfs(dir: string, options: string): void {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mount -t tmpfs -o ${options}: ${r.stderr}`);
  mounts.push(dir);
}

export function unmountAll(): void {
  for (const m of mounts.splice(0).reverse()) spawnSync('umount', [m]);
}

/** A character device (1,3: what /dev/null is) or a FIFO at `file`. */
export function mknod(file: string, kind: 'c' | 'p'): void {
  const r = kind === 'p' ? spawnSync('mkfifo', [file], { encoding: 'utf8' }) : spawnSync('mknod', [file, 'c', '1', '3'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${kind === 'p' ? 'mkfifo' : 'mknod'} ${file}: ${r.stderr}`);
}

/** A small valid archive (one 4 KiB layer) in `dir`. */
export function goodArchive(dir: string): string {
  const file = path.join(dir, 'good.tar');
  const img = craftedImage('first');
  writeFileSync(file, rawTar([...img.head, img.layer2]));
  return file;
}

export const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
