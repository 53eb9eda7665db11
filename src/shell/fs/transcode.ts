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
import { open, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import type { Digest } from '../../core/digest.js';
import { AbortError } from '../../core/errors.js';
import type { Compression } from '../../core/media-types.js';
import type { BlobCompression } from '../../core/ownership.js';
import { gzipEngine } from './gzip-engine.js';
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

/** gzip blocks: a file is compressed as one gzip member per 8 MiB of input. */
export const GZIP_BLOCK_BYTES = 8 * 1024 * 1024;

/**
 * gzip a file as consecutive members of {@link GZIP_BLOCK_BYTES} of input each, compressed
 * at once on the libuv thread pool (up to the machine's cores) by the process's
 * {@link gzipEngine} (ISA-L, else zlib) and written in order: as
 * pigz and skopeo's pgzip use every core. A multi-member gzip is one valid gzip stream
 * (RFC 1952 §2.2; Go's, zlib's and node's readers take it). Each member's header has no
 * name and mtime 0, and the block size is fixed, so equal input gives equal bytes. At most
 * 2 × cores blocks are held in memory.
 */
async function gzipFile(from: string, to: string, signal?: AbortSignal): Promise<TranscodeResult> {
  const counter = new HashCount();
  const input = await open(from, 'r');
  const lanes = Math.max(1, Math.min(8, availableParallelism()));
  const engine = gzipEngine();
  async function* members(): AsyncGenerator<Buffer> {
    const pending: Promise<Buffer>[] = [];
    let position = 0;
    let eof = false;
    const readNext = async (): Promise<Buffer | undefined> => {
      const buf = Buffer.allocUnsafe(GZIP_BLOCK_BYTES);
      let filled = 0;
      while (filled < buf.length) {
        const { bytesRead } = await input.read(buf, filled, buf.length - filled, position);
        if (bytesRead === 0) break;
        filled += bytesRead;
        position += bytesRead;
      }
      if (filled < buf.length) eof = true;
      return filled === 0 && position > 0 ? undefined : buf.subarray(0, filled);
    };
    for (;;) {
      while (!eof && pending.length < lanes) {
        signal?.throwIfAborted();
        const block = await readNext();
        if (block === undefined) break;
        pending.push(engine.compressBlock(block));
      }
      const next = pending.shift();
      if (!next) return;
      yield await next;
    }
  }
  try {
    await pipeline(members(), counter, createWriteStream(to, { flags: 'r+' }), ...(signal ? [{ signal }] : []));
  } finally {
    await input.close();
  }
  return { digest: `sha256:${counter.hash.digest('hex')}` as Digest, size: counter.size };
}

async function compressFile(from: string, to: string, compression: BlobCompression, signal?: AbortSignal): Promise<TranscodeResult> {
  return compression === 'zstd' ? zstdFile(from, to, signal) : gzipFile(from, to, signal);
}

export const nodeLayerCodecs: LayerCodecs = {
  async inflate(from, to, compression, signal) {
    const result = await spoolToFile(createReadStream(from, { highWaterMark: 1 << 20 }), to, { compression, ...(signal ? { signal } : {}) });
    return { digest: result.contentDigest, size: result.contentSize };
  },
  compress: compressFile,
};
