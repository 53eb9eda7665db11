/**
 * The USTAR header layout and the PAX keys that stand in for its fields: one description
 * shared by the encoder (`header.ts`), the reader (`reader.ts`) and the property tests'
 * arbitraries, so the limits they test are the limits the code uses.
 *
 * @module
 */

/** A fixed-width field of the 512-byte USTAR header block. */
export interface UstarField {
  readonly offset: number;
  readonly length: number;
  /** The PAX record that carries the value when the field cannot. */
  readonly pax?: string;
}

/** POSIX.1-1988 (USTAR) header fields, by offset (`prefix` is USTAR; old GNU headers keep times there). */
export const USTAR_FIELDS = {
  name: { offset: 0, length: 100, pax: 'path' },
  mode: { offset: 100, length: 8 },
  uid: { offset: 108, length: 8, pax: 'uid' },
  gid: { offset: 116, length: 8, pax: 'gid' },
  size: { offset: 124, length: 12, pax: 'size' },
  mtime: { offset: 136, length: 12, pax: 'mtime' },
  chksum: { offset: 148, length: 8 },
  typeflag: { offset: 156, length: 1 },
  linkname: { offset: 157, length: 100, pax: 'linkpath' },
  magic: { offset: 257, length: 6 },
  version: { offset: 263, length: 2 },
  uname: { offset: 265, length: 32, pax: 'uname' },
  gname: { offset: 297, length: 32, pax: 'gname' },
  devmajor: { offset: 329, length: 8 },
  devminor: { offset: 337, length: 8 },
  prefix: { offset: 345, length: 155 },
} as const satisfies Record<string, UstarField>;

/** Old GNU header fields that overlap USTAR's `prefix`. */
export const GNU_FIELDS = {
  atime: { offset: 345, length: 12 },
  ctime: { offset: 357, length: 12 },
  /** Old GNU sparse: 1 when sparse extension blocks follow. */
  isExtended: { offset: 482, length: 1 },
  /** Old GNU sparse: the file's real (expanded) size. */
  realSize: { offset: 483, length: 12 },
  /** In a sparse extension block: 1 when another extension block follows. */
  extensionIsExtended: { offset: 504, length: 1 },
} as const satisfies Record<string, UstarField>;

/** The largest value an octal field of `length` bytes holds (`length - 1` digits, then NUL). */
export function octalMax(field: UstarField): number {
  return 8 ** (field.length - 1) - 1;
}

/** 2 097 151: the largest uid, gid, mode or device number USTAR holds. */
export const MAX_OCTAL_7 = octalMax(USTAR_FIELDS.uid);
/** 8 589 934 591: the largest size or mtime USTAR holds (8 GiB - 1). */
export const MAX_OCTAL_11 = octalMax(USTAR_FIELDS.size);

/**
 * PAX keys that duplicate header fields. A writer regenerates them from the fields (and
 * only when a field cannot hold its value), so they are never carried as extra records.
 */
export const FIELD_PAX_KEYS: readonly string[] = ['path', 'linkpath', 'size', 'uid', 'gid', 'uname', 'gname', 'mtime'];

/**
 * PAX keys about the encoding of a header rather than the file: `hdrcharset` (the writer
 * always writes UTF-8) and the `GNU.sparse.*` family (the writer never writes sparse
 * entries). They are never carried as extra records.
 */
export function isEncodingPaxKey(key: string): boolean {
  return key === 'hdrcharset' || key.startsWith('GNU.sparse.');
}

/** True for a key that is regenerated or dropped by every rewrite (never an extra record). */
export function isReservedPaxKey(key: string): boolean {
  return FIELD_PAX_KEYS.includes(key) || isEncodingPaxKey(key);
}

/** The tar type flags occystrap reads and writes, and the byte each is written as. */
export const TYPEFLAGS = {
  file: '0',
  link: '1',
  symlink: '2',
  'character-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
} as const;
