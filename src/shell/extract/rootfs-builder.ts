/**
 * The layer-apply engine's shell half: it reads each layer tar once, streaming, asks the
 * core planner ({@link LayerApplier}) what to do with each entry, and does it under
 * `root`. Every path it touches comes resolved from the planner, so no name from a layer
 * is resolved on disk; the calls add their own guards on top:
 *
 * - regular files are created with `O_CREAT | O_EXCL | O_NOFOLLOW` and their metadata set
 *   on the open descriptor (fchown, then fchmod, so setuid bits survive; xattrs by
 *   fsetxattr; futimes);
 * - symlinks, devices and directories are created exclusively (symlink, mknod, mkdir
 *   fail on an existing name); a symlink's owner and times are set with lchown and
 *   lutimes, never through it; directory metadata is applied at the end through a
 *   descriptor opened `O_DIRECTORY | O_NOFOLLOW`;
 * - hard links use link(2), which does not follow a symlink target;
 * - `root` must be a directory this run made fresh and private (0700), so no other process
 *   can change the tree under it while it is built (the caller's rule).
 *
 * The calls are synchronous: each is one quick system call, and for a layer of 100,000
 * small files a round trip through the thread pool per call would cost more than the call.
 *
 * @module
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  linkSync,
  lchownSync,
  lutimesSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  utimesSync,
  chmodSync,
  writeSync,
} from 'node:fs';
import { promises as fs } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { type ApplyOp, LayerApplier, type NodeMeta } from '../../core/extract/layer-apply.js';
import { outputError } from '../../core/errors.js';
import { readTar, type TarEntry } from '../../core/tar/reader.js';
import { loadAddon } from '../fs/native-addons.js';

/** What native/fsops.c gives. */
export interface FsOps {
  mknod(path: string, mode: number, major: number, minor: number): void;
  lsetxattr(path: string, name: string, value: Uint8Array): void;
  fsetxattr(fd: number, name: string, value: Uint8Array): void;
  lgetxattr(path: string, name: string): Uint8Array | null;
  llistxattr(path: string): string[];
  /** Create (O_EXCL|O_NOFOLLOW), write, fchown (when `chown`), fchmod, futimens and close, as one thread-pool job. */
  writeFile(path: string, data: Uint8Array, mode: number, uid: number, gid: number, chown: boolean, mtime: number): Promise<void>;
}

export interface RootfsOptions {
  /** The directory to build in: made fresh and private (0700) by the caller, empty. */
  readonly root: string;
  readonly mode: 'merged' | 'overlay';
  /**
   * Running as root: owners are applied, device nodes made, and `security.*` / `trusted.*`
   * xattrs set. Without it: files belong to the user running occystrap, a character or
   * block device becomes an empty file of mode 0 (as `umoci unpack --rootless` does),
   * FIFOs are still made, and only `user.*` xattrs are set; each kind skipped is counted.
   */
  readonly privileged: boolean;
  /** How the image is named in messages. */
  readonly label: string;
}

/** What was applied, and what a rootless build had to leave out. */
export interface RootfsStats {
  entries: number;
  files: number;
  bytes: number;
  /** Devices made as empty files (not root). */
  devicesFaked: number;
  /** xattrs not set (not root, or the filesystem refused them), by name. */
  xattrsSkipped: Map<string, number>;
}

const FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
/** Files up to this size are read into memory and written by the pool; larger ones stream, in order. */
const SMALL_FILE_BYTES = 1 << 20;
/** Small files being written at once, at most (libuv's pool has 4 threads). */
const MAX_PENDING_FILES = 16;
/** Bytes of small files held in memory while they are written, at most. */
const MAX_PENDING_BYTES = 16 << 20;

/** An entry's data, whole (it is at most {@link SMALL_FILE_BYTES}). */
async function collect(data: AsyncIterable<Uint8Array>, size: number, signal?: AbortSignal): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let at = 0;
  for await (const chunk of data) {
    signal?.throwIfAborted();
    out.set(chunk, at);
    at += chunk.length;
  }
  return at === size ? out : out.subarray(0, at);
}
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

/** Build a root file system from layer tars, in order. One instance per tree. */
export class RootfsBuilder {
  private readonly applier: LayerApplier;
  private fsops: FsOps | string | undefined;
  readonly stats: RootfsStats = { entries: 0, files: 0, bytes: 0, devicesFaked: 0, xattrsSkipped: new Map() };
  private layer = 0;

  constructor(private readonly options: RootfsOptions) {
    this.applier = new LayerApplier(options.mode);
  }

  /** The planner's answer for where a name leads in the tree built so far (for reading e.g. /etc/passwd). */
  resolve(name: string): E.Either<string, string> {
    return this.applier.resolve(name);
  }

  /** Directories made only as implicit parents, the root included when no entry named it (see {@link LayerApplier.implicitDirs}). */
  implicitDirs(): string[] {
    return this.applier.implicitDirs();
  }

  /** The absolute path of a resolved path. */
  pathOf(resolved: string): string {
    return resolved === '' ? this.options.root : `${this.options.root}/${resolved}`;
  }

  /**
   * Apply the next layer's tar. Errors: an entry the planner refuses, a sparse entry, a
   * tar that cannot be read, or a failed system call is an `EOUTPUT` error naming the
   * layer and the entry. Cancellation: `signal` stops between entries and chunks.
   */
  async applyLayer(tar: AsyncIterable<Uint8Array>, index: number, signal?: AbortSignal): Promise<void> {
    this.layer = index;
    try {
      for await (const entry of readTar(tar)) {
        signal?.throwIfAborted();
        const name = entry.header.name;
        if (entry.sparse) throw this.fail(name, 'it is a sparse file, which extraction does not support; rebuild the layer without --sparse');
        const planned = this.applier.entry(entry.header);
        if (E.isLeft(planned)) throw this.fail(name, planned.left.reason);
        this.stats.entries++;
        for (const op of planned.right) {
          try {
            await this.perform(op, entry, signal);
          } catch (e) {
            throw this.explain(e, name, op, signal);
          }
        }
      }
      await this.drain();
    } finally {
      // Nothing may still be writing when the caller removes or renames the tree.
      await Promise.allSettled([...this.pending]);
    }
    this.applier.endLayer();
  }

  private explain(e: unknown, name: string, op: ApplyOp, signal?: AbortSignal): unknown {
    if (signal?.aborted || (e as { code?: string }).code === 'EOUTPUT') return e;
    return this.fail(name, `${op._tag.toLowerCase()} ${op.path === '' ? '/' : op.path}: ${(e as Error).message}`);
  }

  /**
   * Small files are written by up to {@link MAX_PENDING_FILES} tasks at once on libuv's
   * thread pool: creating a file on a busy ext4 costs ~0.5 ms of waiting in the kernel,
   * and four at once took 2.6 s instead of 5.0 s for the bench's 8,800-file layer here.
   * The planner's order still holds: a file is created only after its directory's
   * Mkdir (done at once), and every operation that could touch a file still being
   * written (Remove, Hardlink, DirMeta) waits for all of them first.
   */
  private readonly pending = new Set<Promise<void>>();
  private pendingBytes = 0;
  private writeFailure: unknown;

  /** Wait for every file still being written; raise the first failure. */
  private async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.race(this.pending);
    this.raiseWriteFailure();
  }

  private raiseWriteFailure(): void {
    if (this.writeFailure !== undefined) throw this.writeFailure;
  }

  private async dispatch(task: () => Promise<void>, bytes: number): Promise<void> {
    while (this.pending.size >= MAX_PENDING_FILES || (this.pending.size > 0 && this.pendingBytes + bytes > MAX_PENDING_BYTES)) await Promise.race(this.pending);
    this.raiseWriteFailure();
    this.pendingBytes += bytes;
    const running: Promise<void> = task().then(
      () => undefined,
      (e: unknown) => {
        this.writeFailure ??= e;
      },
    );
    const tracked = running.finally(() => {
      this.pending.delete(tracked);
      this.pendingBytes -= bytes;
    });
    this.pending.add(tracked);
  }

  /** Apply the directories' metadata (deepest first). Call once, after the last layer. */
  finish(): void {
    const ops = this.applier.finish();
    // The root was made 0700 to stay private while it was built; without an entry for
    // it, it ends as a root file system's usual 0755.
    if (!ops.some((op) => op.path === '')) chmodSync(this.options.root, 0o755);
    for (const op of ops) {
      try {
        this.dirMeta(op as ApplyOp & { _tag: 'DirMeta' });
      } catch (e) {
        throw outputError(`${this.options.label}: setting the metadata of ${op.path === '' ? 'the root' : op.path}: ${(e as Error).message}`);
      }
    }
  }

  private fail(entry: string, reason: string): Error {
    return outputError(`${this.options.label}: layer ${this.layer}: entry ${JSON.stringify(entry)}: ${reason}; refusing the image`);
  }

  private native(what: string): FsOps {
    this.fsops ??= loadAddon<FsOps>('fsops');
    if (typeof this.fsops === 'string') throw outputError(`${this.options.label}: layer ${this.layer} needs ${what}, but ${this.fsops}; install a C compiler and run npm run build`);
    return this.fsops;
  }

  private async perform(op: ApplyOp, entry: TarEntry, signal?: AbortSignal): Promise<void> {
    const path = this.pathOf(op.path);
    if (op._tag === 'Remove' || op._tag === 'Hardlink' || op._tag === 'DirMeta') await this.drain();
    switch (op._tag) {
      case 'Remove':
        rmSync(path, { recursive: true, force: false });
        return;
      case 'Mkdir':
        mkdirSync(path, { mode: 0o755 });
        return;
      case 'File':
        if (op.size <= SMALL_FILE_BYTES) {
          const data = await collect(entry.data, op.size, signal);
          const name = entry.header.name;
          await this.dispatch(async () => {
            try {
              await this.writeSmallFile(path, op.meta, data);
            } catch (e) {
              throw this.explain(e, name, op);
            }
          }, data.length);
        } else await this.writeFile(path, op.meta, entry, signal);
        return;
      case 'Symlink':
        symlinkSync(op.target, path);
        if (this.options.privileged) lchownSync(path, op.meta.uid, op.meta.gid);
        this.setXattrs(op.meta, (name, value) => this.native('xattrs').lsetxattr(path, name, value));
        lutimesSync(path, op.meta.mtime, op.meta.mtime);
        return;
      case 'Hardlink':
        linkSync(this.pathOf(op.target), path);
        return;
      case 'Device':
        this.device(path, op);
        return;
      case 'Opaque':
        this.native('the overlay opaque xattr').lsetxattr(path, 'trusted.overlay.opaque', new TextEncoder().encode('y'));
        return;
      case 'DirMeta':
        this.dirMeta(op);
        return;
    }
  }

  private async writeFile(path: string, meta: NodeMeta, entry: TarEntry, signal?: AbortSignal): Promise<void> {
    const fd = openSync(path, FILE_FLAGS, 0o600);
    try {
      for await (const chunk of entry.data) {
        signal?.throwIfAborted();
        for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at, chunk.length - at);
        this.stats.bytes += chunk.length;
      }
      if (this.options.privileged) fchownSync(fd, meta.uid, meta.gid);
      fchmodSync(fd, meta.mode);
      this.setXattrs(meta, (name, value) => this.native('xattrs').fsetxattr(fd, name, value));
      futimesSync(fd, meta.mtime, meta.mtime);
      this.stats.files++;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * A small file whose bytes are in memory, written on the thread pool; metadata as
   * {@link writeFile}. Without xattrs (nearly every file) the addon does it all in one
   * pool job: six promise round trips a file cost the main thread ~40 % of the bench's
   * extraction.
   */
  private async writeSmallFile(path: string, meta: NodeMeta, data: Uint8Array): Promise<void> {
    // Ids past 32 bits go the slow way, whose fchown refuses them as the kernel does.
    if (meta.xattrs.length === 0 && meta.uid <= 0xffff_ffff && meta.gid <= 0xffff_ffff) {
      this.fsops ??= loadAddon<FsOps>('fsops');
      if (typeof this.fsops !== 'string') {
        await this.fsops.writeFile(path, data, meta.mode, meta.uid, meta.gid, this.options.privileged, meta.mtime);
        this.stats.files++;
        this.stats.bytes += data.length;
        return;
      }
    }
    const handle = await fs.open(path, FILE_FLAGS, 0o600);
    try {
      for (let at = 0; at < data.length; ) at += (await handle.write(data, at, data.length - at)).bytesWritten;
      if (this.options.privileged) await handle.chown(meta.uid, meta.gid);
      await handle.chmod(meta.mode);
      this.setXattrs(meta, (name, value) => this.native('xattrs').fsetxattr(handle.fd, name, value));
      await handle.utimes(meta.mtime, meta.mtime);
      this.stats.files++;
      this.stats.bytes += data.length;
    } finally {
      await handle.close();
    }
  }

  private device(path: string, op: ApplyOp & { _tag: 'Device' }): void {
    const { meta } = op;
    if (op.kind !== 'fifo' && !this.options.privileged) {
      // As umoci --rootless: the name exists, as an empty file nobody can open.
      closeSync(openSync(path, FILE_FLAGS, 0));
      this.stats.devicesFaked++;
      return;
    }
    const type = op.kind === 'fifo' ? S_IFIFO : op.kind === 'block' ? S_IFBLK : S_IFCHR;
    this.native(op.kind === 'fifo' ? 'a FIFO' : 'a device node').mknod(path, type | (meta.mode & 0o7777), op.major, op.minor);
    // The node was just made by us in the private root: these calls reach it, not a link.
    if (this.options.privileged) lchownSync(path, meta.uid, meta.gid);
    chmodSync(path, meta.mode);
    this.setXattrs(meta, (name, value) => this.native('xattrs').lsetxattr(path, name, value));
    utimesSync(path, meta.mtime, meta.mtime);
  }

  private dirMeta(op: ApplyOp & { _tag: 'DirMeta' }): void {
    const fd = openSync(this.pathOf(op.path), DIR_FLAGS);
    try {
      const { meta } = op;
      if (this.options.privileged) fchownSync(fd, meta.uid, meta.gid);
      fchmodSync(fd, meta.mode);
      this.setXattrs(meta, (name, value) => this.native('xattrs').fsetxattr(fd, name, value));
      futimesSync(fd, meta.mtime, meta.mtime);
    } finally {
      closeSync(fd);
    }
  }

  /** Set each xattr; without root only `user.*` is tried, and refusals of those are counted, not fatal. */
  private setXattrs(meta: NodeMeta, set: (name: string, value: Uint8Array) => void): void {
    for (const [name, value] of meta.xattrs) {
      if (!this.options.privileged && !name.startsWith('user.')) {
        this.skipXattr(name);
        continue;
      }
      try {
        set(name, value);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (!this.options.privileged && (code === 'EPERM' || code === 'ENOTSUP')) this.skipXattr(name);
        else throw e;
      }
    }
  }

  private skipXattr(name: string): void {
    this.stats.xattrsSkipped.set(name, (this.stats.xattrsSkipped.get(name) ?? 0) + 1);
  }
}
