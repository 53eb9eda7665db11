/**
 * A streaming tar reader that keeps everything a lossless rewrite needs.
 *
 * Why not tar-stream's `extract` here: it decodes PAX record values as UTF-8, so a binary
 * `SCHILY.xattr.security.capability` (any capability in bits 7, 15, 23 or 31, e.g.
 * `cap_setuid`) comes back with U+FFFD in place of its bytes; it keeps sub-second mtimes,
 * PAX uids and gids only as strings in `header.pax`; and it gives no access to the raw
 * header blocks a byte-exact pass-through of a GNU sparse entry needs. This reader keeps
 * PAX values as bytes, applies every PAX field record itself, and remembers the raw
 * header blocks. (tar-stream and GNU tar remain the independent readers the tests check
 * our output with.)
 *
 * Formats read: POSIX ustar and pax (`x` and `g` extended headers), GNU (`L`/`K` long
 * names, base-256 numbers, atime/ctime fields), v7. Entry types: regular (`0`, NUL, `7`
 * contiguous), hard link, symlink, character and block device, directory, fifo, and GNU
 * sparse (old `S` entries and PAX `GNU.sparse.*` entries, reported as such, not expanded).
 * Other types (`V`, `M`, `N`, `D`, vendor letters) are refused.
 *
 * The archive must end with the end marker (two zero blocks); an input that stops after
 * an entry without it, or with one zero block, or inside a block, is refused as truncated
 * (an empty input is an empty archive).
 *
 * Data is streamed: the reader holds at most the input chunks it needs to complete a
 * 512-byte block, plus one entry's extended headers (capped).
 *
 * @module
 */
import { formatPaxTime, mtimeNeedsPax, type PaxValue, type TarEntryType, type TarHeader, BLOCK, paddingFor } from './header.js';
import { GNU_FIELDS, USTAR_FIELDS, type UstarField } from './fields.js';
import { concatBytes as concat } from '../bytes.js';
import { InternalError, OccystrapError } from '../errors.js';

/** A tar stream that cannot be read: malformed, truncated, or using an unsupported feature (code `ETAR`). */
export class TarReadError extends OccystrapError {
  constructor(
    message: string,
    /** Byte offset in the stream of the block where the problem was found. */
    readonly offset: number,
  ) {
    super('ETAR', message);
    this.name = 'TarReadError';
  }
}

/** How a GNU sparse entry is stored. The reader does not expand sparse files. */
export interface SparseStorage {
  readonly format: 'old-gnu' | 'pax';
  /** Every header block of the entry as read (extended headers, main header, sparse extension blocks). */
  readonly rawHeader: Uint8Array;
}

export interface TarEntry {
  /**
   * The entry, with every PAX field record and GNU long name applied. `pax` holds the
   * remaining records (values as raw bytes); field and encoding records are not in it.
   * For a sparse entry: `name` is the real name (`GNU.sparse.name`) and `size` the real
   * size, while the stored data is `storedSize` bytes of sparse map and data.
   */
  readonly header: TarHeader;
  /** Offset of the entry's first header block in the stream. */
  readonly offset: number;
  /** Bytes of data that follow the header in the archive (before padding). */
  readonly storedSize: number;
  /** Set for a GNU sparse entry. */
  readonly sparse?: SparseStorage;
  /**
   * The records of the global (`g`) headers read since the previous entry, in order (an
   * empty value unsets). They are already applied to `header`; a writer that keeps global
   * headers as such (rather than repeating them on every entry) needs them.
   */
  readonly globalRecords?: readonly (readonly [string, Uint8Array])[];
  /**
   * Exactly `storedSize` bytes. Read it (or not) before asking for the next entry: data
   * not read by then is skipped, and reading it afterwards is an error.
   */
  readonly data: AsyncIterable<Uint8Array>;
  /** With `lenient`: the typeflag of an entry of an unknown type (`header.type` is then `file`). */
  readonly unknownType?: string;
}

export interface ReadTarOptions {
  /** Largest PAX extended header or GNU long name accepted (default 4 MiB, as tar-stream). */
  readonly maxExtendedHeaderBytes?: number;
  /**
   * Leave the extra records of global headers out of `header.pax` (they are still applied
   * to the fields, and reported in `globalRecords`), so an entry costs the same however
   * many global records are in effect. For a writer that keeps global headers as such.
   */
  readonly globalExtrasApart?: boolean;
  /**
   * Read as leniently as a lister may (Python's tarfile and tar-stream do): an archive may
   * end without its end marker (at a block boundary), names that are not UTF-8 are
   * decoded with U+FFFD, and an entry of a type the reader does not know is yielded with
   * `unknownType` set (its `size` bytes of data are skipped, as POSIX says). For readers
   * that only list; a rewrite must not use it.
   */
  readonly lenient?: boolean;
}

const DEFAULT_MAX_EXTENDED = 4 * 1024 * 1024;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Lossy = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

/** A queue of input chunks with exact-length takes. */
class ByteSource {
  private readonly chunks: Uint8Array[] = [];
  private head = 0; // offset into chunks[0]
  buffered = 0;
  /** Bytes taken so far (the stream offset of the next byte). */
  offset = 0;
  private ended = false;

  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  /** Ensure `n` bytes are buffered; false when the input ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      if (r.value.length === 0) continue;
      this.chunks.push(r.value);
      this.buffered += r.value.length;
    }
    return this.buffered >= n;
  }

  /** Take exactly `n` buffered bytes as a fresh copy. */
  take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const part = this.takeUpTo(n - o);
      out.set(part, o);
      o += part.length;
    }
    return out;
  }

  /** Take up to `n` buffered bytes without copying (a view of one input chunk). */
  takeUpTo(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first === undefined) return new Uint8Array(0);
    const available = first.length - this.head;
    const len = Math.min(n, available);
    const out = first.subarray(this.head, this.head + len);
    this.head += len;
    if (this.head === first.length) {
      this.chunks.shift();
      this.head = 0;
    }
    this.buffered -= len;
    this.offset += len;
    return out;
  }

  /** Discard `n` bytes; false when the input ends first. */
  async skip(n: number): Promise<boolean> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill(1))) return false;
      left -= this.takeUpTo(left).length;
    }
    return true;
  }
}

function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

function fieldBytes(block: Uint8Array, f: UstarField): Uint8Array {
  return block.subarray(f.offset, f.offset + f.length);
}

/** A NUL-terminated string field, as bytes. */
function cBytes(bytes: Uint8Array): Uint8Array {
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

/**
 * A numeric field: octal digits (leading spaces or NULs, then digits, ended by a space or
 * NUL), or GNU base-256 (first byte has the high bit set; 0xff-led fields are negative).
 */
function parseNumber(block: Uint8Array, f: UstarField, what: string, offset: number): number {
  const bytes = fieldBytes(block, f);
  const b0 = bytes[0] as number;
  if (b0 & 0x80) {
    let n = 0n;
    for (const b of bytes) n = (n << 8n) | BigInt(b);
    const bits = BigInt(bytes.length * 8);
    const value = b0 & 0x40 ? n - (1n << bits) : n - (1n << (bits - 1n));
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new TarReadError(`the ${what} field is out of range`, offset);
    }
    return Number(value);
  }
  let i = 0;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0)) i++;
  let n = 0;
  let digits = 0;
  for (; i < bytes.length; i++) {
    const c = bytes[i] as number;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) throw new TarReadError(`the ${what} field is not an octal number (${JSON.stringify(latin1.decode(bytes))})`, offset);
    n = n * 8 + (c - 0x30);
    digits++;
  }
  // Only spaces and NULs may follow the digits.
  for (; i < bytes.length; i++) {
    if (bytes[i] !== 0x20 && bytes[i] !== 0) throw new TarReadError(`the ${what} field is not an octal number (${JSON.stringify(latin1.decode(bytes))})`, offset);
  }
  return digits === 0 ? 0 : n;
}

function checksumOk(block: Uint8Array, offset: number): boolean {
  let stored: number;
  try {
    stored = parseNumber(block, USTAR_FIELDS.chksum, 'checksum', offset);
  } catch {
    return false;
  }
  let unsigned = 0;
  let signed = 0;
  const start = USTAR_FIELDS.chksum.offset;
  const end = start + USTAR_FIELDS.chksum.length;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= start && i < end ? 0x20 : (block[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

function decodeText(bytes: Uint8Array, what: string, offset: number, lossy = false): string {
  if (lossy) return utf8Lossy.decode(bytes);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new TarReadError(`${what} is not valid UTF-8 (${JSON.stringify(latin1.decode(bytes))}); names that are not UTF-8 are not supported`, offset);
  }
}

/** Parse a PAX extended header body into records, in order. Values stay bytes. */
export function parsePaxRecords(body: Uint8Array, offset = 0): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  let o = 0;
  while (o < body.length) {
    if (body[o] === 0) break; // NUL padding after the last record
    const space = body.indexOf(0x20, o);
    if (space <= o) throw new TarReadError('malformed PAX record (no length)', offset);
    const lenText = latin1.decode(body.subarray(o, space));
    if (!/^\d+$/.test(lenText)) throw new TarReadError(`malformed PAX record (length ${JSON.stringify(lenText)})`, offset);
    const len = Number(lenText);
    if (len <= space - o + 1 || o + len > body.length || body[o + len - 1] !== 0x0a) {
      throw new TarReadError(`malformed PAX record (length ${len} does not end at a newline)`, offset);
    }
    const kv = body.subarray(space + 1, o + len - 1);
    const eq = kv.indexOf(0x3d);
    if (eq <= 0) throw new TarReadError('malformed PAX record (no key=value)', offset);
    const key = decodeText(kv.subarray(0, eq), 'a PAX record key', offset);
    out.push([key, kv.slice(eq + 1)]);
    o += len;
  }
  return out;
}

/** Decimal text with leading integer zeros and trailing fraction zeros removed. */
function canonicalDecimal(text: string): string {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(text) as RegExpExecArray;
  const int = (m[2] as string).replace(/^0+(?=\d)/, '');
  const frac = (m[3] ?? '').replace(/0+$/, '');
  const body = frac === '' ? int : `${int}.${frac}`;
  return m[1] === '-' && /[1-9]/.test(body) ? `-${body}` : body;
}

/**
 * A PAX time (`[-]digits[.digits]`) as the header fields that carry it: `mtime` is the
 * number, and `mtimeText` the exact text (leading and trailing zeros removed) when the
 * encoder would not reproduce it from the number alone. Undefined when the text is not a
 * PAX time or is beyond ±2^53 seconds.
 */
export function parsePaxTime(text: string): { readonly mtime: number; readonly mtimeText?: string } | undefined {
  if (!/^-?\d+(\.\d*)?$/.test(text)) return undefined;
  const canonical = canonicalDecimal(text);
  let mtime = Number(canonical);
  if (!(Math.abs(mtime) <= Number.MAX_SAFE_INTEGER)) return undefined;
  if (mtime === 0) mtime = 0; // no negative zero
  return mtimeNeedsPax(mtime) && formatPaxTime(mtime) !== canonical ? { mtime, mtimeText: canonical } : { mtime };
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
  S: 'file',
};

const TYPE_NAMES: Record<string, string> = {
  V: 'GNU volume header',
  M: 'GNU multi-volume continuation',
  N: 'old GNU long name',
  D: 'GNU dump directory',
  X: 'Solaris extended header',
  A: 'Solaris ACL',
  E: 'Solaris extended attribute',
  I: 'inode metadata',
};

/** The entries of a tar stream, in archive order. Stopping early returns the input. */
export async function* readTar(input: AsyncIterable<Uint8Array>, options: ReadTarOptions = {}): AsyncGenerator<TarEntry, void, undefined> {
  const maxExtended = options.maxExtendedHeaderBytes ?? DEFAULT_MAX_EXTENDED;
  const lenient = options.lenient === true;
  const it = input[Symbol.asyncIterator]();
  const src = new ByteSource(it);
  /** Records of `g` headers seen so far (empty values removed). */
  const global = new Map<string, Uint8Array>();
  let globalBytes = 0;
  let globalSparseKeys = 0; // GNU.sparse.* keys among them
  try {
    for (;;) {
      const entryOffset = src.offset;
      const local = new Map<string, Uint8Array>();
      let longName: Uint8Array | undefined;
      let longLink: Uint8Array | undefined;
      const globalRecords: [string, Uint8Array][] = [];
      const raw: Uint8Array[] = [];
      let extendedBytes = 0; // all of this entry's extended headers together
      let block: Uint8Array;
      let blockOffset: number;
      // Extended headers, then the entry's own header.
      for (;;) {
        blockOffset = src.offset;
        if (!(await src.fill(BLOCK))) {
          if (src.buffered === 0 && raw.length === 0 && local.size === 0) {
            if (blockOffset === 0 || lenient) return; // an empty input: no entries, nothing cut off
            // GNU tar and Python accept this silently; a cut end marker would be refused, so this is too.
            throw new TarReadError('truncated archive (the input ends without the end-of-archive marker)', blockOffset);
          }
          throw new TarReadError('truncated archive (the input ends inside a header)', blockOffset);
        }
        block = src.take(BLOCK);
        if (isZeroBlock(block)) {
          if (raw.length > 0) throw new TarReadError('the archive ends after an extended header with no entry', blockOffset);
          // End of archive: two zero blocks; anything after them is ignored.
          const second = src.offset;
          const ended = !(await src.fill(BLOCK));
          if (ended && lenient) return;
          if (ended || !isZeroBlock(src.take(BLOCK))) {
            throw new TarReadError('truncated archive (the end-of-archive marker is cut short: one zero block, not two)', second);
          }
          return;
        }
        if (!checksumOk(block, blockOffset)) throw new TarReadError('invalid tar header checksum (not a tar, or corrupt)', blockOffset);
        const flag = String.fromCharCode(block[USTAR_FIELDS.typeflag.offset] as number);
        if (flag !== 'x' && flag !== 'g' && flag !== 'L' && flag !== 'K') break;
        const size = parseNumber(block, USTAR_FIELDS.size, 'size', blockOffset);
        if (size > maxExtended) throw new TarReadError(`extended header of ${size} bytes is over the ${maxExtended}-byte limit`, blockOffset);
        extendedBytes += size;
        if (extendedBytes > maxExtended) throw new TarReadError(`extended headers of ${extendedBytes} bytes for one entry are over the ${maxExtended}-byte limit`, blockOffset);
        if (!(await src.fill(size + paddingFor(size)))) throw new TarReadError('truncated archive (the input ends inside an extended header)', blockOffset);
        const body = src.take(size);
        const pad = src.take(paddingFor(size));
        if (flag === 'g') {
          for (const [k, v] of parsePaxRecords(body, blockOffset)) {
            const old = global.get(k);
            const sparseKey = k.startsWith('GNU.sparse.') ? 1 : 0;
            if (old !== undefined) {
              globalBytes -= k.length + old.length;
              globalSparseKeys -= sparseKey;
            }
            if (v.length === 0) global.delete(k);
            else {
              global.set(k, v);
              globalBytes += k.length + v.length;
              globalSparseKeys += sparseKey;
            }
            globalRecords.push([k, v]);
          }
          if (globalBytes > maxExtended) throw new TarReadError(`global PAX records of ${globalBytes} bytes are over the ${maxExtended}-byte limit`, blockOffset);
          continue; // applied to every following entry below, and reported with the next one
        }
        raw.push(block, body, pad);
        if (flag === 'x') {
          for (const [k, v] of parsePaxRecords(body, blockOffset)) local.set(k, v);
        } else if (flag === 'L') {
          longName = cBytes(body);
        } else {
          longLink = cBytes(body);
        }
      }

      const flag = String.fromCharCode(block[USTAR_FIELDS.typeflag.offset] as number);
      let type = TYPES[flag];
      const unknownType = type === undefined && lenient ? flag : undefined;
      if (unknownType !== undefined) type = 'file';
      if (type === undefined) {
        const known = TYPE_NAMES[flag];
        throw new TarReadError(`unsupported tar entry type ${JSON.stringify(flag)}${known ? ` (${known})` : ''}`, blockOffset);
      }
      const magic = latin1.decode(fieldBytes(block, USTAR_FIELDS.magic));
      const isPosix = magic === 'ustar\0';
      const isGnu = magic === 'ustar ';
      raw.push(block);

      // Records in effect: global ones, overridden by local ones (looked up, not copied).
      const inEffect = (key: string): Uint8Array | undefined => (local.has(key) ? local.get(key) : global.get(key));
      const fieldRecord = (key: string): Uint8Array | undefined => {
        const v = inEffect(key);
        return v === undefined || v.length === 0 ? undefined : v; // an empty value unsets a field record
      };
      const paxNumber = (key: string, fallback: () => number): number => {
        const v = fieldRecord(key);
        if (v === undefined) return fallback();
        const text = latin1.decode(v);
        if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new TarReadError(`bad PAX ${key} ${JSON.stringify(text)}`, blockOffset);
        return Number(text);
      };

      // Name: PAX path, else GNU long name, else prefix/name.
      let name: string;
      const paxPath = fieldRecord('path');
      if (paxPath !== undefined) name = decodeText(paxPath, 'the entry name', blockOffset, lenient);
      else if (longName !== undefined) name = decodeText(longName, 'the entry name', blockOffset, lenient);
      else {
        const base = decodeText(cBytes(fieldBytes(block, USTAR_FIELDS.name)), 'the entry name', blockOffset, lenient);
        const prefix = isPosix ? decodeText(cBytes(fieldBytes(block, USTAR_FIELDS.prefix)), 'the entry name prefix', blockOffset, lenient) : '';
        name = prefix === '' ? base : `${prefix}/${base}`;
      }
      if (flag === '\0' && name.endsWith('/')) type = 'directory';

      const hasData = type === 'file';
      const fieldSize = parseNumber(block, USTAR_FIELDS.size, 'size', blockOffset);
      const storedSize = hasData ? paxNumber('size', () => fieldSize) : 0;
      if (storedSize < 0) throw new TarReadError('negative size', blockOffset);

      const mode = parseNumber(block, USTAR_FIELDS.mode, 'mode', blockOffset);
      if (mode < 0) throw new TarReadError('negative mode', blockOffset);
      const uid = paxNumber('uid', () => parseNumber(block, USTAR_FIELDS.uid, 'uid', blockOffset));
      const gid = paxNumber('gid', () => parseNumber(block, USTAR_FIELDS.gid, 'gid', blockOffset));
      if (uid < 0 || gid < 0) throw new TarReadError('negative uid or gid', blockOffset);

      let mtime: number;
      let mtimeText: string | undefined;
      const paxMtime = fieldRecord('mtime');
      if (paxMtime !== undefined) {
        const text = latin1.decode(paxMtime);
        const t = parsePaxTime(text);
        if (!t) throw new TarReadError(`bad PAX mtime ${JSON.stringify(text)}`, blockOffset);
        mtime = t.mtime;
        mtimeText = t.mtimeText;
      } else {
        mtime = parseNumber(block, USTAR_FIELDS.mtime, 'mtime', blockOffset);
      }

      const textField = (key: 'uname' | 'gname', f: UstarField): string => {
        const v = fieldRecord(key);
        return decodeText(v ?? cBytes(fieldBytes(block, f)), `the ${key}`, blockOffset, lenient);
      };
      const uname = textField('uname', USTAR_FIELDS.uname);
      const gname = textField('gname', USTAR_FIELDS.gname);

      let linkname: string | undefined;
      if (type === 'link' || type === 'symlink') {
        const paxLink = fieldRecord('linkpath');
        linkname = decodeText(paxLink ?? longLink ?? cBytes(fieldBytes(block, USTAR_FIELDS.linkname)), 'the link target', blockOffset, lenient);
      }
      const isDevice = type === 'character-device' || type === 'block-device';
      const devmajor = isDevice ? parseNumber(block, USTAR_FIELDS.devmajor, 'devmajor', blockOffset) : undefined;
      const devminor = isDevice ? parseNumber(block, USTAR_FIELDS.devminor, 'devminor', blockOffset) : undefined;

      // Extra records: everything that is not a field or encoding record.
      const extra: Record<string, PaxValue> = {};
      let sparseRecords = globalSparseKeys > 0;
      const extraSource = options.globalExtrasApart ? local : new Map([...global, ...local]);
      for (const [k, v] of extraSource) {
        if (k.startsWith('GNU.sparse.')) sparseRecords = true;
        if (k === 'path' || k === 'linkpath' || k === 'size' || k === 'uid' || k === 'gid' || k === 'uname' || k === 'gname' || k === 'mtime') continue;
        if (k === 'hdrcharset' || k.startsWith('GNU.sparse.')) continue;
        extra[k] = v;
      }
      if (isGnu) {
        // Old GNU headers may carry access and change times where ustar has its prefix.
        for (const [key, f] of [['atime', GNU_FIELDS.atime], ['ctime', GNU_FIELDS.ctime]] as const) {
          const t = parseNumber(block, f, key, blockOffset);
          if (t !== 0 && !Object.hasOwn(extra, key) && inEffect(key) === undefined) extra[key] = new TextEncoder().encode(String(t));
        }
      }

      // GNU sparse entries: recognised, not expanded.
      let sparse: SparseStorage | undefined;
      let realName = name;
      let realSize = storedSize;
      if (flag === 'S') {
        // Old GNU sparse: more sparse map blocks may follow the header.
        let extended = block[GNU_FIELDS.isExtended.offset] === 1;
        while (extended) {
          const at = src.offset;
          if (!(await src.fill(BLOCK))) throw new TarReadError('truncated archive (the input ends inside a sparse map)', at);
          const ext = src.take(BLOCK);
          raw.push(ext);
          extended = ext[GNU_FIELDS.extensionIsExtended.offset] === 1;
        }
        realSize = parseNumber(block, GNU_FIELDS.realSize, 'sparse real size', blockOffset);
        sparse = { format: 'old-gnu', rawHeader: concat(raw) };
      } else if (sparseRecords) {
        if (global.size > 0) throw new TarReadError('GNU sparse entries under a global PAX header are not supported', blockOffset);
        const sparseName = inEffect('GNU.sparse.name');
        if (sparseName !== undefined) realName = decodeText(sparseName, 'the sparse file name', blockOffset, lenient);
        const size = inEffect('GNU.sparse.realsize') ?? inEffect('GNU.sparse.size');
        if (size !== undefined) {
          const text = latin1.decode(size);
          if (!/^\d+$/.test(text)) throw new TarReadError(`bad GNU.sparse size ${JSON.stringify(text)}`, blockOffset);
          realSize = Number(text);
        }
        sparse = { format: 'pax', rawHeader: concat(raw) };
      }

      const header: TarHeader = {
        name: realName,
        type,
        size: realSize,
        mode,
        uid,
        gid,
        mtime,
        ...(mtimeText !== undefined ? { mtimeText } : {}),
        ...(linkname !== undefined ? { linkname } : {}),
        uname,
        gname,
        ...(devmajor !== undefined ? { devmajor, devminor } : {}),
        ...(Object.keys(extra).length > 0 ? { pax: extra } : {}),
      };

      // The entry's data, streamed from the shared source.
      const state = { remaining: storedSize, current: true };
      const data: AsyncIterable<Uint8Array> = {
        [Symbol.asyncIterator]: async function* () {
          if (!state.current) throw new InternalError('tar entry data read after the next entry was requested');
          while (state.remaining > 0) {
            if (!(await src.fill(1))) throw new TarReadError(`truncated archive (the input ends inside the data of ${JSON.stringify(name)})`, src.offset);
            if (!state.current) throw new InternalError('tar entry data read after the next entry was requested');
            const chunk = src.takeUpTo(state.remaining);
            state.remaining -= chunk.length;
            yield chunk;
          }
        },
      };
      yield {
        header,
        offset: entryOffset,
        storedSize,
        ...(sparse ? { sparse } : {}),
        ...(globalRecords.length > 0 ? { globalRecords } : {}),
        data,
        ...(unknownType !== undefined ? { unknownType } : {}),
      };
      state.current = false;
      const at = src.offset;
      if (!(await src.skip(state.remaining + paddingFor(storedSize)))) {
        throw new TarReadError(`truncated archive (the input ends inside the data of ${JSON.stringify(name)})`, at);
      }
      state.remaining = 0;
    }
  } finally {
    await it.return?.();
  }
}

