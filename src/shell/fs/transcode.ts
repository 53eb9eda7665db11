/**
 * The scope's codecs for `Inflate` and `Compress` effects: stream one file into another,
 * hashing what is written. zlib runs on libuv's thread pool and zstd compression in a
 * worker thread (for files over {@link ZSTD_INLINE_MAX} bytes), so a large layer is
 * compressed or inflated off the main thread.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import { constants as zlibConstants, createGzip } from 'node:zlib';
import type { Digest } from '../../core/digest.js';
import { AbortError } from '../../core/errors.js';
import type { Compression } from '../../core/media-types.js';
import type { BlobCompression } from '../../core/ownership.js';
import { spoolToFile } from './spool.js';
import type { ZstdResult } from './zstd-worker.js';

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

/** Files up to this size are zstd-compressed on the main thread (a worker's start costs more). */
export const ZSTD_INLINE_MAX = 4 << 20;

/** zstd-compress `from` into `to` in a worker thread; the signal terminates the worker. */
function zstdInWorker(from: string, to: string, signal?: AbortSignal): Promise<ZstdResult> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError(signal.reason));
    const worker = new Worker(new URL('./zstd-worker.js', import.meta.url), { workerData: { zstdJob: { from, to } } });
    let settled = false;
    const finish = (action: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      action();
      void worker.terminate();
    };
    const onAbort = () => finish(() => reject(new AbortError(signal?.reason)));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (m: { ok: true; result: ZstdResult } | { ok: false; message: string; code?: string }) =>
      finish(() => (m.ok ? resolve(m.result) : reject(Object.assign(new Error(m.message), m.code ? { code: m.code } : {})))),
    );
    worker.once('error', (e) => finish(() => reject(e)));
    worker.once('exit', (code) => finish(() => reject(new Error(`zstd worker stopped (exit ${code}) before it finished`))));
  });
}

async function zstdFile(from: string, to: string, signal?: AbortSignal): Promise<TranscodeResult> {
  const { size } = await stat(from);
  // Loaded on first use: the native addon stays out of every run's start-up.
  const result = size <= ZSTD_INLINE_MAX ? await (await import('./zstd-worker.js')).zstdCompressFile({ from, to }, signal) : await zstdInWorker(from, to, signal);
  return { digest: `sha256:${result.hex}` as Digest, size: result.size };
}

async function compressFile(from: string, to: string, compression: BlobCompression, signal?: AbortSignal): Promise<TranscodeResult> {
  if (compression === 'zstd') return zstdFile(from, to, signal);
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
