/**
 * A {@link LayerSink} that inflates in a worker thread. For a gzip blob made into a tar
 * only (`inflate` mode) the worker does nothing but inflate, and this thread hashes the
 * blob as received and the tar as it comes back, and writes the tar; buffers go back and
 * forth instead of being allocated, so a layer leaves next to no garbage. Anything else
 * (zstd, a blob file as well) runs a whole {@link BlobSink} in the worker. Measured on the
 * bench's image: docs/performance.md, "Issue 10, third round".
 *
 * At most one worker per core (4 at most, `OCCYSTRAP_SINK_THREADS`) works at once; other
 * large layers are sunk on this thread.
 *
 * Workers are pooled for the process: a finished job's worker takes the next one, and idle
 * workers never keep the process alive.
 *
 * @module
 */
import { createHash, type Hash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type Compression, sniffCompression } from '../../core/media-types.js';
import { BlobSink, digestOf, type LayerSink, type SinkResult, type SinkTargets } from './spool.js';
import { syncGunzipAvailable } from './sync-gunzip.js';
import type { FromSinkWorker, ToSinkWorker, WorkerError } from './sink-worker.js';

/** Blobs at least this large are sunk off the main thread (a hand-off costs ~50 µs, a worker's start ~20 ms once). */
export const OFF_THREAD_MIN_BYTES = 8 << 20;

/** Bytes handed to the worker per message. */
const CHUNK_BYTES = 1 << 20;

/** The size of the buffers handed to the worker: a gathered message (at most a network chunk over {@link CHUNK_BYTES}) fits. */
const GATHER_CAPACITY = CHUNK_BYTES + (256 << 10);

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

/** Workers at once: OCCYSTRAP_SINK_THREADS (0 turns them off), else one per core, at most 4 (each costs ~10 MiB). */
function sinkThreads(): number {
  const v = process.env.OCCYSTRAP_SINK_THREADS;
  const n = v === undefined || v === '' ? NaN : Number(v);
  return Number.isInteger(n) && n >= 0 ? n : Math.min(4, availableParallelism());
}

/**
 * The sink for one blob: off the main thread when it makes a tar from a blob of
 * {@link OFF_THREAD_MIN_BYTES} or more, else in-thread ({@link BlobSink}). Same contract
 * either way.
 */
export function openLayerSink(targets: SinkTargets, compression: Compression | 'sniff', expectedSize: number | undefined): LayerSink {
  // A blob only passed through (no tar made) is a hash and a write: not worth a worker's memory.
  const inflates = targets.tar !== undefined;
  if (inflates && expectedSize !== undefined && expectedSize >= OFF_THREAD_MIN_BYTES && OffThreadSink.active < sinkThreads()) return new OffThreadSink(targets, compression);
  return new BlobSink(targets, compression);
}

/** Where the tar goes when this thread writes it (`inflate` mode). */
interface TarWriting {
  readonly hash: Hash;
  size: number;
  handle: Promise<FileHandle>;
  /** The writes, in order; a failure is kept in {@link OffThreadSink.failure}. */
  writes: Promise<void>;
  readonly start: number;
}

/** See the module comment. Errors of the worker's sink surface from `write` or `end`. */
export class OffThreadSink implements LayerSink {
  /** Sinks open now (each holds a worker). */
  static active = 0;
  private readonly worker: Worker;
  private received_ = 0;
  private inFlight = 0;
  private gathered: Uint8Array[] = [];
  private gatheredBytes = 0;
  private failure: Error | undefined;
  private settled = false;
  /** Woken on every message from the worker. */
  private wake: (() => void) | undefined;
  private done = false;
  private result: SinkResult | undefined;
  private abortedAck = false;
  /** The worker failed or exited: never reused. */
  private dead = false;
  /** Chosen at the first bytes: `inflate` (this thread hashes and writes) or `sink` (the worker does all). */
  private mode: 'inflate' | 'sink' | undefined;
  private readonly raw = createHash('sha256');
  private tar: TarWriting | undefined;
  /** Inflated bytes received and not yet written. */
  private piecesBytes = 0;
  /** Input buffers the worker handed back (`inflate` mode): filled again instead of new ones. */
  private readonly spare: ArrayBuffer[] = [];

  constructor(
    private readonly targets: SinkTargets,
    private readonly compression: Compression | 'sniff',
  ) {
    this.worker = takeWorker();
    OffThreadSink.active++;
    this.worker.on('message', (m: FromSinkWorker) => {
      if (m.t === 'ack') {
        this.inFlight -= m.bytes;
        if (m.buffer && m.buffer.byteLength === GATHER_CAPACITY) this.spare.push(m.buffer);
      }
      else if (m.t === 'piece') this.piece(m.chunk);
      else if (m.t === 'done') {
        this.done = true;
        this.result = m.result;
      } else if (m.t === 'failed') this.failure ??= asError(m.error);
      else this.abortedAck = true;
      this.notify();
    });
    this.worker.on('error', (e) => {
      this.dead = true;
      this.failure ??= e;
      this.abortedAck = true;
      this.notify();
    });
    this.worker.on('exit', (code) => {
      this.dead = true;
      this.failure ??= new Error(`the layer worker stopped (exit ${code})`);
      this.abortedAck = true;
      this.notify();
    });
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
    return this.gatheredBytes + this.inFlight + this.piecesBytes;
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

  /** The mode, from the declared compression or the first bytes; the worker is told. */
  private choose(head: Uint8Array): void {
    const { tar, blob } = this.targets;
    const gzip = this.compression === 'gzip' || (this.compression === 'sniff' && sniffCompression(head) === 'gzip');
    if (tar !== undefined && blob === undefined && gzip && syncGunzipAvailable()) {
      this.mode = 'inflate';
      const file = typeof tar === 'string' ? { path: tar, start: 0 } : tar;
      // r+: a file the scope already removed is never recreated.
      const handle = fs.open(file.path, 'r+');
      this.tar = { hash: createHash('sha256'), size: 0, handle, writes: handle.then(() => undefined), start: file.start };
      this.tar.writes.catch((e: unknown) => this.fail(e));
      this.post({ t: 'open', mode: 'inflate' });
    } else {
      this.mode = 'sink';
      this.post({ t: 'open', mode: 'sink', targets: this.targets, compression: this.compression });
    }
  }

  private fail(e: unknown): void {
    this.failure ??= e instanceof Error ? e : new Error(String(e));
    this.notify();
  }

  /** An inflated piece: hashed now, written in order, `took` once on disk. */
  private piece(chunk: Uint8Array): void {
    const tar = this.tar;
    if (!tar || this.failure) return;
    tar.hash.update(chunk);
    const at = tar.start + tar.size;
    tar.size += chunk.byteLength;
    this.piecesBytes += chunk.byteLength;
    tar.writes = tar.writes.then(async () => {
      if (this.failure) return;
      const handle = await tar.handle;
      let offset = 0;
      while (offset < chunk.byteLength) offset += (await handle.write(chunk, offset, chunk.byteLength - offset, at + offset)).bytesWritten;
      this.piecesBytes -= chunk.byteLength;
      // Written: the buffer goes back to the worker to be filled again.
      const buffer = chunk.buffer as ArrayBuffer;
      this.post({ t: 'took', bytes: chunk.byteLength, buffer }, [buffer]);
    });
    tar.writes.catch((e: unknown) => this.fail(e));
  }

  /** One copy into a buffer of our own, which is then transferred (the chunks may share a pool). */
  private flush(): void {
    if (this.gatheredBytes === 0) return;
    const spare = this.gatheredBytes <= GATHER_CAPACITY ? this.spare.pop() : undefined;
    const out = spare ? new Uint8Array(spare, 0, this.gatheredBytes) : new Uint8Array(new ArrayBuffer(Math.max(GATHER_CAPACITY, this.gatheredBytes)), 0, this.gatheredBytes);
    let at = 0;
    for (const c of this.gathered) {
      out.set(c, at);
      at += c.length;
    }
    this.gathered = [];
    this.gatheredBytes = 0;
    if (this.mode === undefined) this.choose(out);
    if (this.mode === 'inflate') this.raw.update(out);
    this.inFlight += out.length;
    this.post({ t: 'data', chunk: out }, [out.buffer]);
  }

  async end(): Promise<SinkResult> {
    if (this.failure) throw this.failure;
    this.flush();
    if (this.mode === undefined) this.choose(new Uint8Array(0));
    this.post({ t: 'end' });
    await this.until(() => this.failure !== undefined || this.done);
    if (this.failure) throw this.failure;
    const tar = this.tar;
    if (tar) {
      await tar.writes;
      await (await tar.handle).close();
      this.tar = undefined;
      if (this.failure) throw this.failure;
      this.release();
      const rawDigest = digestOf(this.raw);
      return { rawDigest, rawSize: this.received_, compression: 'gzip', content: { digest: digestOf(tar.hash), size: tar.size } };
    }
    this.release();
    return this.result as SinkResult;
  }

  async abort(reason: Error): Promise<void> {
    if (this.settled) return;
    this.gathered = [];
    this.gatheredBytes = 0;
    this.failure ??= reason;
    if (this.mode !== undefined) {
      this.post({ t: 'abort', message: reason.message });
      // The worker closes its files before it answers: the owner may then remove them.
      await this.until(() => this.abortedAck);
    }
    const tar = this.tar;
    this.tar = undefined;
    if (tar) {
      await tar.writes.catch(() => undefined);
      await (await tar.handle.catch(() => undefined))?.close().catch(() => undefined);
    }
    this.release();
  }

  private release(): void {
    if (this.settled) return;
    this.settled = true;
    OffThreadSink.active--;
    if (!this.dead) giveBack(this.worker);
    else void this.worker.terminate();
  }
}
