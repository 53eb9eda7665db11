/**
 * The scope's codecs for `Inflate` and `Compress` effects: stream one file into another,
 * hashing what is written. zlib runs on libuv's thread pool, so a large layer is
 * compressed or inflated off the main thread.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createGzip } from 'node:zlib';
import type { Digest } from '../../core/digest.js';
import type { Compression } from '../../core/media-types.js';
import type { BlobCompression } from '../../core/ownership.js';
import { spoolToFile } from './spool.js';

export interface TranscodeResult {
  readonly digest: Digest;
  readonly size: number;
}

/** The port a scope performs `Inflate`/`Compress` with; property tests give in-memory ones. */
export interface LayerCodecs {
  /** Decompress the file at `from` into the existing empty file at `to`. */
  inflate(from: string, to: string, compression: Compression | 'sniff', signal?: AbortSignal): Promise<TranscodeResult>;
  /** Compress the file at `from` into the existing empty file at `to`, deterministically. */
  compress(from: string, to: string, compression: BlobCompression, signal?: AbortSignal): Promise<TranscodeResult>;
}

/** gzip level of layers occystrap compresses: zlib's default, the usual speed/size balance. */
export const GZIP_LEVEL = 6;

class HashCount extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
}

async function compressFile(from: string, to: string, compression: BlobCompression, signal?: AbortSignal): Promise<TranscodeResult> {
  if (compression === 'zstd') throw new Error('zstd compression is not available in this build; use --compression gzip');
  const counter = new HashCount();
  // gzip's header carries no name and mtime 0 in node's zlib, so equal input gives equal bytes.
  const gzip = createGzip({ level: GZIP_LEVEL, chunkSize: 1 << 20, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
  await pipeline(createReadStream(from, { highWaterMark: 1 << 20 }), gzip, counter, createWriteStream(to, { flags: 'r+' }), ...(signal ? [{ signal }] : []));
  return { digest: `sha256:${counter.hash.digest('hex')}` as Digest, size: counter.size };
}

export const nodeLayerCodecs: LayerCodecs = {
  async inflate(from, to, compression, signal) {
    const result = await spoolToFile(createReadStream(from, { highWaterMark: 1 << 20 }), to, { compression, ...(signal ? { signal } : {}) });
    return { digest: result.contentDigest, size: result.contentSize };
  },
  compress: compressFile,
};
