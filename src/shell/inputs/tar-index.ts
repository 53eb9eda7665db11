/**
 * A quick look at a tar archive's headers, seeking over the data: where each regular
 * file's data lies. The docker-save input uses it to read `manifest.json` and the config
 * first when they come at the end of the archive (as `docker save` and skopeo write them),
 * so layers are delivered as they are read instead of all spooled before the first one.
 *
 * It is a hint, not the reader: the sequential read still parses every header and checks
 * that what it finds agrees with what was read early. Anything this walker does not handle
 * plainly (global PAX headers, sparse files, base-256 sizes, a header that does not parse)
 * makes it give up, and the input reads the archive as before.
 *
 * @module
 */
import type { FileHandle } from 'node:fs/promises';
import { normalizeArchivePath } from '../../core/archive-path.js';
import { parsePaxRecords } from '../../core/tar/reader.js';
import * as E from 'fp-ts/lib/Either.js';

/** Where a regular file's data lies in the archive. */
export interface Location {
  readonly offset: number;
  readonly size: number;
}

const BLOCK = 512;
/** Headers read at most: docker-save archives have a few entries per layer. */
const MAX_ENTRIES = 100_000;
/** PAX and GNU long-name bodies read at most. */
const MAX_META_BYTES = 1 << 20;

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(block: Uint8Array, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return utf8.decode(end < 0 ? field : field.subarray(0, end));
}

function octal(block: Uint8Array, offset: number, length: number): number | undefined {
  if ((block[offset] as number) & 0x80) return undefined; // base-256: not worth a hint
  const digits = latin1.decode(block.subarray(offset, offset + length)).replace(/[\0 ]+$/, '').trim();
  return /^[0-7]*$/.test(digits) ? (digits === '' ? 0 : parseInt(digits, 8)) : undefined;
}

function checksumOk(block: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] as number);
  return octal(block, 148, 8) === sum;
}

/**
 * The data location of every regular file in the archive, by normalised name, or
 * undefined when the walker gives up. A name two entries carry (files or links) is left
 * out: which one counts is for the sequential read to refuse, if the image uses it.
 */
export async function indexTarArchive(handle: FileHandle): Promise<Map<string, Location> | undefined> {
  const files = new Map<string, Location>();
  const seen = new Set<string>();
  const twice = new Set<string>();
  const block = new Uint8Array(BLOCK);
  const read = async (buffer: Uint8Array, position: number): Promise<boolean> => {
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position + filled);
      if (bytesRead === 0) return false;
      filled += bytesRead;
    }
    return true;
  };
  let position = 0;
  let longName: string | undefined;
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  try {
    for (let entries = 0; entries < MAX_ENTRIES; entries++) {
      if (!(await read(block, position))) return undefined;
      if (block.every((b) => b === 0)) {
        for (const name of twice) files.delete(name);
        return files;
      }
      if (!checksumOk(block)) return undefined;
      const headerSize = octal(block, 124, 12);
      if (headerSize === undefined) return undefined;
      const size = paxSize ?? headerSize;
      const type = String.fromCharCode(block[156] as number);
      const dataOffset = position + BLOCK;
      position = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
      if (type === 'x' || type === 'L') {
        if (size > MAX_META_BYTES) return undefined;
        const body = new Uint8Array(size);
        if (!(await read(body, dataOffset))) return undefined;
        if (type === 'L') {
          const end = body.indexOf(0);
          longName = utf8.decode(end < 0 ? body : body.subarray(0, end));
        } else {
          for (const [key, value] of parsePaxRecords(body)) {
            if (key === 'path') paxPath = utf8.decode(value);
            else if (key === 'size') {
              const n = latin1.decode(value);
              if (!/^\d+$/.test(n)) return undefined;
              paxSize = Number(n);
            }
          }
        }
        continue;
      }
      if (type === 'g' || type === 'S') return undefined;
      let name = paxPath ?? longName;
      if (name === undefined) {
        name = text(block, 0, 100);
        const magic = latin1.decode(block.subarray(257, 263));
        const prefix = magic === 'ustar\0' ? text(block, 345, 155) : '';
        if (prefix !== '') name = `${prefix}/${name}`;
      }
      longName = paxPath = paxSize = undefined;
      if (type === '0' || type === '\0' || type === '7' || type === '1' || type === '2') {
        const normalized = normalizeArchivePath(name);
        if (E.isLeft(normalized)) return undefined;
        if (seen.has(normalized.right)) twice.add(normalized.right);
        seen.add(normalized.right);
        if (type !== '1' && type !== '2') files.set(normalized.right, { offset: dataOffset, size });
      }
    }
    return undefined;
  } catch {
    return undefined; // not UTF-8, a bad PAX record: the sequential read reports it
  }
}
