/**
 * Reading a `dir://` store without trusting what is in it.
 *
 * Node has no `openat`, so every path is the store's real root (resolved once with
 * `realpath`) plus names occystrap chose; each entry is `lstat`ed before use and opened
 * with `O_NOFOLLOW | O_NONBLOCK`, then `fstat`ed: a symlink is never read through, a
 * FIFO or device is never read (and opening one cannot block), and a read stops at
 * the cap by bytes actually read, not by the size `stat` reports.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { constants, promises as fs, type Stats } from 'node:fs';
import type { Digest } from '../../core/digest.js';

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const CHUNK = 1 << 20;

/** What an entry of the store is, as `lstat` sees it (links are not followed). */
export type EntryKind = 'missing' | 'file' | 'directory' | 'symlink' | 'fifo' | 'character device' | 'block device' | 'socket';

export function kindOf(st: Stats): Exclude<EntryKind, 'missing'> {
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'socket';
}

/** "a symbolic link", "a FIFO", ... for messages. */
export function describeKind(kind: EntryKind): string {
  switch (kind) {
    case 'symlink':
      return 'a symbolic link';
    case 'fifo':
      return 'a FIFO';
    case 'directory':
      return 'a directory';
    case 'file':
      return 'a regular file';
    case 'missing':
      return 'missing';
    default:
      return `a ${kind}`;
  }
}

const code = (e: unknown): string | undefined => (e as { code?: string }).code;

export async function lstatEntry(p: string): Promise<{ kind: EntryKind; stats?: Stats }> {
  try {
    const stats = await fs.lstat(p);
    return { kind: kindOf(stats), stats };
  } catch (e) {
    if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR') return { kind: 'missing' };
    throw e;
  }
}

/** A store entry that is not what it must be (a link, a device, too big...). */
export class StoreEntryError extends Error {
  constructor(
    readonly file: string,
    readonly kind: EntryKind | 'too big' | 'changed',
    message: string,
  ) {
    super(message);
    this.name = 'StoreEntryError';
  }
}

/** Identity of a file, to tell later whether it is still the one that was checked. */
export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

export const identityOf = (st: Stats): FileIdentity => ({ dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs });

export const sameIdentity = (a: FileIdentity, b: FileIdentity): boolean => a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;

/**
 * Open a regular file without following a link or blocking; undefined when it does not
 * exist. Throws {@link StoreEntryError} for a link or anything but a regular file, judged
 * before the open (lstat) and after it (fstat), so a swap in between is caught too.
 */
export async function openRegular(p: string): Promise<{ handle: fs.FileHandle; stats: Stats } | undefined> {
  const before = await lstatEntry(p);
  if (before.kind === 'missing') return undefined;
  if (before.kind !== 'file') throw new StoreEntryError(p, before.kind, `is ${describeKind(before.kind)}, not a regular file`);
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(p, OPEN_FLAGS);
  } catch (e) {
    if (code(e) === 'ENOENT') return undefined;
    if (code(e) === 'ELOOP') throw new StoreEntryError(p, 'symlink', 'is a symbolic link, not a regular file');
    throw e;
  }
  try {
    const stats = await handle.stat();
    // Replaced between lstat and open: judge what was opened.
    if (!stats.isFile()) throw new StoreEntryError(p, kindOf(stats), `is ${describeKind(kindOf(stats))}, not a regular file`);
    return { handle, stats };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/**
 * The bytes of a regular file, at most `cap` of them; undefined when it does not exist.
 * Throws {@link StoreEntryError} for a link, a non-regular file, or more than `cap` bytes.
 */
export async function readRegularFile(p: string, cap: number): Promise<Uint8Array | undefined> {
  const opened = await openRegular(p);
  if (!opened) return undefined;
  const { handle } = opened;
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    // Read up to cap+1 bytes whatever the size says: one byte over proves it is too big.
    while (total <= cap) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, cap + 1 - total));
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
    }
    if (total > cap) throw new StoreEntryError(p, 'too big', `is over ${cap} bytes`);
    return Buffer.concat(chunks, total);
  } finally {
    await handle.close();
  }
}

/**
 * sha256 of a regular file with the identity it had when opened; undefined when it does
 * not exist. Throws {@link StoreEntryError} for a link or a non-regular file.
 */
export async function hashRegularFile(p: string, signal?: AbortSignal): Promise<{ digest: Digest; identity: FileIdentity } | undefined> {
  const opened = await openRegular(p);
  if (!opened) return undefined;
  const { handle, stats } = opened;
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
    return { digest: `sha256:${hash.digest('hex')}` as Digest, identity: identityOf(stats) };
  } finally {
    await handle.close();
  }
}

/**
 * Store files known to hash to their expected digest, each remembered by its identity so
 * a file is hashed once per run; one check per key runs at a time (concurrent asks share
 * it). `locate` does the store's own checks (directories, kinds, sizes) and gives the file
 * to hash, or undefined when there is no candidate.
 */
export class VerifiedFiles {
  private readonly known = new Map<string, FileIdentity>();
  private readonly running = new Map<string, Promise<boolean>>();

  verify(key: string, digest: Digest, locate: () => Promise<{ readonly file: string; readonly stats: Stats } | undefined>): Promise<boolean> {
    const running = this.running.get(key);
    if (running) return running;
    const check = (async () => {
      const found = await locate();
      if (!found) return false;
      const known = this.known.get(key);
      if (known && sameIdentity(known, identityOf(found.stats))) return true;
      this.known.delete(key);
      let hashed: Awaited<ReturnType<typeof hashRegularFile>>;
      try {
        hashed = await hashRegularFile(found.file);
      } catch (e) {
        if (e instanceof StoreEntryError) return false;
        throw e;
      }
      if (hashed?.digest !== digest) return false;
      this.known.set(key, hashed.identity);
      return true;
    })();
    this.running.set(key, check);
    const forget = () => this.running.delete(key);
    check.then(forget, forget);
    return check;
  }

  /** A file this run put in place itself (its bytes were verified before the move). */
  remember(key: string, stats: Stats): void {
    this.known.set(key, identityOf(stats));
  }
}
