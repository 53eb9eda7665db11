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
 * byte for byte, sorted by key. GNU long names become PAX records, global PAX headers are
 * folded into each entry, contiguous files (`7`) become regular files.
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
import { throwIfAborted } from '../errors.js';
import { BLOCK, encodeHeader, END_OF_ARCHIVE, paddingFor, type PaxValue, type TarHeader } from './header.js';
import { type ReadTarOptions, readTar, TarReadError } from './reader.js';

/** The header a transform sees and returns. */
export type TarEntryHeader = TarHeader;

/** Change an entry's header, or drop the entry (`null`). It must not change `size` or whether the entry has data. */
export type TarTransform = (entry: TarEntryHeader) => TarEntryHeader | null;

/** Counters a rewrite updates as it goes. */
export interface RewriteStats {
  entries: number;
  dropped: number;
  /** Sparse entries passed through byte for byte. */
  passedThrough: number;
}

export function emptyRewriteStats(): RewriteStats {
  return { entries: 0, dropped: 0, passedThrough: 0 };
}

export interface RewriteOptions extends ReadTarOptions {
  /** Checked between entries and data chunks. */
  readonly signal?: AbortSignal;
  readonly stats?: RewriteStats;
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
  for await (const entry of readTar(input, options)) {
    throwIfAborted(signal);
    if (stats) stats.entries++;
    const out = transform(entry.header);
    if (out === null) {
      if (stats) stats.dropped++;
      continue; // the reader skips the data
    }
    if (entry.sparse) {
      if (!sameHeader(out, entry.header)) {
        throw new TarReadError(
          `GNU sparse entries are not supported: ${JSON.stringify(entry.header.name)} is sparse, and a sparse entry can only be kept unchanged or dropped`,
          entry.offset,
        );
      }
      if (stats) stats.passedThrough++;
      yield entry.sparse.rawHeader;
    } else {
      if (out.size !== entry.header.size || (out.type === 'file') !== (entry.header.type === 'file')) {
        throw new Error(`tar rewrite: the transform changed the size or kind of ${JSON.stringify(entry.header.name)}`);
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
