/**
 * The shell side of `search` and `check`: streaming owned layer files from disk (the
 * {@link ReadLayer} port's node implementation), scanning a layer for `check` in one pass
 * (sha256 of every byte and the tar headers), and the output that feeds a check run.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { CheckRun, type CheckMode, LayerScanBuilder, type LayerScan } from '../core/check.js';
import type { Digest } from '../core/digest.js';
import type { ImageElement, LayerDescriptor } from '../core/element.js';
import { AbortError } from '../core/errors.js';
import { type ReadLayer, TarFormatError, tarEntries } from '../core/filters/search.js';
import type { TempFile } from '../core/ownership.js';
import type { ImageOutput, OutputSummary, StageContext } from '../core/pipeline/types.js';
import { sha256Bytes } from './fs/hash.js';

const CHUNK = 1 << 20;

/** Stream a temp file the caller owns, 1 MiB at a time; aborting `signal` stops it. */
export const readLayerFile: ReadLayer = (file: TempFile, signal: AbortSignal) => ({
  async *[Symbol.asyncIterator]() {
    const stream = createReadStream(file.path, { highWaterMark: CHUNK, signal });
    try {
      for await (const chunk of stream) yield chunk as Uint8Array;
    } catch (e) {
      if (signal.aborted) throw new AbortError(signal.reason);
      throw e;
    } finally {
      stream.destroy();
    }
  },
});

/**
 * Read a delivered layer once: every byte goes through sha256 (the recomputed diff_id)
 * and the tar parser (entry findings). A file that is not a valid tar is still hashed
 * to its end; the tar problem becomes `tarError`.
 */
export async function scanLayer(file: TempFile, layer: LayerDescriptor, signal: AbortSignal, read: ReadLayer = readLayerFile): Promise<LayerScan> {
  const builder = new LayerScanBuilder(layer.index, layer.diffId);
  const hash = createHash('sha256');
  let size = 0;
  const it = read(file, signal)[Symbol.asyncIterator]();
  const pull = async (): Promise<IteratorResult<Uint8Array>> => {
    const r = await it.next();
    if (!r.done) {
      hash.update(r.value);
      size += r.value.length;
    }
    return r;
  };
  // The tar parser reads through this view; stopping it early leaves the file open, so
  // the rest can still be hashed.
  const view: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => ({ next: pull, return: async () => ({ done: true as const, value: undefined }) }),
  };
  let tarError: string | undefined;
  try {
    try {
      for await (const entry of tarEntries(view)) builder.entry(entry);
    } catch (e) {
      if (!(e instanceof TarFormatError) || signal.aborted) throw e;
      tarError = e.message;
    }
    for (;;) {
      const r = await pull();
      if (r.done) break;
    }
  } finally {
    await it.return?.(undefined);
  }
  if (signal.aborted) throw new AbortError(signal.reason);
  return builder.finish({ computedDiffId: `sha256:${hash.digest('hex')}` as Digest, size, tarError });
}

/**
 * The sink of a check run. It consumes the stream, feeding the run: the config (with its
 * measured digest and size in full mode), each delivered layer's scan (then it releases
 * the file), each layer delivered without data. `wants` answers true in full mode (every
 * layer is read) and false in fast mode (nothing is stored; the input drains layers).
 */
export function checkOutput(run: CheckRun, mode: CheckMode, scan: typeof scanLayer = scanLayer): ImageOutput {
  return {
    description: 'check',
    order: 'completion',
    wants: async () => mode === 'full',
    async consume(elements: AsyncIterable<ImageElement>, ctx: StageContext): Promise<OutputSummary> {
      let layers = 0;
      let skipped = 0;
      let bytes = 0;
      for await (const element of elements) {
        if (element._tag === 'Config') {
          run.addConfig(element, mode === 'full' ? { digest: sha256Bytes(element.raw), size: element.raw.length } : undefined);
          continue;
        }
        layers++;
        const p = element.payload;
        if (p._tag === 'Skipped') {
          skipped++;
          if (mode === 'full') run.addSkipped(element.layer, p.reason);
          continue;
        }
        try {
          if (mode === 'full') {
            const result = await scan(p.file, element.layer, ctx.signal);
            bytes += result.size;
            run.addLayer(result);
          }
        } finally {
          await ctx.effects.perform({ _tag: 'Release', file: p.file, owner: ctx.owner });
        }
      }
      return { destination: 'check', layers, layersSkipped: skipped, bytes, copiedAcrossDevices: 0 };
    },
  };
}
