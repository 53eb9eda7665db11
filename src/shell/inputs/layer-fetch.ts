/**
 * What the inputs that read layer blobs (registry://, ocidir://) share: the positions
 * whose blob an earlier position already carries, and one layer fetched in one pass into
 * the forms the pipeline asked for, with the blob's digest and the diff_id checked.
 *
 * @module
 */
import { type Digest, digestHex } from '../../core/digest.js';
import { type BlobDescriptor, dataPayload, type LayerDescriptor, type LayerElement, type LayerForms, releaseElement, wantsAny } from '../../core/element.js';
import { parallelMap } from '../../core/pipeline/parallel-map.js';
import type { Compression } from '../../core/media-types.js';
import type { Effects, TempFile } from '../../core/ownership.js';
import { BlobSink, type SinkResult } from '../fs/spool.js';

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
  /** Write the blob's bytes into the sink (downloading, or reading a file). */
  readonly fill: (sink: BlobSink) => Promise<void>;
  /** The error for a fill that failed (a network error, bytes that do not decompress). */
  readonly failed: (error: unknown) => Promise<unknown> | unknown;
  /** Checks of the result (size, digest, diff_id) that throw the input's own errors. */
  readonly verify: (result: SinkResult) => void;
}

/**
 * Fetch one layer: `Skipped('duplicate')` and `Skipped('present')` are the caller's; here
 * the forms asked for are made in one pass (a temp file each) and verified.
 *
 * - Errors: `failed`/`verify` decide the error; the files made are released.
 * - Ownership: the returned element's files are the caller's (`owner`).
 */
export async function fetchLayerForms(f: LayerFetch, forms: LayerForms): Promise<{ readonly element: LayerElement; readonly inflated: boolean }> {
  const { effects, owner, layer, blob } = f;
  if (!wantsAny(forms)) return { element: { _tag: 'Layer', layer, payload: { _tag: 'Skipped', reason: 'present' } }, inflated: false };
  const hex = digestHex(blob.digest).slice(0, 16);
  const made: TempFile[] = [];
  try {
    const tarFile = forms.tar ? await effects.perform({ _tag: 'CreateTemp', owner, purpose: `layer-${hex}` }) : undefined;
    if (tarFile) made.push(tarFile);
    const blobFile = forms.blob ? await effects.perform({ _tag: 'CreateTemp', owner, purpose: `blob-${hex}` }) : undefined;
    if (blobFile) made.push(blobFile);
    const sink = new BlobSink({ ...(tarFile ? { tar: tarFile.path } : {}), ...(blobFile ? { blob: blobFile.path } : {}) }, f.compression);
    let result: SinkResult;
    try {
      await f.fill(sink);
      result = await sink.end();
    } catch (e) {
      await sink.abort(e instanceof Error ? e : new Error(String(e)));
      throw await f.failed(e);
    }
    f.verify(result);
    const tar = tarFile && result.content ? { file: tarFile, size: result.content.size } : undefined;
    const blobForm = blobFile ? { file: blobFile, digest: blob.digest, size: result.rawSize, mediaType: blob.mediaType, compression: result.compression } : undefined;
    return { element: { _tag: 'Layer', layer, payload: dataPayload(tar, blobForm) }, inflated: result.content !== undefined && result.compression !== 'none' };
  } catch (e) {
    for (const file of made) await effects.perform({ _tag: 'Release', file, owner });
    throw e;
  }
}

/**
 * Every layer of the manifest through `fetch`, `concurrency` at once, yielded as each
 * completes; results never delivered (an error, an early stop) are released as `owner`.
 */
export function fetchInParallel(
  layers: readonly LayerDescriptor[],
  fetch: (layer: LayerDescriptor, signal: AbortSignal) => Promise<LayerElement>,
  options: { readonly effects: Effects; readonly owner: string; readonly signal: AbortSignal; readonly concurrency: number },
): AsyncIterable<LayerElement> {
  async function* positions() {
    yield* layers;
  }
  return parallelMap(fetch, { concurrency: options.concurrency, order: 'completion', dispose: releaseElement(options.effects, options.owner), signal: options.signal })(positions());
}
