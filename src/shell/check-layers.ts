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
import { type LayerDescriptor, releaseElement, tarOf } from '../core/element.js';
import { AbortError } from '../core/errors.js';
import { type ReadLayer, tarEntries } from '../core/filters/search.js';
import { TarReadError } from '../core/tar/reader.js';
import type { TempFile } from '../core/ownership.js';
import { copyInto, type ImageDestination, type PutLayerResult } from '../core/pipeline/copy-image.js';
import type { ImageOutput } from '../core/pipeline/types.js';
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
      if (!(e instanceof TarReadError) || signal.aborted) throw e;
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
 * The sink of a check run, as destination operations: the config (with its measured
 * digest and size in full mode), each delivered layer's scan (then its file is
 * released), each layer delivered without data. In full mode every layer's tar is read;
 * in fast mode `has` answers true, so nothing is fetched or stored.
 */
export function checkOutput(run: CheckRun, mode: CheckMode, scan: typeof scanLayer = scanLayer): ImageOutput {
  const destination: ImageDestination<null> = {
    description: 'check',
    order: 'completion',
    needs: { _tag: 'Tar' },
    has: async () => mode === 'fast',
    begin: async () => undefined,
    putConfig: async (config) => {
      run.addConfig(config, mode === 'full' ? { digest: sha256Bytes(config.raw), size: config.raw.length } : undefined);
    },
    async putLayer(layer, payload, ctx): Promise<PutLayerResult<null>> {
      try {
        const tar = tarOf(payload);
        if (!tar) throw new Error(`check: layer ${layer.index} arrived without its tar`);
        const result = await scan(tar.file, layer, ctx.signal);
        run.addLayer(result);
        return { stored: null, bytes: result.size };
      } finally {
        await releaseElement(ctx.effects, ctx.owner)({ _tag: 'Layer', layer, payload });
      }
    },
    async commit(image) {
      if (mode === 'full') for (const r of image.layers) if (r._tag !== 'Stored') run.addSkipped(r.layer, r._tag === 'Present' ? 'present' : 'duplicate');
      return { destination: 'check' };
    },
    abort: async () => undefined,
  };
  return copyInto(destination);
}
