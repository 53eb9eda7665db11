/**
 * A deterministic tar header encoder: USTAR when an entry fits, a PAX extended header
 * in front of it when it does not. Every field is set explicitly; nothing defaults from
 * the clock. Used for the archives occystrap writes itself (docker-save output).
 *
 * @module
 */

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';

export interface TarHeader {
  readonly name: string;
  readonly type: TarEntryType;
  readonly size: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Seconds since the epoch; may be fractional or negative (then PAX carries it). */
  readonly mtime: number;
  readonly linkname?: string;
  readonly uname?: string;
  readonly gname?: string;
  readonly devmajor?: number;
  readonly devminor?: number;
  /** Extra PAX records kept verbatim (e.g. `SCHILY.xattr.security.capability`). */
  readonly pax?: Readonly<Record<string, string>>;
}

export const BLOCK = 512;
const TYPEFLAG: Record<TarEntryType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  'character-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
};

const encoder = new TextEncoder();
const MAX_OCTAL_7 = 0o7777777; // 7 digits + NUL
const MAX_OCTAL_11 = 0o77777777777;

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

function writeString(block: Uint8Array, offset: number, length: number, value: string): void {
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
  const bytes = encoder.encode(path).length;
  if (bytes <= 100) return { prefix: '', name: path };
  if (bytes > 256) return undefined;
  for (let i = path.length - 1; i > 0; i--) {
    if (path[i] !== '/') continue;
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (encoder.encode(prefix).length <= 155 && encoder.encode(name).length <= 100 && name.length > 0) return { prefix, name };
  }
  return undefined;
}

function paxRecord(key: string, value: string): Uint8Array {
  // "%d %s=%s\n" where the length counts itself.
  const body = ` ${key}=${value}\n`;
  const bodyLen = encoder.encode(body).length;
  let len = bodyLen + 1;
  while (String(len).length + bodyLen !== len) len = String(len).length + bodyLen;
  return encoder.encode(`${len}${body}`);
}

/** The PAX records an entry needs beyond what USTAR can hold, in a fixed order. */
export function paxRecordsFor(h: TarHeader): [string, string][] {
  const records: [string, string][] = [];
  const split = splitUstarPath(h.name);
  if (!split || !isAscii(h.name)) records.push(['path', h.name]);
  if (h.linkname !== undefined && (encoder.encode(h.linkname).length > 100 || !isAscii(h.linkname))) records.push(['linkpath', h.linkname]);
  if (h.size > MAX_OCTAL_11) records.push(['size', String(h.size)]);
  if (h.uid > MAX_OCTAL_7) records.push(['uid', String(h.uid)]);
  if (h.gid > MAX_OCTAL_7) records.push(['gid', String(h.gid)]);
  if (!Number.isInteger(h.mtime) || h.mtime < 0 || h.mtime > MAX_OCTAL_11) records.push(['mtime', formatPaxTime(h.mtime)]);
  if (h.uname !== undefined && (encoder.encode(h.uname).length > 32 || !isAscii(h.uname))) records.push(['uname', h.uname]);
  if (h.gname !== undefined && (encoder.encode(h.gname).length > 32 || !isAscii(h.gname))) records.push(['gname', h.gname]);
  const own = new Set(records.map(([k]) => k));
  for (const key of Object.keys(h.pax ?? {}).sort()) {
    if (!own.has(key)) records.push([key, (h.pax as Record<string, string>)[key] as string]);
  }
  return records;
}

function formatPaxTime(t: number): string {
  if (Number.isInteger(t)) return String(t);
  const s = t.toFixed(9).replace(/0+$/, '');
  return s.endsWith('.') ? s.slice(0, -1) : s;
}

function ustarBlock(h: TarHeader, name: string, prefix: string, typeflag: string, size: number): Uint8Array {
  const block = new Uint8Array(BLOCK);
  writeString(block, 0, 100, name);
  writeOctal(block, 100, 8, h.mode & 0o7777777);
  writeOctal(block, 108, 8, Math.min(h.uid, MAX_OCTAL_7));
  writeOctal(block, 116, 8, Math.min(h.gid, MAX_OCTAL_7));
  writeOctal(block, 124, 12, Math.min(size, MAX_OCTAL_11));
  writeOctal(block, 136, 12, Math.min(Math.max(Math.floor(h.mtime), 0), MAX_OCTAL_11));
  block.fill(0x20, 148, 156); // checksum placeholder: spaces
  block[156] = typeflag.charCodeAt(0);
  if (h.linkname !== undefined && isAscii(h.linkname)) writeString(block, 157, 100, h.linkname);
  writeString(block, 257, 6, 'ustar');
  writeString(block, 263, 2, '00');
  if (h.uname !== undefined && isAscii(h.uname)) writeString(block, 265, 32, h.uname);
  if (h.gname !== undefined && isAscii(h.gname)) writeString(block, 297, 32, h.gname);
  const isDevice = h.type === 'character-device' || h.type === 'block-device';
  if (isDevice) {
    writeOctal(block, 329, 8, h.devmajor ?? 0);
    writeOctal(block, 337, 8, h.devminor ?? 0);
  }
  writeString(block, 345, 155, prefix);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i] as number;
  writeOctal(block, 148, 7, sum);
  block[155] = 0x20;
  return block;
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

/** The end-of-archive marker: two zero blocks. */
export const END_OF_ARCHIVE = new Uint8Array(BLOCK * 2);

function concat(parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
