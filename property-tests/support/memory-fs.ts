/**
 * An in-memory {@link TempFsPort} for property tests.
 *
 * - Files are a `Map<path, {content}>`, directories a `Set<path>`; paths are POSIX.
 * - Mount points: every path belongs to the device of its longest mount prefix (by
 *   default `/`, `/tmp` and `/out` are three devices), so a rename between `/tmp` and
 *   `/out` rejects with `EXDEV` just as a real tmpfs → disk rename does.
 * - Every operation is logged ({@link FsLogEntry}) with its outcome, and the lifecycle of
 *   every path is tracked so that an unlink of a path that was already unlinked (or renamed
 *   away) and not re-created since is recorded in {@link MemoryFs.staleUnlinks}.
 * - Faults: {@link MemoryFs.failNext} queues an error code for the next matching
 *   operation (optionally after skipping some). Injected errors carry `injected: true`.
 * - Scheduling: with a `fc.scheduler()`, every operation first awaits a gate built with
 *   `scheduleFunction` and only then takes effect, so the order in which operations take
 *   effect and complete is chosen by fast-check (the scheduler's report lists them as
 *   `rename("/tmp/…","/out/…")`). Without one, each operation still completes
 *   asynchronously, as node:fs does.
 *
 * Besides the port, the class offers the operations synthetic stages use to "write into"
 * files (`writeFile`, `readFile`, `writeNew`, `mkdir`); they are logged, schedulable and
 * faultable like the port's.
 *
 * @module
 */
import * as path from 'node:path';
import type * as fc from 'fast-check';
import type { TempFsPort } from '../../src/core/fs-port.js';

const posix = path.posix;

export type FsOpName =
  | 'makeRunDir'
  | 'createExclusive'
  | 'rename'
  | 'copyFile'
  | 'unlink'
  | 'removeDir'
  | 'listDir'
  | 'write'
  | 'read'
  | 'mkdir';

export interface FsLogEntry {
  readonly seq: number;
  readonly op: FsOpName;
  readonly args: readonly string[];
  /** `ok`, or the error code the operation rejected with. */
  readonly outcome: string;
  readonly injected: boolean;
}

interface PendingFault {
  readonly op: FsOpName;
  readonly code: string;
  remainingSkips: number;
  readonly match: ((args: readonly string[]) => boolean) | undefined;
}

/** An error the memory fs raised (`injected` when a queued fault caused it). */
export class MemoryFsError extends Error {
  constructor(
    readonly code: string,
    readonly op: FsOpName,
    readonly args: readonly string[],
    readonly injected: boolean,
  ) {
    super(`${code}: ${op} ${args.join(' -> ')}${injected ? ' (injected)' : ''}`);
    this.name = 'MemoryFsError';
  }
}

export function isInjected(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { injected?: unknown }).injected === true;
}

type PathState = 'present' | 'unlinked' | 'renamed';

export interface MemoryFsOptions {
  /** Mount points (each its own device); `/` is always one. Default `['/tmp', '/out']`. */
  readonly mounts?: readonly string[];
  /** Directories that exist from the start (parents are created too). Default `['/tmp', '/out']`. */
  readonly dirs?: readonly string[];
  /** When given, every operation's completion order is chosen by this scheduler. */
  readonly scheduler?: fc.Scheduler;
}

export class MemoryFs implements TempFsPort {
  readonly files = new Map<string, { content: string }>();
  readonly dirs = new Set<string>(['/']);
  readonly log: FsLogEntry[] = [];
  /** Unlinks of paths already unlinked or renamed away (and not re-created since). */
  readonly staleUnlinks: FsLogEntry[] = [];
  private readonly mounts: string[];
  private readonly faults: PendingFault[] = [];
  private readonly pathStates = new Map<string, PathState>();
  private readonly gates = new Map<FsOpName, (...args: string[]) => Promise<void>>();
  private runDirCounter = 0;
  private seq = 0;

  constructor(private readonly options: MemoryFsOptions = {}) {
    this.mounts = ['/', ...(options.mounts ?? ['/tmp', '/out'])].map((m) => posix.resolve(m));
    for (const d of options.dirs ?? ['/tmp', '/out']) this.mkdirp(d);
  }

  // ----- fault injection -------------------------------------------------------------

  /** Make the next matching `op` reject with `code` (after `skip` matching successes). */
  failNext(op: FsOpName, code: string, opts: { skip?: number; match?: (args: readonly string[]) => boolean } = {}): void {
    this.faults.push({ op, code, remainingSkips: opts.skip ?? 0, match: opts.match });
  }

  /** Faults queued and not yet fired. */
  get pendingFaults(): number {
    return this.faults.length;
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Log entries whose failure was injected. */
  firedFaults(): FsLogEntry[] {
    return this.log.filter((e) => e.injected);
  }

  // ----- observation -----------------------------------------------------------------

  deviceOf(p: string): string {
    const abs = posix.resolve(p);
    let best = '/';
    for (const m of this.mounts) {
      if ((abs === m || abs.startsWith(m === '/' ? '/' : `${m}/`)) && m.length > best.length) best = m;
    }
    return best;
  }

  exists(p: string): boolean {
    return this.files.has(p) || this.dirs.has(p);
  }

  isFile(p: string): boolean {
    return this.files.has(p);
  }

  isDir(p: string): boolean {
    return this.dirs.has(p);
  }

  contentOf(p: string): string | undefined {
    return this.files.get(p)?.content;
  }

  /** Files (not directories) at or below `prefix`, sorted. */
  filesUnder(prefix: string): string[] {
    const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
    return [...this.files.keys()].filter((f) => f === prefix || f.startsWith(p)).sort();
  }

  /** Directories strictly below `prefix`, sorted. */
  dirsUnder(prefix: string): string[] {
    const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
    return [...this.dirs].filter((d) => d.startsWith(p)).sort();
  }

  /** Every logged operation of this kind whose argument `argIndex` (default 0) is `p`. */
  opsOn(op: FsOpName, p: string, opts: { outcome?: string; argIndex?: number } = {}): FsLogEntry[] {
    const i = opts.argIndex ?? 0;
    return this.log.filter((e) => e.op === op && e.args[i] === p && (opts.outcome === undefined || e.outcome === opts.outcome));
  }

  // ----- the port ----------------------------------------------------------------------

  makeRunDir(parent: string, prefix: string): Promise<string> {
    return this.run('makeRunDir', [parent, prefix], () => {
      this.mkdirp(parent);
      let dir: string;
      do dir = posix.join(parent, `${prefix}${(++this.runDirCounter).toString(36).padStart(6, '0')}`);
      while (this.exists(dir));
      this.dirs.add(dir);
      return dir;
    });
  }

  createExclusive(p: string): Promise<void> {
    return this.run('createExclusive', [p], () => {
      this.requireParentDir('createExclusive', [p], p);
      if (this.exists(p)) throw new MemoryFsError('EEXIST', 'createExclusive', [p], false);
      this.files.set(p, { content: '' });
      this.pathStates.set(p, 'present');
    });
  }

  rename(from: string, to: string): Promise<void> {
    return this.run('rename', [from, to], () => {
      const file = this.files.get(from);
      if (!file) throw new MemoryFsError(this.dirs.has(from) ? 'EISDIR' : 'ENOENT', 'rename', [from, to], false);
      this.requireParentDir('rename', [from, to], to);
      if (this.dirs.has(to)) throw new MemoryFsError('EISDIR', 'rename', [from, to], false);
      if (this.deviceOf(from) !== this.deviceOf(to)) throw new MemoryFsError('EXDEV', 'rename', [from, to], false);
      if (from === to) return;
      this.files.delete(from);
      this.files.set(to, file);
      this.pathStates.set(from, 'renamed');
      this.pathStates.set(to, 'present');
    });
  }

  copyFile(from: string, to: string): Promise<void> {
    return this.run('copyFile', [from, to], () => {
      const file = this.files.get(from);
      if (!file) throw new MemoryFsError('ENOENT', 'copyFile', [from, to], false);
      this.requireParentDir('copyFile', [from, to], to);
      if (this.dirs.has(to)) throw new MemoryFsError('EISDIR', 'copyFile', [from, to], false);
      this.files.set(to, { content: file.content });
      this.pathStates.set(to, 'present');
    });
  }

  unlink(p: string): Promise<void> {
    return this.run(
      'unlink',
      [p],
      () => {
        if (this.dirs.has(p)) throw new MemoryFsError('EISDIR', 'unlink', [p], false);
        if (!this.files.has(p)) throw new MemoryFsError('ENOENT', 'unlink', [p], false);
        this.files.delete(p);
        this.pathStates.set(p, 'unlinked');
      },
      () => {
        const state = this.pathStates.get(p);
        return state === 'unlinked' || state === 'renamed';
      },
    );
  }

  removeDir(p: string): Promise<void> {
    return this.run('removeDir', [p], () => {
      if (this.files.has(p)) throw new MemoryFsError('ENOTDIR', 'removeDir', [p], false);
      if (!this.dirs.has(p)) throw new MemoryFsError('ENOENT', 'removeDir', [p], false);
      if (this.childrenOf(p).length > 0) throw new MemoryFsError('ENOTEMPTY', 'removeDir', [p], false);
      this.dirs.delete(p);
    });
  }

  listDir(p: string): Promise<string[]> {
    return this.run('listDir', [p], () => {
      if (!this.dirs.has(p)) throw new MemoryFsError(this.files.has(p) ? 'ENOTDIR' : 'ENOENT', 'listDir', [p], false);
      return this.childrenOf(p);
    });
  }

  // ----- what synthetic stages use ------------------------------------------------------

  /** Write into an existing file (it must exist: writing to a released path is ENOENT). */
  writeFile(p: string, content: string, mode: 'replace' | 'append' = 'replace'): Promise<void> {
    return this.run('write', [p, mode], () => {
      const file = this.files.get(p);
      if (!file) throw new MemoryFsError('ENOENT', 'write', [p, mode], false);
      file.content = mode === 'append' ? file.content + content : content;
    });
  }

  /** Create (or truncate) a file and write it, like `fs.writeFile`. */
  writeNew(p: string, content: string): Promise<void> {
    return this.run('write', [p, 'new'], () => {
      this.requireParentDir('write', [p, 'new'], p);
      if (this.dirs.has(p)) throw new MemoryFsError('EISDIR', 'write', [p, 'new'], false);
      this.files.set(p, { content });
      this.pathStates.set(p, 'present');
    });
  }

  readFile(p: string): Promise<string> {
    return this.run('read', [p], () => {
      const file = this.files.get(p);
      if (!file) throw new MemoryFsError('ENOENT', 'read', [p], false);
      return file.content;
    });
  }

  mkdir(p: string): Promise<void> {
    return this.run('mkdir', [p], () => {
      this.requireParentDir('mkdir', [p], p);
      if (this.exists(p)) throw new MemoryFsError('EEXIST', 'mkdir', [p], false);
      this.dirs.add(p);
    });
  }

  // ----- internals -------------------------------------------------------------------

  private childrenOf(dir: string): string[] {
    const prefix = dir === '/' ? '/' : `${dir}/`;
    const names = new Set<string>();
    for (const p of [...this.files.keys(), ...this.dirs]) {
      if (p !== dir && p.startsWith(prefix)) {
        const rest = p.slice(prefix.length);
        if (rest.length > 0 && !rest.includes('/')) names.add(rest);
      }
    }
    return [...names].sort();
  }

  private mkdirp(dir: string): void {
    let d = posix.resolve(dir);
    const chain: string[] = [];
    while (!this.dirs.has(d)) {
      chain.push(d);
      d = posix.dirname(d);
    }
    for (const c of chain.reverse()) this.dirs.add(c);
  }

  private requireParentDir(op: FsOpName, args: readonly string[], p: string): void {
    if (!this.dirs.has(posix.dirname(p))) throw new MemoryFsError('ENOENT', op, args, false);
  }

  private takeFault(op: FsOpName, args: readonly string[]): PendingFault | undefined {
    for (let i = 0; i < this.faults.length; i++) {
      const f = this.faults[i] as PendingFault;
      if (f.op !== op || (f.match && !f.match(args))) continue;
      if (f.remainingSkips > 0) {
        f.remainingSkips--;
        return undefined;
      }
      this.faults.splice(i, 1);
      return f;
    }
    return undefined;
  }

  private gate(op: FsOpName): (...args: string[]) => Promise<void> {
    let g = this.gates.get(op);
    if (!g) {
      const s = this.options.scheduler;
      // A function named after the op, so the scheduler's report reads `rename("/a","/b")`.
      const named = { [op]: async (..._args: string[]): Promise<void> => undefined }[op] as (...args: string[]) => Promise<void>;
      g = s ? s.scheduleFunction(named) : () => Promise.resolve();
      this.gates.set(op, g);
    }
    return g;
  }

  private async run<T>(op: FsOpName, args: string[], effect: () => T, isStale?: () => boolean): Promise<T> {
    await this.gate(op)(...args);
    const seq = ++this.seq;
    // Looked at when the operation takes effect, before it changes anything.
    const stale = isStale?.() ?? false;
    const record = (outcome: string, injected: boolean) => {
      const entry: FsLogEntry = { seq, op, args, outcome, injected };
      this.log.push(entry);
      if (stale) this.staleUnlinks.push(entry);
    };
    const fault = this.takeFault(op, args);
    if (fault) {
      record(fault.code, true);
      throw new MemoryFsError(fault.code, op, args, true);
    }
    let result: T;
    try {
      result = effect();
    } catch (e) {
      record((e as { code?: string }).code ?? 'EUNKNOWN', false);
      throw e;
    }
    record('ok', false);
    return result;
  }
}
