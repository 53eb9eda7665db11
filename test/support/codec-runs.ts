/**
 * What the compression codec tests share: compressible sample bytes, and a file
 * compressed twice by the scope's codec, each result checked (size and digest as
 * written, decodes to the input).
 *
 * @module
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BlobCompression } from '../../src/core/ownership.js';
import { nodeLayerCodecs } from '../../src/shell/fs/transcode.js';

/** Compressible bytes: random words repeated. */
export function sample(size: number): Buffer {
  const words = Array.from({ length: 512 }, () => randomBytes(6).toString('hex'));
  const out = Buffer.alloc(size);
  let offset = 0;
  for (let i = 0; offset < size; i++) offset += out.write(`${words[(i * 7919) % words.length]} `, offset);
  return out;
}

export const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** `input` compressed twice into `dir` by the scope's codec; each result's size, digest and decoding checked. */
export async function compressTwice(dir: string, input: Buffer, compression: BlobCompression, decode: (bytes: Buffer) => Uint8Array): Promise<Buffer[]> {
  const from = path.join(dir, 'in.tar');
  await writeFile(from, input);
  const outs: Buffer[] = [];
  for (const name of ['a', 'b']) {
    const to = path.join(dir, `${name}.${compression}`);
    await writeFile(to, '');
    const r = await nodeLayerCodecs.compress(from, to, compression);
    const bytes = await readFile(to);
    assert.equal(r.size, bytes.length);
    assert.equal(r.digest, sha(bytes));
    assert.deepEqual(Buffer.from(decode(bytes)), input);
    outs.push(bytes);
  }
  return outs;
}
