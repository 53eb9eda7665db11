/**
 * The `dir://` store lock: `DIR/.occystrap.lock`, created with `O_EXCL`, holding the
 * holder's pid, host and a random nonce. Runs hold it only around the read-merge-write of
 * `catalog.json` and the manifest (and around a rollback), so concurrent runs into one
 * store never lose a catalog entry.
 *
 * A waiter polls (bounded by a timeout). A lock whose holder is a dead process on this
 * host is stale and is removed, by one waiter at a time: the breaker first takes
 * `DIR/.occystrap.lock.break` (also `O_EXCL`), then removes the lock only if it still holds
 * the same bytes it judged stale, so a fresh lock taken meanwhile is never removed.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AbortError } from '../../core/errors.js';
import { lstatEntry, readRegularFile } from './store-fs.js';

export const LOCK_NAME = '.occystrap.lock';
const BREAK_SUFFIX = '.break';
/** A lock or break file this old whose content cannot be judged is stale. */
const UNREADABLE_STALE_MS = 10_000;
const LOCK_BYTES_CAP = 4096;

export interface StoreLockOptions {
  /** How long to wait for another run's lock (default 60 s). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export class StoreLockError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreLockError';
  }
}

export interface StoreLock {
  /** Remove the lock if it is still ours. Idempotent. */
  release(): Promise<void>;
}

interface Holder {
  pid: number;
  host: string;
}

function parseHolder(bytes: Uint8Array): Holder | undefined {
  try {
    const v = JSON.parse(Buffer.from(bytes).toString('utf8')) as { pid?: unknown; host?: unknown };
    return typeof v.pid === 'number' && Number.isSafeInteger(v.pid) && typeof v.host === 'string' ? { pid: v.pid, host: v.host } : undefined;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code !== 'ESRCH';
  }
}

async function createExclusive(p: string, bytes: Uint8Array): Promise<boolean> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(p, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o644);
  } catch (e) {
    if ((e as { code?: string }).code === 'EEXIST') return false;
    throw e;
  }
  try {
    await handle.writeFile(bytes);
  } finally {
    await handle.close();
  }
  return true;
}

/** The lock file's bytes when its holder is gone, else undefined (held, or already gone). */
async function staleContent(p: string): Promise<Uint8Array | undefined> {
  const entry = await lstatEntry(p);
  if (entry.kind === 'missing') return undefined;
  if (entry.kind !== 'file') throw new StoreLockError(`${path.basename(p)} is not a regular file; remove ${p}`);
  const bytes = await readRegularFile(p, LOCK_BYTES_CAP).catch(() => undefined);
  if (bytes === undefined) return undefined;
  const holder = parseHolder(bytes);
  if (holder === undefined) {
    // Being written right now, or left half-written by a crash: judge by age.
    return Date.now() - (entry.stats?.mtimeMs ?? Date.now()) > UNREADABLE_STALE_MS ? bytes : undefined;
  }
  if (holder.host !== os.hostname()) return undefined; // cannot tell: wait
  return processAlive(holder.pid) ? undefined : bytes;
}

/** Remove a stale lock, one breaker at a time. */
async function breakStale(lockPath: string, stale: Uint8Array, me: Uint8Array): Promise<void> {
  const breakPath = lockPath + BREAK_SUFFIX;
  if (!(await createExclusive(breakPath, me))) {
    const staleBreak = await staleContent(breakPath).catch(() => undefined);
    if (staleBreak !== undefined) await fs.unlink(breakPath).catch(() => undefined);
    return;
  }
  try {
    const now = await readRegularFile(lockPath, LOCK_BYTES_CAP).catch(() => undefined);
    if (now !== undefined && Buffer.compare(Buffer.from(now), Buffer.from(stale)) === 0) await fs.unlink(lockPath).catch(() => undefined);
  } finally {
    await fs.unlink(breakPath).catch(() => undefined);
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Take the store's lock, waiting for another run's; throws {@link StoreLockError} on timeout. */
export async function acquireStoreLock(root: string, options: StoreLockOptions = {}): Promise<StoreLock> {
  const lockPath = path.join(root, LOCK_NAME);
  const me = Buffer.from(`${JSON.stringify({ pid: process.pid, host: os.hostname(), nonce: randomBytes(12).toString('hex') })}\n`);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  let delay = 5;
  for (;;) {
    if (options.signal?.aborted) throw new AbortError(options.signal.reason);
    if (await createExclusive(lockPath, me)) break;
    const stale = await staleContent(lockPath);
    if (stale !== undefined) {
      await breakStale(lockPath, stale, me);
      delay = 5;
    }
    if (Date.now() > deadline) {
      const holder = parseHolder((await readRegularFile(lockPath, LOCK_BYTES_CAP).catch(() => undefined)) ?? new Uint8Array());
      const who = holder ? `process ${holder.pid} on ${holder.host}` : 'another process';
      throw new StoreLockError(`${LOCK_NAME} is held by ${who}; if no occystrap run is writing this store, remove ${lockPath}`);
    }
    await sleep(delay + Math.floor(Math.random() * delay), options.signal);
    delay = Math.min(100, delay * 2);
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      const now = await readRegularFile(lockPath, LOCK_BYTES_CAP).catch(() => undefined);
      if (now !== undefined && Buffer.compare(Buffer.from(now), me) === 0) await fs.unlink(lockPath).catch(() => undefined);
    },
  };
}
