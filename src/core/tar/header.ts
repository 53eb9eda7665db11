/**
 * A deterministic tar header encoder: USTAR when an entry fits, a PAX extended header
 * in front of it when it does not. Every field is set explicitly; nothing defaults from
 * the clock. Used for the archives occystrap writes itself (docker-save output) and for
 * rewritten layers (`rewrite.ts`).
 *
 * The field layout and limits come from `fields.ts`, shared with the reader.
 *
 * @module
 */
import { MAX_OCTAL_11, MAX_OCTAL_7, TYPEFLAGS, USTAR_FIELDS, isReservedPaxKey } from './fields.js';
import { concatBytes as concat } from '../bytes.js';
import { InternalError } from '../errors.js';

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';

/** The value of a PAX record: text (written as UTF-8) or raw bytes (binary xattrs). */
export type PaxValue = string | Uint8Array;

export interface TarHeader {
  readonly name: string;
  readonly type: TarEntryType;
  readonly size: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Seconds since the epoch; may be fractional or negative (then PAX carries it). */
  readonly mtime: number;
  /**
   * The exact decimal text of a PAX `mtime` (e.g. `1700000000.123456789`, more digits
   * than a double holds). When PAX carries the mtime and `Number(mtimeText) === mtime`,
   * this text is written instead of the formatted number; otherwise it is ignored.
   */
  readonly mtimeText?: string;
  readonly linkname?: string;
  readonly uname?: string;
  readonly gname?: string;
  readonly devmajor?: number;
  readonly devminor?: number;
  /**
   * Extra PAX records kept verbatim (e.g. `SCHILY.xattr.security.capability`, whose value
   * is binary: give it as bytes). Keys that duplicate header fields (`path`, `linkpath`,
   * `size`, `uid`, `gid`, `uname`, `gname`, `mtime`) and encoding keys (`hdrcharset`,
   * `GNU.sparse.*`) are never written from here: the fields are the truth.
   */
  readonly pax?: Readonly<Record<string, PaxValue>>;
}

export const BLOCK = 512;
const TYPEFLAG: Record<TarEntryType, string> = TYPEFLAGS;

const encoder = new TextEncoder();

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** UTF-8 length of a string, without encoding it. */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function writeString(block: Uint8Array, offset: number, length: number, value: string): void {
  if (isAscii(value)) {
    const n = Math.min(length, value.length);
    for (let i = 0; i < n; i++) block[offset + i] = value.charCodeAt(i);
    return;
  }
  const bytes = encoder.encode(value);
  block.set(bytes.subarray(0, length), offset);
}

function writeOctal(block: Uint8Array, offset: number, length: number, value: number): void {
  // length-1 digits, zero padded, then NUL (the form GNU tar and Python's tarfile write).
  const digits = value.toString(8).padStart(length - 1, '0');
  writeString(block, offset, length - 1, digits);
  block[offset + length - 1] = 0;
}

/** Split a path into USTAR prefix (≤155) and name (≤100) at a slash, or undefined. */
export function splitUstarPath(path: string): { prefix: string; name: string } | undefined {
  const bytes = utf8Length(path);
  if (bytes <= USTAR_FIELDS.name.length) return { prefix: '', name: path };
  if (bytes > USTAR_FIELDS.prefix.length + 1 + USTAR_FIELDS.name.length) return undefined;
  for (let i = path.length - 1; i > 0; i--) {
    if (path[i] !== '/') continue;
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (utf8Length(prefix) <= USTAR_FIELDS.prefix.length && utf8Length(name) <= USTAR_FIELDS.name.length && name.length > 0) return { prefix, name };
  }
  return undefined;
}

function paxRecord(key: string, value: PaxValue): Uint8Array {
  // "%d %s=%s\n" where the length counts itself (in bytes).
  const bodyLen = 1 + utf8Length(key) + 1 + (typeof value === 'string' ? utf8Length(value) : value.length) + 1;
  let len = bodyLen + 1;
  while (String(len).length + bodyLen !== len) len = String(len).length + bodyLen;
  if (typeof value === 'string') return encoder.encode(`${len} ${key}=${value}\n`);
  return concat([encoder.encode(`${len} ${key}=`), value, new Uint8Array([0x0a])]);
}

/** True when the mtime needs a PAX record: fractional, negative, or beyond 11 octal digits. */
export function mtimeNeedsPax(mtime: number): boolean {
  return !Number.isInteger(mtime) || mtime < 0 || mtime > MAX_OCTAL_11;
}

/** The PAX records an entry needs beyond what USTAR can hold, in a fixed order. */
export function paxRecordsFor(h: TarHeader): [string, PaxValue][] {
  validate(h);
  const records: [string, PaxValue][] = [];
  const split = splitUstarPath(h.name);
  if (!split || !isAscii(h.name)) records.push(['path', h.name]);
  if (h.linkname !== undefined && (h.linkname.length > USTAR_FIELDS.linkname.length || !isAscii(h.linkname))) records.push(['linkpath', h.linkname]);
  if (h.size > MAX_OCTAL_11) records.push(['size', String(h.size)]);
  if (h.uid > MAX_OCTAL_7) records.push(['uid', String(h.uid)]);
  if (h.gid > MAX_OCTAL_7) records.push(['gid', String(h.gid)]);
  if (mtimeNeedsPax(h.mtime)) records.push(['mtime', mtimeRecordText(h)]);
  if (h.uname !== undefined && (h.uname.length > USTAR_FIELDS.uname.length || !isAscii(h.uname))) records.push(['uname', h.uname]);
  if (h.gname !== undefined && (h.gname.length > USTAR_FIELDS.gname.length || !isAscii(h.gname))) records.push(['gname', h.gname]);
  const pax = h.pax ?? {};
  for (const key of Object.keys(pax).sort()) {
    if (!isReservedPaxKey(key)) records.push([key, pax[key] as PaxValue]);
  }
  return records;
}

/** `mtimeText` when it is well-formed and denotes `mtime`, else the formatted number. */
function mtimeRecordText(h: TarHeader): string {
  const text = h.mtimeText;
  if (text !== undefined && /^-?\d+(\.\d+)?$/.test(text) && Number(text) === h.mtime) return text;
  return formatPaxTime(h.mtime);
}

/** A PAX time: integer seconds as is, else up to 9 decimals with trailing zeros removed. */
export function formatPaxTime(t: number): string {
  if (Number.isInteger(t)) return String(t);
  const s = t.toFixed(9).replace(/0+$/, '');
  return s.endsWith('.') ? s.slice(0, -1) : s;
}

const isCount = (n: number) => Number.isSafeInteger(n) && n >= 0;

/** Refuse values the format cannot carry (rather than writing a corrupt field). */
function validate(h: TarHeader): void {
  const bad = (what: string) => {
    throw new InternalError(`tar header for ${JSON.stringify(h.name)}: ${what}`);
  };
  if (!Object.hasOwn(TYPEFLAG, h.type)) bad(`unknown type ${JSON.stringify(h.type)}`);
  if (h.name.includes('\0')) bad('the name contains a NUL character');
  if (h.linkname?.includes('\0')) bad('the link name contains a NUL character');
  if (!isCount(h.size)) bad(`size ${h.size} is not a non-negative integer`);
  if (!isCount(h.uid)) bad(`uid ${h.uid} is not a non-negative integer`);
  if (!isCount(h.gid)) bad(`gid ${h.gid} is not a non-negative integer`);
  if (!isCount(h.mode)) bad(`mode ${h.mode} is not a non-negative integer`);
  if (!Number.isFinite(h.mtime)) bad(`mtime ${h.mtime} is not a finite number`);
  for (const [what, n] of [['devmajor', h.devmajor], ['devminor', h.devminor]] as const) {
    if (n !== undefined && (!isCount(n) || n > MAX_OCTAL_7)) bad(`${what} ${n} does not fit 7 octal digits`);
  }
  for (const key of Object.keys(h.pax ?? {})) {
    if (key === '' || key.includes('=') || key.includes('\n') || key.includes('\0')) bad(`PAX key ${JSON.stringify(key)} is not writable`);
  }
}

function ustarBlock(h: TarHeader, name: string, prefix: string, typeflag: string, size: number): Uint8Array {
  const block = new Uint8Array(BLOCK);
  const F = USTAR_FIELDS;
  writeString(block, F.name.offset, F.name.length, name);
  writeOctal(block, F.mode.offset, F.mode.length, h.mode & MAX_OCTAL_7);
  writeOctal(block, F.uid.offset, F.uid.length, Math.min(h.uid, MAX_OCTAL_7));
  writeOctal(block, F.gid.offset, F.gid.length, Math.min(h.gid, MAX_OCTAL_7));
  writeOctal(block, F.size.offset, F.size.length, Math.min(size, MAX_OCTAL_11));
  writeOctal(block, F.mtime.offset, F.mtime.length, Math.min(Math.max(Math.floor(h.mtime), 0), MAX_OCTAL_11));
  block.fill(0x20, F.chksum.offset, F.chksum.offset + F.chksum.length); // checksum placeholder: spaces
  block[F.typeflag.offset] = typeflag.charCodeAt(0);
  if (h.linkname !== undefined && isAscii(h.linkname)) writeString(block, F.linkname.offset, F.linkname.length, h.linkname);
  writeString(block, F.magic.offset, F.magic.length, 'ustar');
  writeString(block, F.version.offset, F.version.length, '00');
  if (h.uname !== undefined && isAscii(h.uname)) writeString(block, F.uname.offset, F.uname.length, h.uname);
  if (h.gname !== undefined && isAscii(h.gname)) writeString(block, F.gname.offset, F.gname.length, h.gname);
  const isDevice = h.type === 'character-device' || h.type === 'block-device';
  if (isDevice) {
    writeOctal(block, F.devmajor.offset, F.devmajor.length, h.devmajor ?? 0);
    writeOctal(block, F.devminor.offset, F.devminor.length, h.devminor ?? 0);
  }
  writeString(block, F.prefix.offset, F.prefix.length, prefix);
  writeChecksum(block);
  return block;
}

/** The header checksum over the block with its checksum field read as spaces. */
function writeChecksum(block: Uint8Array): void {
  const F = USTAR_FIELDS;
  block.fill(0x20, F.chksum.offset, F.chksum.offset + F.chksum.length);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i] as number;
  // Six octal digits, NUL, space: the form GNU tar and Python's tarfile write.
  writeOctal(block, F.chksum.offset, F.chksum.length - 1, sum);
  block[F.chksum.offset + F.chksum.length - 1] = 0x20;
}

/** Bytes of zero padding after `size` bytes of entry data. */
export function paddingFor(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}

/**
 * Encode the header block(s) for one entry: a PAX `x` entry (header + records + padding)
 * when needed, then the USTAR header. The entry's data and its padding follow.
 */
export function encodeHeader(h: TarHeader): Uint8Array {
  const records = paxRecordsFor(h);
  const split = splitUstarPath(h.name);
  const fallbackName = (() => {
    // A USTAR-safe stand-in name when PAX carries the real one: last ≤100 ASCII bytes.
    const ascii = h.name.replace(/[^\x20-\x7e]/g, '_');
    return ascii.length > 100 ? ascii.slice(ascii.length - 100) : ascii;
  })();
  const main = ustarBlock(h, split && isAscii(h.name) ? split.name : fallbackName, split && isAscii(h.name) ? split.prefix : '', TYPEFLAG[h.type], h.size);
  if (records.length === 0) return main;
  const body = concat(records.map(([k, v]) => paxRecord(k, v)));
  const paxName = `PaxHeaders/${fallbackName}`.slice(0, 100);
  const paxHeader = ustarBlock({ ...h, type: 'file', uname: undefined, gname: undefined, linkname: undefined, mode: 0o644, uid: 0, gid: 0 }, paxName, '', 'x', body.length);
  return concat([paxHeader, body, new Uint8Array(paddingFor(body.length)), main]);
}

/**
 * One 512-byte header block for an entry whose size is not known until its data is
 * written (a header patched in place): sizes beyond 11 octal digits (8 GiB) use GNU
 * base-256 in the size field instead of a PAX record, so the header never grows. Every
 * other field must fit USTAR; otherwise this throws.
 */
export function encodeOneBlockHeader(h: TarHeader): Uint8Array {
  const records = paxRecordsFor({ ...h, size: 0 });
  const split = splitUstarPath(h.name);
  if (records.length > 0 || !split || !isAscii(h.name)) throw new InternalError(`tar header for ${JSON.stringify(h.name)} needs PAX records; it cannot be one block`);
  const block = ustarBlock(h, split.name, split.prefix, TYPEFLAG[h.type], h.size);
  if (h.size <= MAX_OCTAL_11) return block;
  const F = USTAR_FIELDS;
  block[F.size.offset] = 0x80;
  let rest = h.size;
  for (let i = F.size.offset + F.size.length - 1; i > F.size.offset; i--) {
    block[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  writeChecksum(block);
  return block;
}

/**
 * A global PAX header (`g`: header block, records in the order given, padding). Its own
 * header is fixed (name `pax_global_header`, mode 0644, owner 0, mtime 0), so it is the
 * same bytes wherever and whenever it is written.
 */
export function encodeGlobalHeader(records: readonly (readonly [string, PaxValue])[]): Uint8Array {
  const body = concat(records.map(([k, v]) => paxRecord(k, v)));
  const fixed: TarHeader = { name: 'pax_global_header', type: 'file', size: body.length, mode: 0o644, uid: 0, gid: 0, mtime: 0 };
  return concat([ustarBlock(fixed, fixed.name, '', 'g', body.length), body, new Uint8Array(paddingFor(body.length))]);
}

/**
 * The end-of-archive marker: two zero blocks (1024 bytes), with no padding to a 10240-byte
 * record. An archive of no entries is exactly this, whose sha256 is the well-known empty
 * layer diff_id (`EMPTY_LAYER_DIFF_ID`).
 */
export const END_OF_ARCHIVE = new Uint8Array(BLOCK * 2);

