/**
 * Stream a blob into a temp file in one pass: hash the bytes as read, decompress
 * (declared or sniffed), hash and count the uncompressed bytes, write them out.
 * Memory stays bounded by stream buffers whatever the blob size.
 *
 * @module
 */
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { DirectFileWriter } from './direct-writer.js';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, type ZlibOptions } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { type Compression, sniffCompression } from '../../core/media-types.js';
import { type Digest, digestFromHex } from '../../core/digest.js';
import type { TarConsumer } from '../../core/element.js';

export interface SpoolResult {
  /** sha256 of the bytes as read (the blob digest). */
  readonly rawDigest: Digest;
  readonly rawSize: number;
  /** sha256 of the uncompressed bytes (the diff_id for a layer). */
  readonly contentDigest: Digest;
  readonly contentSize: number;
  readonly compression: Compression;
}

/**
 * Hashes and counts what passes. The hash runs on the next turn of the event loop: gunzip
 * hands its output over synchronously and submits its next inflate job only when that
 * returns, so hashing in place would keep zlib's thread idle for the hash's length
 * (measured: 0.91 → 0.80 s to inflate and hash the bench's big layer).
 */
class HashCount extends Transform {
  readonly hash: Hash = createHash('sha256');
  size = 0;
  /** Off when what passes is the input itself (nothing was decompressed): its hash is the raw one. */
  hashing = true;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.hashing) {
      this.size += chunk.length;
      return cb(null, chunk);
    }
    setImmediate(() => {
      this.hash.update(chunk);
      this.size += chunk.length;
      cb(null, chunk);
    });
  }
}

/** Waits for the first bytes, picks a decompressor by magic (or the declared compression), then streams. */
class Decompressor extends Transform {
  private head: Buffer[] = [];
  private headLength = 0;
  private inner: ((chunk: Buffer, final: boolean, cb: TransformCallback) => void) | undefined;
  /** Lets a paused inner decompressor go on once the reader wants more. */
  private resumeInner: (() => void) | undefined;
  /** Bytes the inner decompressor holds (input not yet taken, output not yet pushed). */
  innerBuffered: () => number = () => 0;
  chosen: Compression = 'none';

  /** Set while the zstd feeder waits for the reader. */
  private readWanted: (() => void) | undefined;

  override _read(size: number): void {
    this.resumeInner?.();
    const wanted = this.readWanted;
    this.readWanted = undefined;
    wanted?.();
    super._read(size);
  }

  constructor(
    private readonly declared: Compression | 'sniff',
    private readonly onChosen?: (chosen: Compression) => void,
  ) {
    super({ readableHighWaterMark: STAGE_BYTES });
  }

  private choose(first: Buffer): void {
    this.chosen = this.declared === 'sniff' ? sniffCompression(first) : this.declared;
    this.onChosen?.(this.chosen);
    if (this.chosen === 'gzip') {
      // 1 MiB output chunks: far fewer hand-offs to the write stream than zlib's 16 KiB default.
      // zlib streams pass stream options on to Transform (not in @types/node's ZlibOptions).
      const gunzip = createGunzip({ chunkSize: 1 << 20, ...({ readableHighWaterMark: STAGE_BYTES, writableHighWaterMark: STAGE_BYTES } as ZlibOptions) });
      // Backpressure: gunzip waits while what it produced is not yet taken (see _read), so
      // a slow disk cannot make inflated data pile up in memory.
      gunzip.on('data', (d: Buffer) => {
        if (!this.push(d)) gunzip.pause();
      });
      this.resumeInner = () => gunzip.resume();
      this.innerBuffered = () => gunzip.readableLength + gunzip.writableLength;
      let failed: Error | undefined;
      // The callback waiting on gunzip (drain or end); an error must reach it, or the stream hangs.
      let waiting: TransformCallback | undefined;
      const settle = (e: Error | null) => {
        const cb = waiting;
        waiting = undefined;
        cb?.(e);
      };
      gunzip.on('error', (e) => {
        failed = new Error(`gzip: ${e.message}`);
        settle(failed);
      });
      gunzip.on('drain', () => settle(null));
      gunzip.on('end', () => settle(null));
      this.inner = (chunk, final, cb) => {
        if (failed) return cb(failed);
        if (final) {
          waiting = cb;
          gunzip.end(chunk.length > 0 ? chunk : undefined);
          return;
        }
        if (gunzip.write(chunk)) cb();
        else waiting = cb;
      };
    } else if (this.chosen === 'zstd') {
      const z = new ZstdDecompress((data) => this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength)));
      // fzstd inflates all it is given at once: feed it 64 KiB at a time, and wait while
      // the output is not taken, so a highly compressed layer never sits in memory.
      this.inner = (chunk, final, cb) => {
        (async () => {
          for (let offset = 0; ; offset += ZSTD_SLICE) {
            const last = offset + ZSTD_SLICE >= chunk.length;
            z.push(new Uint8Array(chunk.buffer, chunk.byteOffset + offset, Math.max(0, Math.min(ZSTD_SLICE, chunk.length - offset))), final && last);
            if (last) return;
            if (this.readableLength >= this.readableHighWaterMark) await new Promise<void>((resolve) => (this.readWanted = resolve));
          }
        })().then(
          () => cb(),
          (e: unknown) => cb(new Error(`zstd: ${(e as Error).message}`)),
        );
      };
    } else {
      this.inner = (chunk, _final, cb) => cb(null, chunk.length > 0 ? chunk : undefined);
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.inner) return this.inner(chunk, false, cb);
    this.head.push(chunk);
    this.headLength += chunk.length;
    if (this.headLength < 4) return cb();
    const first = Buffer.concat(this.head);
    this.head = [];
    this.choose(first);
    this.run(first, false, cb);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.inner) this.choose(Buffer.concat(this.head));
    const rest = this.head.length > 0 ? Buffer.concat(this.head) : Buffer.alloc(0);
    this.head = [];
    this.run(rest, true, cb);
  }

  private run(chunk: Buffer, final: boolean, cb: TransformCallback): void {
    const inner = this.inner;
    if (!inner) return cb(new Error('decompressor not initialised'));
    inner(chunk, final, cb);
  }
}

export function digestOf(h: Hash): Digest {
  const d = digestFromHex('sha256', h.digest('hex'));
  if (d._tag === 'Left') throw new Error('unreachable: sha256 produced an invalid digest');
  return d.right;
}

/** Bytes each stage (inflate, hash, write) may hold queued, so none waits on the next hand-off. */
const STAGE_BYTES = 1 << 20;

/** Input fzstd is given at once (its output for one push is held whole). */
const ZSTD_SLICE = 64 * 1024;

/** Bytes given to the decompressor at once. */
const GATHER_BYTES = 1 << 20;

/** What a {@link BlobSink} measured. */
export interface SinkResult {
  readonly rawDigest: Digest;
  readonly rawSize: number;
  /** Decompressed (or sniffed, or declared when nothing was decompressed). */
  readonly compression: Compression;
  /** sha256 and size of the decompressed bytes, when a tar file was written. */
  readonly content?: { readonly digest: Digest; readonly size: number };
}

/** Where a {@link BlobSink} writes: the uncompressed tar, the bytes as given, or both. */
export interface SinkTargets {
  /**
   * Existing empty file for the decompressed bytes, or an existing file to write them into
   * from byte `start` on (`direct`: the bulk with O_DIRECT, see {@link DirectFileWriter}).
   */
  readonly tar?: string | { readonly path: string; readonly start: number; readonly direct?: boolean };
  /** Existing empty file for the bytes as given (the blob itself). */
  readonly blob?: string;
}

/** {@link SinkTargets}, or the decompressed bytes handed to a stream (a {@link TarConsumer}'s, see {@link consumerWritable}). */
export type StreamSinkTargets = SinkTargets | { readonly tar: { readonly writable: Writable }; readonly blob?: string };

/** What an input writes a blob into (in this thread, or another: `offthread-sink.ts`). */
export interface LayerSink {
  /** Bytes accepted so far (the offset a resumed download continues from). */
  readonly received: number;
  /** Bytes held in memory, accepted and not yet written. */
  readonly bufferedBytes: number;
  /** Take the next bytes; waits while too much is held. Rejects once the sink failed. */
  write(chunk: Uint8Array): Promise<void>;
  /** All bytes given: finish the files and say what was measured. */
  end(): Promise<SinkResult>;
  /** Stop (on failure); resolves once the files are closed, left for their owner to release. */
  abort(reason: Error): Promise<void>;
}

/**
 * A push-based writer for one blob: hashes the bytes as given and, in one pass, writes
 * them to the blob file and/or decompresses them, hashing and counting the result, into
 * the tar file. Files are opened `r+`, so a file the scope already removed is never
 * recreated. Writes may continue across several source streams, which is how an
 * interrupted download resumes with `Range`.
 */
export class BlobSink implements LayerSink {
  private readonly raw = createHash('sha256');
  private rawSize = 0;
  private head: Buffer | undefined = Buffer.alloc(0);
  private readonly decompress: Decompressor | undefined;
  private readonly content = new HashCount({ highWaterMark: STAGE_BYTES });
  private readonly blobOut: ReturnType<typeof createWriteStream> | undefined;
  private readonly tarOut: Writable | undefined;
  private readonly done: Promise<unknown>;

  constructor(
    targets: string | StreamSinkTargets,
    private readonly compression: Compression | 'sniff',
  ) {
    const t: StreamSinkTargets = typeof targets === 'string' ? { tar: targets } : targets;
    const pending: Promise<unknown>[] = [];
    if (t.tar !== undefined) {
      // Uncompressed input is its own content: hashed once, as raw (280 MB: 0.16 s saved).
      this.decompress = new Decompressor(compression, (chosen) => (this.content.hashing = chosen !== 'none'));
      // `start` only for a place in a file: positional writes would fail on a pipe.
      const tarOut =
        typeof t.tar === 'string'
          ? createWriteStream(t.tar, { flags: 'r+', highWaterMark: STAGE_BYTES })
          : 'writable' in t.tar
            ? t.tar.writable
            : t.tar.direct
              ? new DirectFileWriter(t.tar.path, t.tar.start)
              : createWriteStream(t.tar.path, { flags: 'r+', start: t.tar.start, highWaterMark: STAGE_BYTES });
      this.tarOut = tarOut;
      if (tarOut instanceof DirectFileWriter) this.gatherBytes = 1;
      pending.push(pipeline(this.decompress, this.content, tarOut));
    }
    if (t.blob !== undefined) {
      const out = createWriteStream(t.blob, { flags: 'r+', highWaterMark: 1 << 20 });
      this.blobOut = out;
      pending.push(new Promise<void>((resolve, reject) => {
        out.once('finish', resolve);
        out.once('error', reject);
        out.once('close', () => (out.writableFinished ? resolve() : reject(out.errored ?? new Error('blob file closed early'))));
      }));
    }
    this.done = Promise.all(pending);
    this.done.catch(() => undefined); // observed through write()/end()
  }

  /**
   * Bytes held in memory between the decompressor and the tar file (queued in the streams,
   * not yet written). Bounded by stream buffers whatever the layer or its compression ratio.
   */
  get bufferedBytes(): number {
    const d = this.decompress;
    if (!d) return 0;
    return this.gatheredBytes + d.innerBuffered() + d.readableLength + d.writableLength + this.content.readableLength + this.content.writableLength + (this.tarOut?.writableLength ?? 0);
  }

  /** Bytes accepted so far (the offset a resumed download continues from). */
  get received(): number {
    return this.rawSize;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.raw.update(chunk);
    this.rawSize += chunk.length;
    if (this.head !== undefined && this.head.length < 4) this.head = Buffer.concat([this.head, chunk]).subarray(0, 4);
    const waits: Promise<unknown>[] = [];
    if (this.blobOut && !this.blobOut.write(chunk)) waits.push(once(this.blobOut, 'drain'));
    if (this.decompress) {
      // Network chunks are ~64 KiB: gathered to 1 MiB, the decompressor runs ~16× fewer
      // thread-pool jobs (each with a hand-off back to the main thread).
      this.gathered.push(chunk);
      this.gatheredBytes += chunk.length;
      if (this.gatheredBytes >= this.gatherBytes && !this.decompress.write(this.takeGathered())) waits.push(once(this.decompress, 'drain'));
    }
    if (waits.length > 0) await Promise.race([Promise.all(waits), this.done]);
  }

  private gathered: Uint8Array[] = [];
  private gatheredBytes = 0;
  /** Chunks are gathered to this many bytes for the decompressor (a direct writer gathers itself: no copy here). */
  private gatherBytes = GATHER_BYTES;

  private takeGathered(): Buffer {
    const out = this.gathered.length === 1 ? Buffer.from((this.gathered[0] as Uint8Array).buffer, (this.gathered[0] as Uint8Array).byteOffset, (this.gathered[0] as Uint8Array).byteLength) : Buffer.concat(this.gathered, this.gatheredBytes);
    this.gathered = [];
    this.gatheredBytes = 0;
    return out;
  }

  async end(): Promise<SinkResult> {
    if (this.decompress && this.gatheredBytes > 0) this.decompress.write(this.takeGathered());
    this.decompress?.end();
    this.blobOut?.end();
    await this.done;
    const rawDigest = digestOf(this.raw);
    const declared = this.compression === 'sniff' ? sniffCompression(this.head ?? new Uint8Array()) : this.compression;
    return {
      rawDigest,
      rawSize: this.rawSize,
      compression: this.decompress ? this.decompress.chosen : declared,
      // Without a tar file nothing was decompressed: the content is unknown.
      ...(this.decompress ? { content: { digest: this.content.hashing ? digestOf(this.content.hash) : rawDigest, size: this.content.size } } : {}),
    };
  }

  /** Stop writing (on failure); the files are left for their owner to release. */
  async abort(reason: Error): Promise<void> {
    this.decompress?.destroy(reason);
    this.blobOut?.destroy(reason);
    await this.done.catch(() => undefined);
  }
}

/**
 * A Writable that hands each chunk to `consumer` and waits for its back-pressure. It never
 * ends the consumer: the caller does, once the digests are checked.
 */
export function consumerWritable(consumer: TarConsumer): Writable {
  return new Writable({
    highWaterMark: STAGE_BYTES,
    write(chunk: Buffer, _enc, cb) {
      consumer.write(chunk).then(() => cb(), cb);
    },
  });
}

/** Copy a whole stream into the file at `path` through a {@link BlobSink}. */
export async function spoolToFile(
  source: AsyncIterable<Uint8Array>,
  path: string,
  options: { readonly compression: Compression | 'sniff'; readonly signal?: AbortSignal },
): Promise<SpoolResult> {
  const sink = new BlobSink(path, options.compression);
  try {
    for await (const chunk of source) {
      if (options.signal?.aborted) throw options.signal.reason instanceof Error ? options.signal.reason : new Error('aborted');
      await sink.write(chunk);
    }
    const r = await sink.end();
    const content = r.content as { digest: Digest; size: number };
    return { rawDigest: r.rawDigest, rawSize: r.rawSize, contentDigest: content.digest, contentSize: content.size, compression: r.compression };
  } catch (e) {
    await sink.abort(e instanceof Error ? e : new Error(String(e)));
    throw e;
  }
}

/** Read a whole stream into memory, refusing more than `limit` bytes. */
export async function readCapped(source: AsyncIterable<Uint8Array>, limit: number, what: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    if (total > limit) throw new Error(`${what} is over the ${limit}-byte limit`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
