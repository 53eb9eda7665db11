/**
 * The run-level temp-file scope: the shell's handler for ownership effects.
 *
 * Every temp file is registered in the {@link Ledger} before its path is handed to
 * anyone, so whatever happens to the generators that hold it (finished, abandoned,
 * failed, interrupted by a signal), `close()` can release it. Temp files live in a
 * private run directory (removed last), or beside an output's target when they are
 * destined to be renamed over it.
 *
 * @module
 */
import * as path from 'node:path';
import { errorCode, type TempFsPort } from '../core/fs-port.js';
import { Ledger, type Effects, type OwnershipEffect, type ReplyOf, type TempFile, type TempId, type TempLocation, type TranscodedFile } from '../core/ownership.js';
import { nodeTempFs } from './fs/node-temp-fs.js';
import { type LayerCodecs, nodeLayerCodecs } from './fs/transcode.js';

export interface ScopeOptions {
  /** Parent of the run directory (`--temp-dir`, else the system temp dir). */
  readonly parent: string;
  readonly fs?: TempFsPort;
  /** Reports moves that had to copy because source and destination are on different filesystems. */
  readonly onCrossDeviceCopy?: (from: string, to: string) => void;
  /** How `Inflate` and `Compress` effects are performed (default: node's zlib and fzstd). */
  readonly codecs?: LayerCodecs;
}

export interface CloseReport {
  /** Files still unclaimed at close, now removed. */
  readonly released: number;
  /** Problems met while cleaning up (never thrown: close must finish). */
  readonly problems: readonly string[];
}

function safePurpose(purpose: string): string {
  return purpose.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 48) || 'tmp';
}

export class TempScope implements Effects {
  readonly ledger = new Ledger();
  private readonly pending = new Set<Promise<unknown>>();
  /** Released files whose unlink failed: close() tries them again and reports what stays. */
  private readonly failedUnlinks = new Set<string>();
  /** Distinguishes this scope's temp names beside outputs from another scope's in the same process. */
  private readonly token = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  private closing: Promise<CloseReport> | undefined;
  /** Aborted when close() starts: an Inflate/Compress under way stops instead of holding close up. */
  private readonly stopping = new AbortController();

  private constructor(
    readonly runDir: string,
    private readonly fs: TempFsPort,
    private readonly options: ScopeOptions,
  ) {}

  static async open(options: ScopeOptions): Promise<TempScope> {
    const fs = options.fs ?? nodeTempFs;
    const runDir = await fs.makeRunDir(options.parent, 'occystrap-');
    return new TempScope(runDir, fs, options);
  }

  perform<E extends OwnershipEffect>(effect: E): Promise<ReplyOf<E>> {
    const op = this.dispatch(effect) as Promise<ReplyOf<E>>;
    this.pending.add(op);
    const forget = () => this.pending.delete(op);
    op.then(forget, forget);
    return op;
  }

  private async dispatch(effect: OwnershipEffect): Promise<unknown> {
    switch (effect._tag) {
      case 'CreateTemp':
        return this.create(effect.owner, effect.purpose, effect.location);
      case 'HandOver':
        this.ledger.handOver(effect.file, effect.from, effect.to);
        return undefined;
      case 'MoveIntoPlace':
        return this.move(effect.file, effect.owner, effect.destination);
      case 'Release':
        this.ledger.release(effect.file, effect.owner);
        await this.unlinkOrRemember(effect.file.path);
        return undefined;
      case 'Inflate':
      case 'Compress':
        return this.transcode(effect);
    }
  }

  /** Counts of `Inflate` and `Compress` effects performed (for summaries and tests). */
  readonly transcodes = { inflated: 0, compressed: 0 };

  private async transcode(effect: Extract<OwnershipEffect, { _tag: 'Inflate' | 'Compress' }>): Promise<TranscodedFile> {
    const action = effect._tag === 'Inflate' ? 'inflate' : 'compress';
    this.ledger.checkOwned(effect.source, effect.owner, action);
    const made = await this.create(effect.owner, effect.purpose, undefined);
    const codecs = this.options.codecs ?? nodeLayerCodecs;
    // Stopped by the requester (its stage's signal) or by close() (the run is over).
    const signal = effect.signal ? AbortSignal.any([effect.signal, this.stopping.signal]) : this.stopping.signal;
    try {
      const result =
        effect._tag === 'Inflate'
          ? await codecs.inflate(effect.source.path, made.path, effect.compression, signal)
          : await codecs.compress(effect.source.path, made.path, effect.compression, signal);
      if (effect._tag === 'Inflate') this.transcodes.inflated++;
      else this.transcodes.compressed++;
      return { file: made, digest: result.digest, size: result.size };
    } catch (e) {
      // The new file never reached anyone: it is released here.
      this.ledger.release(made, effect.owner);
      await this.unlinkOrRemember(made.path);
      throw e;
    }
  }

  private async create(owner: string, purpose: string, location: TempLocation | undefined): Promise<TempFile> {
    const pathFor = (id: TempId) => {
      if (location && location._tag === 'Beside') {
        const dir = path.dirname(location.target);
        return path.join(dir, `.${path.basename(location.target)}.occystrap-${this.token}-${id}.tmp`);
      }
      return path.join(this.runDir, `${id}-${safePurpose(purpose)}`);
    };
    const entry = this.ledger.register(owner, purpose, pathFor);
    try {
      await this.fs.createExclusive(entry.path);
    } catch (e) {
      this.ledger.unregister(entry.id);
      throw e;
    }
    return { id: entry.id, path: entry.path };
  }

  private async move(file: TempFile, owner: string, destination: string): Promise<{ copied: boolean }> {
    this.ledger.beginMove(file, owner, destination);
    try {
      await this.fs.rename(file.path, destination);
      this.ledger.finishMove(file);
      return { copied: false };
    } catch (e) {
      if (errorCode(e) !== 'EXDEV') {
        this.ledger.abortMove(file);
        throw e;
      }
    }
    // Across filesystems: copy beside the destination, rename over it, then drop the source.
    const staging = path.join(path.dirname(destination), `.${path.basename(destination)}.occystrap-copy-${this.token}-${file.id}`);
    try {
      await this.fs.copyFile(file.path, staging);
      await this.fs.rename(staging, destination);
    } catch (e) {
      await this.fs.unlink(staging).catch(() => undefined);
      this.ledger.abortMove(file);
      throw e;
    }
    this.ledger.finishMove(file);
    await this.unlinkOrRemember(file.path);
    this.options.onCrossDeviceCopy?.(file.path, destination);
    return { copied: true };
  }

  private async unlinkQuietly(p: string): Promise<string | undefined> {
    try {
      await this.fs.unlink(p);
      return undefined;
    } catch (e) {
      return errorCode(e) === 'ENOENT' ? undefined : `could not remove ${p}: ${(e as Error).message}`;
    }
  }

  private async unlinkOrRemember(p: string): Promise<void> {
    if ((await this.unlinkQuietly(p)) !== undefined) this.failedUnlinks.add(p);
  }

  /** Files registered and not yet moved or released. */
  get unclaimed(): number {
    return this.ledger.liveCount();
  }

  /**
   * Release everything still unclaimed and remove the run directory. Waits for file
   * operations in flight first, so nothing is created after it has looked. Idempotent.
   */
  close(): Promise<CloseReport> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<CloseReport> {
    const problems: string[] = [];
    this.stopping.abort(new Error('the run is shutting down'));
    // Let in-flight creates/moves land; new creates are refused once closeAll runs.
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    const leftovers = this.ledger.closeAll('scope');
    for (const p of this.failedUnlinks) {
      const problem = await this.unlinkQuietly(p);
      if (problem) problems.push(problem);
    }
    const retried = new Set(this.failedUnlinks);
    this.failedUnlinks.clear();
    for (const entry of leftovers) {
      const problem = await this.unlinkQuietly(entry.path);
      if (problem) problems.push(problem);
    }
    try {
      await this.fs.removeDir(this.runDir);
    } catch (e) {
      if (errorCode(e) === 'ENOTEMPTY' || errorCode(e) === 'EEXIST') {
        // Files written into the run dir outside the ledger (a bug): remove and report them.
        const strays = await this.fs.listDir(this.runDir).catch(() => [] as string[]);
        for (const name of strays) {
          const full = path.join(this.runDir, name);
          problems.push(retried.has(full) ? `removed ${full} only at close: its release could not unlink it` : `unregistered temp file ${name}`);
          await this.fs.unlink(full).catch(() => undefined);
        }
        await this.fs.removeDir(this.runDir).catch((err: unknown) => problems.push(`could not remove ${this.runDir}: ${(err as Error).message}`));
      } else if (errorCode(e) !== 'ENOENT') {
        problems.push(`could not remove ${this.runDir}: ${(e as Error).message}`);
      }
    }
    return { released: leftovers.length, problems };
  }
}
