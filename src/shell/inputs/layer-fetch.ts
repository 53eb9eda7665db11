/**
 * What the inputs that read layer blobs (registry://, ocidir://) share: the positions
 * whose blob an earlier position already carries, and one layer fetched in one pass into
 * the forms the pipeline asked for, with the blob's digest and the diff_id checked.
 *
 * @module
 */
import { type Digest, digestHex } from '../../core/digest.js';
import { type BlobDescriptor, type BlobStream, dataPayload, type LayerDescriptor, type LayerElement, type LayerForms, releaseElement, wantsAny } from '../../core/element.js';
import { parallelMap } from '../../core/pipeline/parallel-map.js';
import type { Compression } from '../../core/media-types.js';
import type { Effects, TempFile } from '../../core/ownership.js';
import type { InputContext, LayerOrder, ProgressObserver } from '../../core/pipeline/types.js';
import { openLayerSink } from '../fs/offthread-sink.js';
import type { LayerSink, SinkResult } from '../fs/spool.js';

/** True for a manifest position whose blob digest an earlier position has. */
export function repeatsAnEarlierBlob(blobs: readonly { readonly digest: Digest }[]): (index: number) => boolean {
  const first = new Map<string, number>();
  blobs.forEach((b, i) => {
    if (!first.has(b.digest)) first.set(b.digest, i);
  });
  return (index) => first.get((blobs[index] as { digest: Digest }).digest) !== index;
}

export interface LayerFetch {
  readonly layer: LayerDescriptor;
  readonly blob: BlobDescriptor;
  /** Declared compression, or 'sniff'. */
  readonly compression: Compression | 'sniff';
  readonly effects: Effects;
  readonly owner: string;
  /** The fetch's signal (also stops waiting for a place downstream offered). */
  readonly signal: AbortSignal;
  /** Write the blob's bytes into the sink (downloading, or reading a file). */
  readonly fill: (sink: LayerSink) => Promise<void>;
  /** The error for a fill that failed (a network error, bytes that do not decompress). */
  readonly failed: (error: unknown) => Promise<unknown> | unknown;
  /** Checks of the result (size, digest, diff_id) that throw the input's own errors. */
  readonly verify: (result: SinkResult) => void;
  /** Told the bytes taken so far (the pipeline's observer, from the input's context). */
  readonly progress?: ProgressObserver | undefined;
}

/** The sink with its `write` replaced by `write` (which is given the sink's own). */
function withWrite(sink: LayerSink, write: (chunk: Uint8Array) => Promise<void>): LayerSink {
  return {
    get received() {
      return sink.received;
    },
    get bufferedBytes() {
      return sink.bufferedBytes;
    },
    write,
    end: () => sink.end(),
    abort: (reason) => sink.abort(reason),
  };
}

/** The sink, telling `report` how many bytes it holds after each write. */
function meteredSink(sink: LayerSink, report: (bytes: number) => void): LayerSink {
  return withWrite(sink, async (chunk) => {
    await sink.write(chunk);
    report(sink.received);
  });
}

/** The sink, giving each chunk to `stream` as well (both must take it before the next). */
function teeSink(sink: LayerSink, stream: BlobStream): LayerSink {
  return withWrite(sink, async (chunk) => {
    await Promise.all([sink.write(chunk), stream.write(chunk)]);
  });
}

/**
 * Fetch one layer: `Skipped('duplicate')` and `Skipped('present')` are the caller's; here
 * the forms asked for are made in one pass (a temp file each) and verified. A stream the
 * destination offered for the blob (`forms.stream`) is given the same bytes as they
 * arrive, told `end` once the blob is verified (the blob is then marked `streamed`), and
 * `abort` on any failure.
 *
 * - Errors: `failed`/`verify` decide the error; the files made are released.
 * - Ownership: the returned element's files are the caller's (`owner`); a stream owns none.
 */
export async function fetchLayerForms(f: LayerFetch, forms: LayerForms): Promise<{ readonly element: LayerElement; readonly inflated: boolean }> {
  const { effects, owner, layer, blob } = f;
  if (!wantsAny(forms)) return { element: { _tag: 'Layer', layer, payload: { _tag: 'Skipped', reason: 'present' } }, inflated: false };
  const hex = digestHex(blob.digest).slice(0, 16);
  const made: TempFile[] = [];
  let stream: BlobStream | undefined;
  try {
    // A place downstream offered: wait for this layer's turn there, else a temp file.
    const placed = forms.tar && forms.place ? await forms.place.claim(f.signal) : undefined;
    const tarFile = forms.tar && !placed ? await effects.perform({ _tag: 'CreateTemp', owner, purpose: `layer-${hex}` }) : undefined;
    if (tarFile) made.push(tarFile);
    const blobFile = forms.blob ? await effects.perform({ _tag: 'CreateTemp', owner, purpose: `blob-${hex}` }) : undefined;
    if (blobFile) made.push(blobFile);
    const tarTarget = placed ? { path: placed.file.path, start: placed.offset } : tarFile?.path;
    stream = blobFile && forms.stream ? forms.stream.open(f.signal) : undefined;
    const fileSink = openLayerSink({ ...(tarTarget !== undefined ? { tar: tarTarget } : {}), ...(blobFile ? { blob: blobFile.path } : {}) }, f.compression, blob.size);
    const sink = stream ? teeSink(fileSink, stream) : fileSink;
    let result: SinkResult;
    try {
      const fetched = f.progress?.fetched?.bind(f.progress);
      await f.fill(fetched ? meteredSink(sink, (n) => fetched(layer.index, n, blob.size)) : sink);
      result = await sink.end();
    } catch (e) {
      await sink.abort(e instanceof Error ? e : new Error(String(e)));
      throw await f.failed(e);
    }
    f.verify(result);
    stream?.end();
    const tar = tarFile && result.content ? { file: tarFile, size: result.content.size } : undefined;
    const blobForm = blobFile
      ? { file: blobFile, digest: blob.digest, size: result.rawSize, mediaType: blob.mediaType, compression: result.compression, ...(stream ? { streamed: stream.id } : {}) }
      : undefined;
    stream = undefined;
    const inflated = result.content !== undefined && result.compression !== 'none';
    if (placed && result.content) {
      const payload = { _tag: 'Placed' as const, placed: { target: placed, size: result.content.size }, ...(blobForm ? { blob: blobForm } : {}) };
      return { element: { _tag: 'Layer', layer, payload }, inflated };
    }
    return { element: { _tag: 'Layer', layer, payload: dataPayload(tar, blobForm) }, inflated };
  } catch (e) {
    stream?.abort(e instanceof Error ? e : new Error(String(e)));
    for (const file of made) await effects.perform({ _tag: 'Release', file, owner });
    throw e;
  }
}

/**
 * Every layer of the manifest through `fetch`, `concurrency` at once, yielded as each
 * completes; results never delivered (an error, an early stop) are released as `owner`.
 * With `order: 'completion'` the largest blobs start first (see {@link InputContext.order}).
 */
export function fetchInParallel(
  layers: readonly LayerDescriptor[],
  fetch: (layer: LayerDescriptor, signal: AbortSignal) => Promise<LayerElement>,
  options: { readonly effects: Effects; readonly owner: string; readonly signal: AbortSignal; readonly concurrency: number; readonly order?: LayerOrder | undefined },
): AsyncIterable<LayerElement> {
  const started = options.order === 'completion' ? [...layers].sort((a, b) => (b.blob?.size ?? b.size ?? 0) - (a.blob?.size ?? a.size ?? 0)) : layers;
  async function* positions() {
    yield* started;
  }
  return parallelMap(fetch, { concurrency: options.concurrency, order: 'completion', dispose: releaseElement(options.effects, options.owner), signal: options.signal })(positions());
}
