/**
 * zstd compression of one file into another, run in a worker thread so a large layer
 * does not hold up the main thread (zstd-napi compresses synchronously per chunk).
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CompressStream } from 'zstd-napi';

/** zstd level of layers occystrap compresses: zstd's default. */
export const ZSTD_LEVEL = 3;

export interface ZstdJob {
  readonly from: string;
  readonly to: string;
}

export interface ZstdResult {
  readonly hex: string;
  readonly size: number;
}

/**
 * Compress `from` into the existing file `to`. Deterministic: one frame, fixed level,
 * no worker threads inside zstd, checksum on; equal input gives equal bytes.
 */
export async function zstdCompressFile(job: ZstdJob, signal?: AbortSignal): Promise<ZstdResult> {
  const hash = createHash('sha256');
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  const zstd = new CompressStream({ compressionLevel: ZSTD_LEVEL, checksumFlag: true, nbWorkers: 0 });
  await pipeline(createReadStream(job.from, { highWaterMark: 1 << 20 }), zstd, count, createWriteStream(job.to, { flags: 'r+' }), ...(signal ? [{ signal }] : []));
  return { hex: hash.digest('hex'), size };
}

if (!isMainThread && parentPort && (workerData as { zstdJob?: ZstdJob } | undefined)?.zstdJob) {
  const port = parentPort;
  zstdCompressFile((workerData as { zstdJob: ZstdJob }).zstdJob).then(
    (result) => port.postMessage({ ok: true, result }),
    (e: unknown) => port.postMessage({ ok: false, message: (e as Error).message ?? String(e), code: (e as { code?: string }).code }),
  );
}
