/**
 * Tar scaffolding shared by the tar unit tests: archives built from headers with our
 * encoder, chunked feeds, GNU tar runs over scratch trees (sparse files included).
 *
 * @module
 */
import { after } from 'node:test';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { concatBytes } from '../../src/core/bytes.js';
import { encodeHeader, END_OF_ARCHIVE, paddingFor, type TarHeader } from '../../src/core/tar/header.js';

/** GNU tar's environment: UTC times, a UTF-8 C locale (stable listings). */
export const tarEnv = { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8' };
export const isRoot = process.getuid?.() === 0;

/** `bytes` in slices of `size` bytes (copies, so a reader may keep them). */
export async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.slice(i, i + size);
}

/** A regular-file header with empty owner names and fixed time; `p` overrides. */
export const H = (p: Partial<TarHeader> & Pick<TarHeader, 'name'>): TarHeader => ({ type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, uname: '', gname: '', ...p });

/** An archive of `entries` (each header by our encoder, its data padded), with the end-of-archive marker. */
export function archive(entries: readonly { header: TarHeader; data?: Uint8Array }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const { header, data } of entries) {
    parts.push(encodeHeader(header));
    if (data) parts.push(data, new Uint8Array(paddingFor(data.length)));
  }
  parts.push(END_OF_ARCHIVE);
  return concatBytes(parts);
}

/** A maker of fresh scratch directories under one temp root, removed after the file's tests. */
export function scratchDirs(prefix: string): () => string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  let counter = 0;
  return () => {
    const d = path.join(root, String(counter++));
    fs.mkdirSync(d);
    return d;
  };
}

/** `root/tree` archived by GNU tar in `format` (sorted names, numeric owners), as bytes. */
export function gnuTar(root: string, format: string, extra: readonly string[] = []): Uint8Array {
  const out = path.join(root, `${format}.tar`);
  execFileSync('tar', [`--format=${format}`, '--sort=name', '--numeric-owner', ...extra, '-cf', out, '-C', root, 'tree'], { env: tarEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  return fs.readFileSync(out);
}

/**
 * `root/tree` with one entry of each kind GNU tar archives: a directory with a file
 * (`sub/file.txt`), a `bigFile` of `size` bytes of `fill` (`big.bin`), a name over 100
 * bytes, a non-ASCII name, a symlink with a target over 100 bytes and a short one, a hard
 * link, a fifo and (as root) a character device. Returns the tree's path.
 */
export function entryKindsTree(root: string, bigFile: { readonly size: number; readonly fill: number }): string {
  const d = path.join(root, 'tree');
  fs.mkdirSync(d);
  fs.mkdirSync(path.join(d, 'sub'));
  fs.writeFileSync(path.join(d, 'sub', 'file.txt'), 'hello\n');
  fs.writeFileSync(path.join(d, 'big.bin'), Buffer.alloc(bigFile.size, bigFile.fill));
  fs.writeFileSync(path.join(d, `${'x'.repeat(120)}.txt`), 'long\n');
  fs.writeFileSync(path.join(d, 'données-日本.txt'), 'utf8\n');
  fs.symlinkSync(`${'t'.repeat(130)}/target`, path.join(d, 'longlink'));
  fs.symlinkSync('sub/file.txt', path.join(d, 'symlink'));
  fs.linkSync(path.join(d, 'sub', 'file.txt'), path.join(d, 'hardlink'));
  execFileSync('mkfifo', [path.join(d, 'fifo')]);
  if (isRoot) execFileSync('mknod', [path.join(d, 'chardev'), 'c', '1', '3']);
  return d;
}

/**
 * A tree for GNU tar's `--sparse`: `root/tree/sparse.img` holding 'start' at 0 and 'end'
 * at `holeEnd` (a hole between), and one plain file `name` with `content`.
 */
export function sparseTree(root: string, holeEnd: number, name: string, content: string): void {
  const d = path.join(root, 'tree');
  fs.mkdirSync(d);
  const fd = fs.openSync(path.join(d, 'sparse.img'), 'w');
  fs.writeSync(fd, 'start', 0);
  fs.writeSync(fd, 'end', holeEnd);
  fs.closeSync(fd);
  fs.writeFileSync(path.join(d, name), content);
}
