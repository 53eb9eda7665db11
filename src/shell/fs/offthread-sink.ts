/**
 * A {@link LayerSink} whose work (sha256 of the blob, inflate, sha256 of the tar, the file
 * writes) runs in a worker thread; the main thread only gathers the received chunks and
 * hands them over (transferred, not copied). Measured on the bench's image: with two large
 * layers under way, each gets a core of its own (docs/performance.md, "Issue 10").
 *
 * Workers are pooled for the process: a finished job's worker takes the next one, and idle
 * workers never keep the process alive.
 *
 * @module
 */
import { Worker } from 'node:worker_threads';
import type { Compression } from '../../core/media-types.js';
import { BlobSink, type LayerSink, type SinkResult, type SinkTargets } from './spool.js';
import type { FromSinkWorker, ToSinkWorker, WorkerError } from './sink-worker.js';

/** Blobs at least this large are sunk off the main thread (a hand-off costs ~50 µs, a worker's start ~20 ms once). */
export const OFF_THREAD_MIN_BYTES = 8 << 20;

/** Bytes handed to the worker per message. */
const CHUNK_BYTES = 1 << 20;

/** Bytes handed over and not yet taken by the worker's sink, before `write` waits. */
const IN_FLIGHT_LIMIT = 4 << 20;

const idle: Worker[] = [];

function takeWorker(): Worker {
  const reused = idle.pop();
  if (reused) {
    reused.ref();
    return reused;
  }
  return new Worker(new URL('./sink-worker.js', import.meta.url));
}

function giveBack(worker: Worker): void {
  worker.removeAllListeners('message');
  worker.removeAllListeners('error');
  worker.removeAllListeners('exit');
  worker.unref();
  // A worker that dies idle (never expected) simply leaves the pool.
  worker.once('exit', () => {
    const at = idle.indexOf(worker);
    if (at >= 0) idle.splice(at, 1);
  });
  idle.push(worker);
}

function asError(e: WorkerError): Error {
  const { message, ...rest } = e;
  return Object.assign(new Error(message), rest);
}

/**
 * The sink for one blob: off the main thread when it makes a tar from a blob of
 * {@link OFF_THREAD_MIN_BYTES} or more, else in-thread ({@link BlobSink}). Same contract
 * either way.
 */
export function openLayerSink(targets: SinkTargets, compression: Compression | 'sniff', expectedSize: number | undefined): LayerSink {
  // A blob only passed through (no tar made) is a hash and a write: not worth a worker's memory.
  const inflates = targets.tar !== undefined;
  if (inflates && expectedSize !== undefined && expectedSize >= OFF_THREAD_MIN_BYTES && process.env.OCCYSTRAP_SINK_THREADS !== '0') return new OffThreadSink(targets, compression);
  return new BlobSink(targets, compression);
}

/** See the module comment. Errors of the worker's sink surface from `write` or `end`. */
export class OffThreadSink implements LayerSink {
  private readonly worker: Worker;
  private received_ = 0;
  private inFlight = 0;
  private gathered: Uint8Array[] = [];
  private gatheredBytes = 0;
  private failure: Error | undefined;
  private settled = false;
  /** Woken on every message from the worker. */
  private wake: (() => void) | undefined;
  private result: SinkResult | undefined;
  private abortedAck = false;

  constructor(targets: SinkTargets, compression: Compression | 'sniff') {
    this.worker = takeWorker();
    this.worker.on('message', (m: FromSinkWorker) => {
      if (m.t === 'ack') this.inFlight -= m.bytes;
      else if (m.t === 'done') this.result = m.result;
      else if (m.t === 'failed') this.failure ??= asError(m.error);
      else this.abortedAck = true;
      this.notify();
    });
    this.worker.on('error', (e) => {
      this.failure ??= e;
      this.abortedAck = true;
      this.notify();
    });
    this.worker.on('exit', (code) => {
      this.failure ??= new Error(`the layer worker stopped (exit ${code})`);
      this.abortedAck = true;
      this.notify();
    });
    this.post({ t: 'open', targets, compression });
  }

  private post(m: ToSinkWorker, transfer?: ArrayBuffer[]): void {
    this.worker.postMessage(m, transfer);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async until(ready: () => boolean): Promise<void> {
    while (!ready()) await new Promise<void>((resolve) => (this.wake = resolve));
  }

  get received(): number {
    return this.received_;
  }

  get bufferedBytes(): number {
    return this.gatheredBytes + this.inFlight;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    this.received_ += chunk.length;
    this.gathered.push(chunk);
    this.gatheredBytes += chunk.length;
    if (this.gatheredBytes >= CHUNK_BYTES) this.flush();
    if (this.inFlight > IN_FLIGHT_LIMIT) await this.until(() => this.failure !== undefined || this.inFlight <= IN_FLIGHT_LIMIT);
    if (this.failure) throw this.failure;
  }

  /** One copy into a buffer of our own, which is then transferred (the chunks may share a pool). */
  private flush(): void {
    if (this.gatheredBytes === 0) return;
    const out = new Uint8Array(this.gatheredBytes);
    let at = 0;
    for (const c of this.gathered) {
      out.set(c, at);
      at += c.length;
    }
    this.gathered = [];
    this.gatheredBytes = 0;
    this.inFlight += out.length;
    this.post({ t: 'data', chunk: out }, [out.buffer]);
  }

  async end(): Promise<SinkResult> {
    if (this.failure) throw this.failure;
    this.flush();
    this.post({ t: 'end' });
    await this.until(() => this.failure !== undefined || this.result !== undefined);
    if (this.failure) throw this.failure;
    this.release();
    return this.result as SinkResult;
  }

  async abort(reason: Error): Promise<void> {
    if (this.settled) return;
    this.gathered = [];
    this.gatheredBytes = 0;
    this.post({ t: 'abort', message: reason.message });
    // The worker closes its files before it answers: the owner may then remove them.
    await this.until(() => this.abortedAck);
    this.release();
  }

  private release(): void {
    if (this.settled) return;
    this.settled = true;
    if (this.worker.threadId >= 0 && !this.failure) giveBack(this.worker);
    else void this.worker.terminate();
  }
}
