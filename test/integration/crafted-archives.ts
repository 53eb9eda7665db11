// Hostile docker-save archives built byte by byte (a raw USTAR header encoder, so
// checksum, size and type fields can be broken at will). Each archive is a small valid
// image (manifest.json first, then the config, then its layers) with one defect in the
// last layer's entry. Two shapes: `first` (one layer: the defect comes right after the
// config, while the output is still opening its file) and `second` (a 256 KiB layer
// first, so the output is writing when the input fails).
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';

export interface RawEntry {
  readonly name: string;
  /** USTAR typeflag: '0' file, '1' hard link, '2' symlink, '5' directory, 'x' PAX. */
  readonly type?: string;
  readonly data?: Buffer;
  readonly linkname?: string;
  /** The 12-byte size field exactly as written (default: octal of data length). */
  readonly sizeField?: string;
  /** Break the header checksum. */
  readonly badChecksum?: boolean;
}

function field(buf: Buffer, offset: number, length: number, value: string): void {
  buf.write(value.slice(0, length), offset, 'latin1');
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

/** One 512-byte USTAR header. */
export function rawHeader(e: RawEntry): Buffer {
  const h = Buffer.alloc(512);
  const size = e.data?.length ?? 0;
  field(h, 0, 100, e.name);
  field(h, 100, 8, octal(e.type === '5' ? 0o755 : 0o644, 8));
  field(h, 108, 8, octal(0, 8));
  field(h, 116, 8, octal(0, 8));
  field(h, 124, 12, e.sizeField ?? octal(size, 12));
  field(h, 136, 12, octal(0, 12));
  field(h, 148, 8, '        ');
  field(h, 156, 1, e.type ?? '0');
  if (e.linkname) field(h, 157, 100, e.linkname);
  field(h, 257, 6, 'ustar\0');
  field(h, 263, 2, '00');
  let sum = 0;
  for (const b of h) sum += b;
  if (e.badChecksum) sum += 1;
  field(h, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

function pad(data: Buffer): Buffer {
  const rest = data.length % 512;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(512 - rest)]);
}

/** A tar stream of the entries followed by the end-of-archive marker. */
export function rawTar(entries: readonly RawEntry[], end = true): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(rawHeader(e));
    if (e.data && e.data.length > 0) parts.push(pad(e.data));
  }
  if (end) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A PAX extended header entry carrying `records` (e.g. { size: 'NaN' }). */
export function paxEntry(records: Record<string, string>): RawEntry {
  const lines = Object.entries(records).map(([k, v]) => {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (`${len}${body}`.length !== len) len = `${len}${body}`.length;
    return `${len}${body}`;
  });
  return { name: 'PaxHeader', type: 'x', data: Buffer.from(lines.join(''), 'utf8') };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A layer tar with one file of `bytes` deterministic bytes. */
function layerTar(name: string, bytes: number, seed: number): Buffer {
  const data = Buffer.alloc(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    data[i] = x & 0xff;
  }
  return rawTar([{ name, data }]);
}

/** `manifest.json` (first) and the config entry of a one-image archive of `layers`. */
function metadataEntries(layers: readonly Buffer[], layerPaths: readonly string[], repoTag: string): RawEntry[] {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${sha256(l)}`) },
      history: layers.map((_, i) => ({ created_by: `layer ${i}` })),
    }),
  );
  const configName = `${sha256(config)}.json`;
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: layerPaths }]));
  return [
    { name: 'manifest.json', data: manifest },
    { name: configName, data: config },
  ];
}

export interface CraftedImage {
  /** Entries before the second layer's entry. */
  readonly head: RawEntry[];
  /** The second layer's entry as a valid archive would have it. */
  readonly layer2: RawEntry;
  readonly layer2Path: string;
}

export type CraftedShape = 'first' | 'second';

/** A valid image, manifest first; with `second`, a 256 KiB layer precedes the last one. */
export function craftedImage(shape: CraftedShape): CraftedImage {
  const l1 = layerTar('one.bin', 256 * 1024, 1);
  const l2 = layerTar('two.bin', 4 * 1024, 2);
  const layers = shape === 'second' ? [l1, l2] : [l2];
  const layerPaths = shape === 'second' ? ['l1/layer.tar', 'l2/layer.tar'] : ['l2/layer.tar'];
  const head = metadataEntries(layers, layerPaths, 'crafted:v1');
  if (shape === 'second') head.push({ name: 'l1/', type: '5' }, { name: 'l1/layer.tar', data: l1 });
  head.push({ name: 'l2/', type: '5' });
  return { head, layer2: { name: 'l2/layer.tar', data: l2 }, layer2Path: 'l2/layer.tar' };
}

/** The ten defects, each as a function writing its archive to `file`. */
export const CRAFTED_DEFECTS: Record<string, (file: string, shape: CraftedShape) => void> = {
  'bad-header-checksum': (file, shape) => {
    const img = craftedImage(shape);
    writeFileSync(file, rawTar([...img.head, { ...img.layer2, badChecksum: true }]));
  },
  'symlink-absolute': (file, shape) => {
    const img = craftedImage(shape);
    writeFileSync(file, rawTar([...img.head, { name: img.layer2Path, type: '2', linkname: '/etc/passwd' }]));
  },
  'symlink-escaping': (file, shape) => {
    const img = craftedImage(shape);
    writeFileSync(file, rawTar([...img.head, { name: img.layer2Path, type: '2', linkname: '../../../etc/passwd' }]));
  },
  'symlink-loop': (file, shape) => {
    const img = craftedImage(shape);
    writeFileSync(
      file,
      rawTar([...img.head, { name: img.layer2Path, type: '2', linkname: 'loop.tar' }, { name: 'l2/loop.tar', type: '2', linkname: 'layer.tar' }]),
    );
  },
  'hardlink-absolute': (file, shape) => {
    const img = craftedImage(shape);
    writeFileSync(file, rawTar([...img.head, { name: img.layer2Path, type: '1', linkname: '/etc/passwd' }]));
  },
  'pax-size-nan': (file, shape) => {
    const img = craftedImage(shape);
    writeFileSync(file, rawTar([...img.head, paxEntry({ size: 'NaN' }), img.layer2]));
  },
  'pax-size-negative': (file, shape) => {
    const img = craftedImage(shape);
    writeFileSync(file, rawTar([...img.head, paxEntry({ size: '-512' }), img.layer2]));
  },
  'garbage-size-field': (file, shape) => {
    const img = craftedImage(shape);
    writeFileSync(file, rawTar([...img.head, { ...img.layer2, sizeField: 'zzzzzzzzzzz\0' }]));
  },
  'duplicate-layer-entry': (file, shape) => {
    const img = craftedImage(shape);
    // The first copy does not match its diff_id, the second does: refused whether the
    // input keeps the first entry, keeps the last, or refuses duplicates outright.
    const other = layerTar('other.bin', 1024, 3);
    writeFileSync(file, rawTar([...img.head, { name: img.layer2Path, data: other }, img.layer2]));
  },
  'cut-inside-header': (file, shape) => {
    const img = craftedImage(shape);
    const whole = rawTar([...img.head, img.layer2]);
    const headBytes = rawTar(img.head, false).length;
    writeFileSync(file, whole.subarray(0, headBytes + 200));
  },
};

/**
 * A valid image (manifest first) of `count` layers, each holding `files` files of
 * `bytesPerFile` bytes with distinct contents; for runs that must take a moment, or
 * searches with many matches.
 */
export function writeValidImage(file: string, opts: { layers: number; files: number; bytesPerFile: number; repoTag?: string }): void {
  const layers: Buffer[] = [];
  for (let l = 0; l < opts.layers; l++) {
    const entries: RawEntry[] = [];
    for (let f = 0; f < opts.files; f++) {
      const data = Buffer.alloc(opts.bytesPerFile, (l * 31 + f) & 0xff);
      if (data.length >= 8) data.writeUInt32BE(l * 65536 + f, 0);
      entries.push({ name: `layer${l}/dir/file-number-${String(f).padStart(6, '0')}.txt`, data });
    }
    layers.push(rawTar(entries));
  }
  const paths = layers.map((_, i) => `l${i}/layer.tar`);
  const entries = metadataEntries(layers, paths, opts.repoTag ?? 'valid:v1');
  layers.forEach((data, i) => entries.push({ name: `l${i}/`, type: '5' }, { name: paths[i] as string, data }));
  writeFileSync(file, rawTar(entries));
}
