// Helpers for pipeline-order-memory.test.ts: synthetic layer tars written to scope temp
// files, a synthetic ImageInput, counting wrappers, and archive readers.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tarStream from 'tar-stream';
import type { Digest } from '../../src/core/digest.js';
import { type ConfigElement, type ImageElement, type LayerDescriptor, wantsAny } from '../../src/core/element.js';
import type { ImageConfig } from '../../src/core/codecs/oci.js';
import type { ImageInput, ImageOutput, InputContext, OutputSummary, StageContext } from '../../src/core/pipeline/types.js';
import { encodeHeader, END_OF_ARCHIVE, paddingFor } from '../../src/core/tar/header.js';

export const MiB = 1 << 20;

export function sha256(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How a layer's bytes are produced: in memory (small) or streamed in 1 MiB chunks (large). */
export type LayerSpec =
  | { readonly kind: 'small'; readonly bytes: Uint8Array }
  | { readonly kind: 'big'; readonly dataBytes: number; readonly chunk: number; readonly diffId: Digest; readonly size: number };

/** A valid one-file layer tar with content distinct per `seed`. */
export function smallLayerTar(seed: number, dataLength = 100 + seed * 37): Uint8Array {
  const data = new Uint8Array(dataLength);
  for (let i = 0; i < data.length; i++) data[i] = (seed * 131 + i * 7) & 0xff;
  const header = encodeHeader({ name: `layer-${seed}/file-${seed}.bin`, type: 'file', size: data.length, mode: 0o644, uid: 0, gid: 0, mtime: 0 });
  const parts = [header, data, new Uint8Array(paddingFor(data.length)), END_OF_ARCHIVE];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The pieces of a big one-file layer tar, yielded in order; the data chunks reuse ONE
 * buffer (refilled with a per-chunk pattern), so producing it never holds more than
 * `chunk` bytes of data.
 */
function* bigLayerPieces(dataBytes: number, chunk: number): Generator<Uint8Array> {
  yield encodeHeader({ name: 'big/blob.bin', type: 'file', size: dataBytes, mode: 0o644, uid: 0, gid: 0, mtime: 0 });
  const buf = Buffer.alloc(chunk);
  for (let off = 0, k = 0; off < dataBytes; off += chunk, k++) {
    const n = Math.min(chunk, dataBytes - off);
    buf.fill((k * 29 + 1) & 0xff);
    yield n === chunk ? buf : buf.subarray(0, n);
  }
  yield new Uint8Array(paddingFor(dataBytes));
  yield END_OF_ARCHIVE;
}

/** A big layer's diff_id and size, computed by streaming its pieces (nothing retained). */
export function bigLayerSpec(dataBytes: number, chunk = MiB): LayerSpec {
  const h = createHash('sha256');
  let size = 0;
  for (const piece of bigLayerPieces(dataBytes, chunk)) {
    h.update(piece);
    size += piece.length;
  }
  return { kind: 'big', dataBytes, chunk, diffId: `sha256:${h.digest('hex')}` as Digest, size };
}

export function diffIdOf(spec: LayerSpec): Digest {
  return spec.kind === 'small' ? sha256(spec.bytes) : spec.diffId;
}

export function sizeOf(spec: LayerSpec): number {
  return spec.kind === 'small' ? spec.bytes.length : spec.size;
}

/** Writes a layer into an existing (scope-created, empty) temp file, streaming big ones. */
async function writeLayer(path: string, spec: LayerSpec): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    if (spec.kind === 'small') {
      await fh.write(spec.bytes, 0, spec.bytes.length, 0);
    } else {
      let pos = 0;
      for (const piece of bigLayerPieces(spec.dataBytes, spec.chunk)) {
        await fh.write(piece, 0, piece.length, pos);
        pos += piece.length;
      }
    }
  } finally {
    await fh.close();
  }
}

export interface SyntheticImage {
  readonly config: ConfigElement;
  readonly specs: readonly LayerSpec[];
}

export function syntheticImage(specs: readonly LayerSpec[], name = 'test/pipeline'): SyntheticImage {
  const diffIds = specs.map(diffIdOf);
  const config: ImageConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } };
  const raw = new TextEncoder().encode(JSON.stringify(config));
  const layers: LayerDescriptor[] = specs.map((s, index) => ({
    index,
    sourceId: digestHexOf(diffIds[index] as Digest),
    diffId: diffIds[index] as Digest,
    mediaType: 'application/vnd.docker.image.rootfs.diff.tar',
    size: sizeOf(s),
  }));
  return { config: { _tag: 'Config', image: { name, tag: 'latest' }, digest: sha256(raw), raw, config, layers }, specs };
}

export function digestHexOf(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

/**
 * A synthetic input: the config, then every layer in `order` (a permutation of manifest
 * indexes), each written to a scope temp file just before it is yielded, with
 * `delays[i]` ms of pause before the i-th layer.
 */
export function syntheticInput(image: SyntheticImage, order: readonly number[], delays: readonly number[] = []): ImageInput {
  return {
    description: 'synthetic',
    async *elements(ctx: InputContext): AsyncGenerator<ImageElement> {
      yield image.config;
      for (let i = 0; i < order.length; i++) {
        const index = order[i] as number;
        const layer = image.config.layers[index] as LayerDescriptor;
        const spec = image.specs[index] as LayerSpec;
        const delay = delays[i] ?? 0;
        if (delay > 0) await sleep(delay);
        if (!wantsAny(await ctx.wants(layer))) {
          yield { _tag: 'Layer', layer, payload: { _tag: 'Skipped', reason: 'present' } };
          continue;
        }
        const file = await ctx.effects.perform({ _tag: 'CreateTemp', owner: ctx.owner, purpose: 'layer' });
        try {
          await writeLayer(file.path, spec);
        } catch (e) {
          await ctx.effects.perform({ _tag: 'Release', file, owner: ctx.owner });
          throw e;
        }
        yield { _tag: 'Layer', layer, payload: { _tag: 'Tar', tar: { file, size: sizeOf(spec) } } };
      }
    },
  };
}

/** Counts elements the input produced and the output received; tracks the largest gap. */
export class FlowCounter {
  produced = 0;
  received = 0;
  maxOutstanding = 0;
  private waiters: { n: number; resolve: () => void }[] = [];
  inputDone = false;
  /** Pulls on the input in progress. */
  pulling = 0;

  onProduced(): void {
    this.produced++;
    this.maxOutstanding = Math.max(this.maxOutstanding, this.produced - this.received);
    this.wake();
  }

  onReceived(): void {
    this.received++;
  }

  /** Resolves once `produced - received >= n` or the input has finished. */
  outstandingReaches(n: number): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push({ n, resolve });
      this.wake();
    });
  }

  finishInput(): void {
    this.inputDone = true;
    this.wake();
  }

  private wake(): void {
    this.waiters = this.waiters.filter((w) => {
      if (this.inputDone || this.produced - this.received >= w.n) {
        w.resolve();
        return false;
      }
      return true;
    });
  }
}

/**
 * Wraps an input so every element is counted as it is produced, and `counter.pulling`
 * tells whether someone is waiting on the input's `next()` right now.
 */
export function countingInput(inner: ImageInput, counter: FlowCounter): ImageInput {
  return {
    description: inner.description,
    elements(ctx: InputContext): AsyncIterable<ImageElement> {
      return {
        [Symbol.asyncIterator]() {
          const it = inner.elements(ctx)[Symbol.asyncIterator]();
          return {
            async next() {
              counter.pulling++;
              try {
                const r = await it.next();
                if (r.done) counter.finishInput();
                else counter.onProduced();
                return r;
              } catch (e) {
                counter.finishInput();
                throw e;
              } finally {
                counter.pulling--;
              }
            },
            async return(v?: unknown) {
              counter.finishInput();
              return (await it.return?.(v)) ?? { done: true as const, value: undefined };
            },
          };
        },
      };
    },
  };
}

/**
 * Resolves once at least `n` elements are outstanding (or the input ended) and the
 * pipeline has stopped pulling from the input: nobody awaits the input's `next()` at a
 * macrotask boundary (all microtasks drained), i.e. the buffer's pump is parked.
 */
export async function pipelineFull(counter: FlowCounter, n: number): Promise<void> {
  for (;;) {
    await counter.outstandingReaches(n);
    await new Promise<void>((r) => setImmediate(r));
    if (counter.pulling === 0) return;
  }
}

/**
 * Wraps an output so each element is counted the moment the real output pulls it.
 * `beforeSecondPull`, when given, is awaited after the first element (the config) is
 * handed on and before the second is pulled: the output stalls, so the pipeline fills.
 */
export function countingOutput(inner: ImageOutput, counter: FlowCounter, beforeSecondPull?: () => Promise<void>): ImageOutput {
  return {
    description: inner.description,
    order: inner.order,
    wants: inner.wants,
    consume(elements: AsyncIterable<ImageElement>, ctx: StageContext): Promise<OutputSummary> {
      async function* counted(): AsyncGenerator<ImageElement> {
        let n = 0;
        for await (const e of elements) {
          counter.onReceived();
          yield e;
          if (++n === 1 && beforeSecondPull) await beforeSecondPull();
        }
      }
      return inner.consume(counted(), ctx);
    },
  };
}

export interface ArchiveEntry {
  readonly name: string;
  readonly type: string;
  readonly size: number;
  readonly digest: Digest;
  readonly data?: Buffer;
}

/** Every entry of a tar file in archive order, with its content digest (content kept when small). */
export async function readArchive(file: string): Promise<ArchiveEntry[]> {
  const extract = tarStream.extract();
  const entries: ArchiveEntry[] = [];
  const reading = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      const keep = (h.size ?? 0) < 1 << 16;
      for await (const chunk of entry) {
        hash.update(chunk as Buffer);
        if (keep) chunks.push(chunk as Buffer);
      }
      entries.push({
        name: h.name,
        type: String(h.type),
        size: h.size ?? 0,
        digest: `sha256:${hash.digest('hex')}` as Digest,
        ...(keep ? { data: Buffer.concat(chunks) } : {}),
      });
    }
  })();
  await pipeline(createReadStream(file), extract as unknown as Writable);
  await reading;
  return entries;
}

/** Samples arrayBuffers and rss until stopped; returns the peaks above the starting values. */
export function memorySampler(intervalMs = 2) {
  const base = process.memoryUsage();
  let peakAb = base.arrayBuffers;
  let peakRss = base.rss;
  const sample = () => {
    const m = process.memoryUsage();
    if (m.arrayBuffers > peakAb) peakAb = m.arrayBuffers;
    if (m.rss > peakRss) peakRss = m.rss;
  };
  const timer = setInterval(sample, intervalMs);
  return {
    sample,
    stop() {
      clearInterval(timer);
      sample();
      return { arrayBuffersIncrease: peakAb - base.arrayBuffers, rssIncrease: peakRss - base.rss, base };
    },
  };
}
