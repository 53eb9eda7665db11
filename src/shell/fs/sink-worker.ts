/**
 * The worker side of {@link OffThreadSink}: one {@link BlobSink} per job, fed by messages.
 * Hashing, the decompressor's hand-offs and the file writes of a large layer then run on
 * a thread of their own, so two large layers use both cores and the main thread is left
 * to receive (docs/performance.md, "Issue 10").
 *
 * Protocol (one job at a time per worker):
 * main → worker `open` {targets, compression}, `data` {chunk} (transferred), `end`, `abort`;
 * worker → main `ack` {bytes} per chunk taken, `done` {result}, `failed` {error}, `aborted`.
 *
 * @module
 */
import { isMainThread, parentPort } from 'node:worker_threads';
import type { Compression } from '../../core/media-types.js';
import { BlobSink, type SinkResult, type SinkTargets } from './spool.js';

export type ToSinkWorker =
  | { readonly t: 'open'; readonly targets: SinkTargets; readonly compression: Compression | 'sniff' }
  | { readonly t: 'data'; readonly chunk: Uint8Array }
  | { readonly t: 'end' }
  | { readonly t: 'abort'; readonly message: string };

/** An error as it crosses the thread boundary: what the shell's error mapping reads. */
export interface WorkerError {
  readonly message: string;
  readonly code?: string;
  readonly path?: string;
  readonly syscall?: string;
  readonly errno?: number;
}

export type FromSinkWorker =
  | { readonly t: 'ack'; readonly bytes: number }
  | { readonly t: 'done'; readonly result: SinkResult }
  | { readonly t: 'failed'; readonly error: WorkerError }
  | { readonly t: 'aborted' };

export function toWorkerError(e: unknown): WorkerError {
  const err = e as { message?: string; code?: unknown; path?: unknown; syscall?: unknown; errno?: unknown };
  return {
    message: typeof err?.message === 'string' ? err.message : String(e),
    ...(typeof err?.code === 'string' ? { code: err.code } : {}),
    ...(typeof err?.path === 'string' ? { path: err.path } : {}),
    ...(typeof err?.syscall === 'string' ? { syscall: err.syscall } : {}),
    ...(typeof err?.errno === 'number' ? { errno: err.errno } : {}),
  };
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  let sink: BlobSink | undefined;
  /** Messages are handled strictly in order: each waits for the one before. */
  let chain: Promise<void> = Promise.resolve();
  let failed = false;
  const send = (m: FromSinkWorker) => port.postMessage(m);
  const fail = (e: unknown) => {
    if (failed) return;
    failed = true;
    send({ t: 'failed', error: toWorkerError(e) });
  };
  port.on('message', (m: ToSinkWorker) => {
    chain = chain.then(async () => {
      switch (m.t) {
        case 'open':
          failed = false;
          sink = new BlobSink(m.targets, m.compression);
          return;
        case 'data':
          if (failed || !sink) return;
          try {
            await sink.write(m.chunk);
            send({ t: 'ack', bytes: m.chunk.byteLength });
          } catch (e) {
            fail(e);
          }
          return;
        case 'end':
          if (failed || !sink) return;
          try {
            const result = await sink.end();
            sink = undefined;
            send({ t: 'done', result });
          } catch (e) {
            fail(e);
          }
          return;
        case 'abort':
          await sink?.abort(new Error(m.message));
          sink = undefined;
          send({ t: 'aborted' });
          return;
      }
    });
  });
}
