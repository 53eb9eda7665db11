/**
 * A lossless, deterministic, streaming tar rewrite: read entries with `readTar`, let a
 * transform change or drop each header, write every kept entry with our own encoder.
 *
 * What the output is, entry by entry, in input order:
 *
 * - the header from `encodeHeader`: USTAR when the entry fits, a PAX header in front when
 *   it does not (long or non-ASCII names and link names, uid/gid over 2 097 151, sizes of
 *   8 GiB and more, fractional, negative or huge mtimes, long or non-ASCII user/group
 *   names, any extra record);
 * - the data, byte for byte, then zero padding to a 512-byte boundary.
 *
 * PAX records: those duplicating header fields (`path`, `linkpath`, `size`, `uid`, `gid`,
 * `uname`, `gname`, `mtime`) are regenerated from the fields, and only when needed;
 * `hdrcharset` and `GNU.sparse.*` are dropped; every other record (`SCHILY.xattr.*` such
 * as file capabilities and SELinux labels, `LIBARCHIVE.*`, `atime`, `ctime`, ...) is kept
 * byte for byte, sorted by key. GNU long names become PAX records, contiguous files (`7`)
 * become regular files.
 *
 * Global PAX headers (`g`) stay global headers, so the output stays linear in the input
 * (repeating every accumulated global record on every entry made 2000 `g` headers and
 * 2000 files 30 times the input's size). Each is written where it was read, with the same
 * records less three kinds: field records (their values, as the reader applied them, are
 * on each entry, written as for any entry: so a transform's mtime wins over a global
 * `mtime`, and the fields mean the same to readers that let each `g` replace the previous
 * ones, such as GNU tar); encoding records; and the records the transform removes from
 * every entry ({@link RewriteOptions.droppedRecords}). A `g` header left empty is not
 * written. An entry's own header carries its own extra records only, so the work per
 * entry does not grow with the global records in effect either.
 *
 * The archive ends with two zero blocks (1024 bytes) and no record padding, so an archive
 * with no entries is exactly the canonical empty layer. Nothing is taken from the clock or
 * the environment: the same input and transform always give the same bytes, and
 * rewriting an output with the identity transform gives it back unchanged.
 *
 * GNU sparse entries are not expanded. One may be dropped, or passed through byte for byte
 * when the transform returns its header unchanged; any other change is an error
 * (`GNU sparse entries are not supported ...`).
 *
 * @module
 */
import { InternalError, throwIfAborted } from '../errors.js';
import { isReservedPaxKey } from './fields.js';
import { BLOCK, encodeGlobalHeader, encodeHeader, END_OF_ARCHIVE, paddingFor, type PaxValue, type TarHeader } from './header.js';
import { type ReadTarOptions, readTar, TarReadError } from './reader.js';

/** The header a transform sees and returns. */
export type TarEntryHeader = TarHeader;

/**
 * Change an entry's header, or drop the entry (`null`). It must not change `size` or
 * whether the entry has data. Its `pax` holds the entry's own extra records: those of
 * global headers are not repeated on each entry (see {@link RewriteOptions.droppedRecords}).
 */
export type TarTransform = (entry: TarEntryHeader) => TarEntryHeader | null;

/** Counters a rewrite updates as it goes. */
export interface RewriteStats {
  entries: number;
  dropped: number;
  /** Sparse entries passed through byte for byte. */
  passedThrough: number;
  /**
   * Entries whose header the transform changed, plus global records it removed: with
   * `dropped`, zero means the archive means what the input meant (only the encoding differs).
   */
  changed: number;
}

export function emptyRewriteStats(): RewriteStats {
  return { entries: 0, dropped: 0, passedThrough: 0, changed: 0 };
}

export interface RewriteOptions extends ReadTarOptions {
  /** Checked between entries and data chunks. */
  readonly signal?: AbortSignal;
  readonly stats?: RewriteStats;
  /**
   * PAX records the transform removes from every entry (normalize-timestamps: `atime`,
   * `ctime`, ...): left out of the global headers too, since an entry cannot unset a
   * global record without GNU tar refusing the archive (`atime=` is malformed to it).
   */
  readonly droppedRecords?: readonly string[];
}

const ZEROS = new Uint8Array(BLOCK);
const textEncoder = new TextEncoder();

function paxBytes(v: PaxValue): Uint8Array {
  return typeof v === 'string' ? textEncoder.encode(v) : v;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether two headers describe the same entry (extra records compared as bytes). */
export function sameHeader(a: TarHeader, b: TarHeader): boolean {
  if (
    a.name !== b.name ||
    a.type !== b.type ||
    a.size !== b.size ||
    a.mode !== b.mode ||
    a.uid !== b.uid ||
    a.gid !== b.gid ||
    !Object.is(a.mtime, b.mtime) ||
    a.mtimeText !== b.mtimeText ||
    a.linkname !== b.linkname ||
    (a.uname ?? '') !== (b.uname ?? '') ||
    (a.gname ?? '') !== (b.gname ?? '') ||
    a.devmajor !== b.devmajor ||
    a.devminor !== b.devminor
  ) {
    return false;
  }
  const pa = a.pax ?? {};
  const pb = b.pax ?? {};
  const ka = Object.keys(pa).sort();
  const kb = Object.keys(pb).sort();
  if (ka.length !== kb.length) return false;
  return ka.every((k, i) => k === kb[i] && sameBytes(paxBytes(pa[k] as PaxValue), paxBytes(pb[k] as PaxValue)));
}

/**
 * Rewrite a tar stream entry by entry. The result is a stream of chunks (headers, data
 * views of the input, padding) that must not be modified; it ends with the end-of-archive
 * marker. Errors from the input, from reading (`TarReadError`) and from the transform
 * propagate; stopping early stops reading the input.
 */
export async function* rewriteTar(input: AsyncIterable<Uint8Array>, transform: TarTransform, options: RewriteOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
  const { signal, stats } = options;
  const globals = new OutputGlobals(options.droppedRecords ?? [], () => {
    if (stats) stats.changed++;
  });
  // Global extra records stay in the global headers: an entry's `pax` holds its own only.
  for await (const entry of readTar(input, { ...options, globalExtrasApart: true })) {
    throwIfAborted(signal);
    if (stats) stats.entries++;
    // Before the entry, kept or not: a global header applies to the entries after it too.
    if (entry.globalRecords) {
      const g = globals.apply(entry.globalRecords);
      if (g) yield g;
    }
    const out = transform(entry.header);
    if (out === null) {
      if (stats) stats.dropped++;
      continue; // the reader skips the data
    }
    if (entry.sparse) {
      if (globals.leftOut.size > 0) {
        // Its raw header cannot be given the records the output's globals no longer carry.
        throw new TarReadError('GNU sparse entries under a global PAX header are not supported', entry.offset);
      }
      if (!sameHeader(out, entry.header)) {
        throw new TarReadError(
          `GNU sparse entries are not supported: ${JSON.stringify(entry.header.name)} is sparse, and a sparse entry can only be kept unchanged or dropped`,
          entry.offset,
        );
      }
      if (stats) stats.passedThrough++;
      yield entry.sparse.rawHeader;
    } else {
      if (stats && !sameHeader(out, entry.header)) stats.changed++;
      if (out.size !== entry.header.size || (out.type === 'file') !== (entry.header.type === 'file')) {
        throw new InternalError(`tar rewrite: the transform changed the size or kind of ${JSON.stringify(entry.header.name)}`);
      }
      yield encodeHeader(out);
    }
    let copied = 0;
    for await (const chunk of entry.data) {
      throwIfAborted(signal);
      copied += chunk.length;
      yield chunk;
    }
    if (copied !== entry.storedSize) throw new TarReadError(`short data for ${JSON.stringify(entry.header.name)}`, entry.offset);
    const pad = paddingFor(entry.storedSize);
    if (pad > 0) yield ZEROS.subarray(0, pad);
  }
  yield END_OF_ARCHIVE;
}

/** What goes into the output's global headers, and what was left out of them. */
class OutputGlobals {
  /** Keys of input global records not written (fields, encoding, dropped), in effect in the input. */
  readonly leftOut = new Set<string>();

  constructor(
    private readonly dropped: readonly string[],
    private readonly onDropped: () => void,
  ) {}

  /** The `g` header to write for these input records, or undefined when none is left. */
  apply(records: readonly (readonly [string, Uint8Array])[]): Uint8Array | undefined {
    const kept: [string, Uint8Array][] = [];
    for (const [key, value] of records) {
      if (isReservedPaxKey(key) || this.dropped.includes(key)) {
        // A field record is applied to each entry by the reader; a dropped one changes them.
        if (this.dropped.includes(key) && !isReservedPaxKey(key)) this.onDropped();
        if (value.length === 0) this.leftOut.delete(key);
        else this.leftOut.add(key);
      } else {
        kept.push([key, value]);
      }
    }
    return kept.length > 0 ? encodeGlobalHeader(kept) : undefined;
  }
}
