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
