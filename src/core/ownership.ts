/**
 * Temp-file ownership as typed effects.
 *
 * A temp file has exactly one owner at any moment. Core code never touches the file
 * system: it asks for ownership changes by handing an {@link OwnershipEffect} (plain data)
 * to an {@link Effects} handler. The shell's scope is the real handler (it creates,
 * renames and unlinks files); property tests substitute handlers over in-memory file
 * systems. Whatever the handler, every transition is checked by a {@link Ledger}, the
 * pure state machine that defines the rules:
 *
 * ```
 *   CreateTemp ──► Live(owner) ──HandOver(from=owner,to)──► Live(to)
 *                     │                      
 *                     ├─MoveIntoPlace(owner)──► Moving ──ok──► Moved      (final)
 *                     │                           └──fail──► Live(owner)
 *                     └─Release(owner)──────────► Released                (final)
 * ```
 *
 * Two effects make a new file from one the requester owns and keeps: `Inflate` (the
 * uncompressed tar of a layer blob) and `Compress` (a gzip or zstd blob of a layer tar).
 * The new file is `Live(owner)` once the reply arrives; on failure it never existed.
 *
 * A file reaches exactly one final state; any other request is an
 * {@link OwnershipViolation}. `closeAll` releases whatever is still live (the run-level
 * safety net for abandoned generators, errors and signals).
 *
 * @module
 */

import type { Digest } from './digest.js';
import { OccystrapError } from './errors.js';

declare const tempIdBrand: unique symbol;
export type TempId = number & { readonly [tempIdBrand]: true };

/** A temp file handed out by the scope. The path is valid only while the holder owns it. */
export interface TempFile {
  readonly id: TempId;
  readonly path: string;
}

/** Where a new temp file lives: the run's temp dir, or beside a final output path (same filesystem). */
export type TempLocation = { readonly _tag: 'RunDir' } | { readonly _tag: 'Beside'; readonly target: string };

/** The compressions a `Compress` effect can make. */
export type BlobCompression = 'gzip' | 'zstd';

export type OwnershipEffect =
  | { readonly _tag: 'CreateTemp'; readonly owner: string; readonly purpose: string; readonly location?: TempLocation }
  | { readonly _tag: 'HandOver'; readonly file: TempFile; readonly from: string; readonly to: string }
  | { readonly _tag: 'MoveIntoPlace'; readonly file: TempFile; readonly owner: string; readonly destination: string }
  | { readonly _tag: 'Release'; readonly file: TempFile; readonly owner: string }
  /** Decompress `source` (a blob `owner` owns and keeps) into a new temp file. */
  | {
      readonly _tag: 'Inflate';
      readonly source: TempFile;
      readonly owner: string;
      readonly compression: 'none' | BlobCompression | 'sniff';
      readonly purpose: string;
      /** The requester's stage signal: aborting it stops the work (the new file is then released). */
      readonly signal?: AbortSignal;
    }
  /** Compress `source` (a tar `owner` owns and keeps) into a new temp file, deterministically. */
  | {
      readonly _tag: 'Compress';
      readonly source: TempFile;
      readonly owner: string;
      readonly compression: BlobCompression;
      readonly purpose: string;
      readonly signal?: AbortSignal;
    };

/** A new file made by `Inflate` or `Compress`: its sha256 and size as written. */
export interface TranscodedFile {
  readonly file: TempFile;
  readonly digest: Digest;
  readonly size: number;
}

/** What a handler answers for each effect. */
export interface EffectReplies {
  CreateTemp: TempFile;
  HandOver: void;
  MoveIntoPlace: { readonly copied: boolean };
  Release: void;
  Inflate: TranscodedFile;
  Compress: TranscodedFile;
}
export type ReplyOf<E extends OwnershipEffect> = EffectReplies[E['_tag']];

/** The capability core code receives to request ownership changes. */
export interface Effects {
  perform<E extends OwnershipEffect>(effect: E): Promise<ReplyOf<E>>;
}

export type FileState =
  | { readonly _tag: 'Live'; readonly owner: string }
  | { readonly _tag: 'Moving'; readonly owner: string; readonly destination: string }
  | { readonly _tag: 'Moved'; readonly destination: string }
  | { readonly _tag: 'Released'; readonly by: string };

export interface OwnershipViolation {
  readonly _tag: 'OwnershipViolation';
  readonly file: TempId | undefined;
  readonly message: string;
}

/** A stage broke the ownership rules (code `EOWNERSHIP`); `violation` has the details. */
export class OwnershipError extends OccystrapError {
  constructor(readonly violation: OwnershipViolation) {
    super('EOWNERSHIP', violation.message);
    this.name = 'OwnershipError';
  }
}

export interface LedgerEntry {
  readonly id: TempId;
  readonly path: string;
  readonly purpose: string;
  state: FileState;
}

/**
 * The pure state machine of temp-file ownership. It performs no I/O; a handler asks it
 * before and after each file-system operation. Methods throw {@link OwnershipError} on a
 * rule violation, before any I/O is done.
 */
export class Ledger {
  private nextId = 1;
  private readonly entries = new Map<TempId, LedgerEntry>();
  private closed = false;

  /** Register a new file before its path is handed to anyone. */
  register(owner: string, purpose: string, pathFor: (id: TempId) => string): LedgerEntry {
    if (this.closed) throw this.violation(undefined, `cannot create a temp file for ${owner}: the run is shutting down`);
    const id = this.nextId++ as TempId;
    const entry: LedgerEntry = { id, path: pathFor(id), purpose, state: { _tag: 'Live', owner } };
    this.entries.set(id, entry);
    return entry;
  }

  /** Forget a registration whose file could not be created (nothing to release). */
  unregister(id: TempId): void {
    const e = this.entries.get(id);
    if (e && e.state._tag === 'Live') this.entries.delete(id);
  }

  /** Check that `owner` holds `file` live (the source of a transcode), changing nothing. */
  checkOwned(file: TempFile, owner: string, action: string): void {
    this.live(file, owner, action);
  }

  handOver(file: TempFile, from: string, to: string): void {
    const e = this.live(file, from, `hand over to ${to}`);
    e.state = { _tag: 'Live', owner: to };
  }

  beginMove(file: TempFile, owner: string, destination: string): void {
    const e = this.live(file, owner, `move into ${destination}`);
    e.state = { _tag: 'Moving', owner, destination };
  }

  finishMove(file: TempFile): void {
    const e = this.get(file);
    if (e.state._tag !== 'Moving') throw this.violation(file.id, `temp file #${file.id} finished a move it never began`);
    e.state = { _tag: 'Moved', destination: e.state.destination };
  }

  /** A failed move leaves the file where it was, still owned by the mover. */
  abortMove(file: TempFile): void {
    const e = this.get(file);
    if (e.state._tag !== 'Moving') throw this.violation(file.id, `temp file #${file.id} aborted a move it never began`);
    e.state = { _tag: 'Live', owner: e.state.owner };
  }

  release(file: TempFile, owner: string): void {
    const e = this.live(file, owner, 'release');
    e.state = { _tag: 'Released', by: owner };
  }

  /** Stop accepting new files; return the live ones, each marked released by `closer`. */
  closeAll(closer: string): LedgerEntry[] {
    this.closed = true;
    const out: LedgerEntry[] = [];
    for (const e of this.entries.values()) {
      if (e.state._tag === 'Live') {
        e.state = { _tag: 'Released', by: closer };
        out.push(e);
      }
    }
    return out.reverse();
  }

  entry(id: TempId): LedgerEntry | undefined {
    return this.entries.get(id);
  }

  all(): readonly LedgerEntry[] {
    return [...this.entries.values()];
  }

  liveCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.state._tag === 'Live' || e.state._tag === 'Moving') n++;
    return n;
  }

  private get(file: TempFile): LedgerEntry {
    const e = this.entries.get(file.id);
    if (!e || e.path !== file.path) throw this.violation(file.id, `unknown temp file #${file.id} (${file.path})`);
    return e;
  }

  private live(file: TempFile, owner: string, action: string): LedgerEntry {
    const e = this.get(file);
    const s = e.state;
    if (s._tag !== 'Live') {
      const what = s._tag === 'Released' ? `already released by ${s.by}` : s._tag === 'Moved' ? `already moved to ${s.destination}` : 'being moved';
      throw this.violation(file.id, `${owner} cannot ${action} temp file #${file.id} (${e.purpose}): ${what}`);
    }
    if (s.owner !== owner) {
      throw this.violation(file.id, `${owner} cannot ${action} temp file #${file.id} (${e.purpose}): it is owned by ${s.owner}`);
    }
    return e;
  }

  private violation(file: TempId | undefined, message: string): OwnershipError {
    return new OwnershipError({ _tag: 'OwnershipViolation', file, message });
  }
}
