/**
 * The worker side of {@link OffThreadSink}. A job is one blob, in one of two modes:
 *
 * - `inflate` (a gzip blob made into a tar only): this thread only inflates
 *   ({@link SyncGunzip}, never idle between steps) and sends each inflated piece back;
 *   the main thread hashes the blob as received and the tar as it comes back, and writes
 *   the tar. The inflate, the longest part, then has a thread to itself.
 * - `sink` (anything else): a whole {@link BlobSink} runs here.
 *
 * Protocol (one job at a time per worker):
 * main → worker `open` {mode, targets, compression}, `data` {chunk} (transferred), `end`,
 * `abort`, and in `inflate` mode `took` {bytes, buffer} once a piece is written;
 * worker → main `ack` {bytes} per chunk taken, `piece` {chunk} (transferred, `inflate`
 * mode), `done` {result}, `failed` {error}, `aborted`. In `inflate` mode buffers go round:
 * `ack` returns the input buffer and `took` the piece's, so a layer allocates (and leaves
 * for the garbage collector) next to nothing.
 *
 * @module
 */
import { isMainThread, parentPort } from 'node:worker_threads';
import type { Compression } from '../../core/media-types.js';
import { BlobSink, type SinkResult, type SinkTargets } from './spool.js';
import { SyncGunzip } from './sync-gunzip.js';

/** Inflated bytes sent and not yet written by the main thread, before inflation pauses. */
const PIECES_IN_FLIGHT = 4 << 20;

/** The size of each inflated piece. */
const PIECE_BYTES = 1 << 20;

export type ToSinkWorker =
  | { readonly t: 'open'; readonly mode: 'sink'; readonly targets: SinkTargets; readonly compression: Compression | 'sniff' }
  | { readonly t: 'open'; readonly mode: 'inflate' }
  | { readonly t: 'data'; readonly chunk: Uint8Array }
  | { readonly t: 'took'; readonly bytes: number; readonly buffer?: ArrayBuffer }
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
  | { readonly t: 'ack'; readonly bytes: number; readonly buffer?: ArrayBuffer }
  | { readonly t: 'piece'; readonly chunk: Uint8Array }
  | { readonly t: 'done'; readonly result: SinkResult | undefined }
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

/** A job as the message loop drives it. */
interface Job {
  write(chunk: Uint8Array): Promise<void>;
  end(): Promise<SinkResult | undefined>;
  abort(reason: Error): Promise<void>;
}

/** `inflate` mode: pieces go back to the main thread, at most {@link PIECES_IN_FLIGHT} unwritten. */
class InflateJob implements Job {
  private inFlight = 0;
  private wake: (() => void) | undefined;
  private stopped = false;
  private readonly gunzip: SyncGunzip;
  /** Piece buffers the main thread handed back (written): reused, so inflating allocates nothing. */
  private readonly free: ArrayBuffer[] = [];

  constructor(send: (m: FromSinkWorker, transfer?: ArrayBuffer[]) => void) {
    const allocate = () => {
      const reused = this.free.pop();
      return reused ? new Uint8Array(reused) : new Uint8Array(PIECE_BYTES);
    };
    this.gunzip = new SyncGunzip(async (piece) => {
      this.inFlight += piece.byteLength;
      send({ t: 'piece', chunk: piece }, [piece.buffer as ArrayBuffer]);
      while (this.inFlight > PIECES_IN_FLIGHT && !this.stopped) await new Promise<void>((resolve) => (this.wake = resolve));
      if (this.stopped) throw new Error('stopped');
    }, allocate);
  }

  took(bytes: number, buffer?: ArrayBuffer): void {
    if (buffer && buffer.byteLength === PIECE_BYTES) this.free.push(buffer);
    this.inFlight -= bytes;
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  write(chunk: Uint8Array): Promise<void> {
    return this.gunzip.write(chunk);
  }

  async end(): Promise<undefined> {
    await this.gunzip.finish();
    return undefined;
  }

  /** Stop waiting for `took` (the main thread writes no more): the write in progress fails. */
  interrupt(): void {
    this.stopped = true;
    this.took(0);
  }

  async abort(): Promise<void> {
    this.interrupt();
    this.gunzip.close();
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  let job: Job | undefined;
  /** Messages are handled strictly in order: each waits for the one before (`took` excepted). */
  let chain: Promise<void> = Promise.resolve();
  let failed = false;
  const send = (m: FromSinkWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);
  const fail = (e: unknown) => {
    if (failed) return;
    failed = true;
    send({ t: 'failed', error: toWorkerError(e) });
  };
  port.on('message', (m: ToSinkWorker) => {
    // Out of turn: the job in the chain may be waiting for exactly this.
    if (m.t === 'took') {
      if (job instanceof InflateJob) job.took(m.bytes, m.buffer);
      return;
    }
    if (m.t === 'abort' && job instanceof InflateJob) job.interrupt();
    chain = chain.then(async () => {
      switch (m.t) {
        case 'open':
          failed = false;
          job = m.mode === 'inflate' ? new InflateJob(send) : new BlobSink(m.targets, m.compression);
          return;
        case 'data':
          if (failed || !job) return;
          try {
            await job.write(m.chunk);
            // Inflated whole: the input buffer goes back to be filled again (a BlobSink may still hold it).
            if (job instanceof InflateJob) send({ t: 'ack', bytes: m.chunk.byteLength, buffer: m.chunk.buffer as ArrayBuffer }, [m.chunk.buffer as ArrayBuffer]);
            else send({ t: 'ack', bytes: m.chunk.byteLength });
          } catch (e) {
            fail(e);
          }
          return;
        case 'end':
          if (failed || !job) return;
          try {
            const result = await job.end();
            job = undefined;
            send({ t: 'done', result });
          } catch (e) {
            fail(e);
          }
          return;
        case 'abort':
          await job?.abort(new Error(m.message));
          job = undefined;
          send({ t: 'aborted' });
          return;
      }
    });
  });
}
