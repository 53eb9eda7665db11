/**
 * Give a layer the form a stage needs: the tar (decompress the blob with an `Inflate`
 * effect) or a blob (compress the tar with a `Compress` effect), keeping or dropping the
 * other form.
 *
 * @module
 */
import { type BlobFile, blobOf, dataPayload, type DataPayload, Forms, type LayerDescriptor, type LayerForms, type LayerPayload, type TarFile, tarOf, unionForms } from '../element.js';
import { digestError } from '../errors.js';
import { MediaTypes } from '../media-types.js';
import type { BlobCompression, Effects, TempFile } from '../ownership.js';
import type { WantsLayer } from './types.js';

export interface FormContext {
  readonly effects: Effects;
  /** The owner of the payload's files (and of any file made here). */
  readonly owner: string;
  /** Stops an Inflate or Compress under way. */
  readonly signal?: AbortSignal;
}

export interface FormResult {
  readonly payload: DataPayload;
  /** True when this call decompressed or compressed the layer. */
  readonly transcoded: boolean;
}

async function release(ctx: FormContext, file: TempFile): Promise<void> {
  await ctx.effects.perform({ _tag: 'Release', file, owner: ctx.owner });
}

/**
 * A payload with the layer's tar, made from the blob when the payload has none. The
 * inflated tar must hash to the descriptor's diff_id.
 *
 * - Errors: a failed inflate, or a tar whose digest is not the diff_id, raises (a
 *   mismatch is an `EDIGEST` error); the new file is released, the payload's files stay
 *   the caller's.
 * - Cancellation: `ctx.signal` travels in the effect; the handler stops when it (or the
 *   scope's close) aborts; same as an error.
 * - Ownership: the caller owns `payload`'s files before and the result's after. With
 *   `keepBlob` false the blob is released once the tar exists (so exactly the result's
 *   files remain the caller's).
 */
export async function ensureTar(layer: LayerDescriptor, payload: DataPayload, ctx: FormContext, keepBlob: boolean): Promise<FormResult> {
  const tar = tarOf(payload);
  const blob = blobOf(payload);
  if (tar) {
    if (blob && !keepBlob) {
      await release(ctx, blob.file);
      return { payload: dataPayload(tar, undefined), transcoded: false };
    }
    return { payload, transcoded: false };
  }
  const source = blob as BlobFile;
  const made = await ctx.effects.perform({
    _tag: 'Inflate',
    source: source.file,
    owner: ctx.owner,
    compression: source.compression,
    purpose: `layer-${layer.index}-tar`,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  if (made.digest !== layer.diffId) {
    await release(ctx, made.file);
    throw digestError(`layer ${layer.index} (blob ${source.digest}) uncompresses to ${made.digest}, but the config's diff_id is ${layer.diffId}`);
  }
  const madeTar: TarFile = { file: made.file, size: made.size };
  if (!keepBlob) await release(ctx, source.file);
  return { payload: dataPayload(madeTar, keepBlob ? source : undefined), transcoded: true };
}

/** The media type of a layer blob compressed with `compression`, in the layer's family (Docker or OCI). */
export function compressedMediaType(layerMediaType: string, compression: BlobCompression | 'none'): string {
  const docker = layerMediaType.startsWith('application/vnd.docker.');
  if (compression === 'gzip') return docker ? MediaTypes.dockerLayerGzip : MediaTypes.ociLayerGzip;
  if (compression === 'zstd') return docker ? MediaTypes.dockerLayerZstd : MediaTypes.ociLayerZstd;
  return docker ? MediaTypes.dockerLayerTar : MediaTypes.ociLayer;
}

/**
 * A payload with a blob, made from the tar (compressed with `compression`) when the
 * payload has none.
 *
 * - Errors: a failed compression raises; the new file is released, the payload's files
 *   stay the caller's.
 * - Cancellation: as errors.
 * - Ownership: as {@link ensureTar}, with `keepTar` deciding whether the tar stays.
 */
export async function ensureBlob(
  layer: LayerDescriptor,
  payload: DataPayload,
  ctx: FormContext,
  compression: BlobCompression,
  keepTar: boolean,
): Promise<FormResult> {
  const tar = tarOf(payload);
  const blob = blobOf(payload);
  if (blob) {
    if (tar && !keepTar) {
      await release(ctx, tar.file);
      return { payload: dataPayload(undefined, blob), transcoded: false };
    }
    return { payload, transcoded: false };
  }
  const source = tar as TarFile;
  const made = await ctx.effects.perform({
    _tag: 'Compress',
    source: source.file,
    owner: ctx.owner,
    compression,
    purpose: `layer-${layer.index}-${compression}`,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  const madeBlob: BlobFile = { file: made.file, digest: made.digest, size: made.size, mediaType: compressedMediaType(layer.mediaType, compression), compression };
  if (!keepTar) await release(ctx, source.file);
  return { payload: dataPayload(keepTar ? source : undefined, madeBlob), transcoded: true };
}

/**
 * The payload reduced to `forms`: files of other forms are released. With no file left
 * the layer becomes `Skipped: present` (the stage after asked for neither form: it has
 * the layer). A form asked for but missing is not made here.
 *
 * - Errors: a failed release propagates; files not yet released stay the caller's.
 * - Ownership: the caller owns the result's files.
 */
export async function keepForms(payload: DataPayload, forms: LayerForms, ctx: FormContext): Promise<LayerPayload> {
  const tar = tarOf(payload);
  const blob = blobOf(payload);
  const keptTar = tar && forms.tar ? tar : undefined;
  const keptBlob = blob && forms.blob ? blob : undefined;
  // A stage that asked for one form and gets only the other keeps it: it can be made into the one it needs.
  const fallbackTar = !keptTar && !keptBlob && tar && forms.blob ? tar : undefined;
  const fallbackBlob = !keptTar && !keptBlob && blob && forms.tar ? blob : undefined;
  const finalTar = keptTar ?? fallbackTar;
  const finalBlob = keptBlob ?? fallbackBlob;
  if (finalTar === tar && finalBlob === blob) return payload;
  if (tar && tar !== finalTar) await release(ctx, tar.file);
  if (blob && blob !== finalBlob) await release(ctx, blob.file);
  if (!finalTar && !finalBlob) return { _tag: 'Skipped', reason: 'present' };
  return dataPayload(finalTar, finalBlob);
}

/**
 * What the stages after a filter asked for, per layer: a filter that reads layers asks
 * the input for its own forms plus theirs, and afterwards passes on only theirs.
 */
export class DownstreamForms {
  private readonly asked = new Map<number, LayerForms>();

  /** `inner` (the stages after) plus `own`, remembering what `inner` answered. */
  wrap(inner: WantsLayer, own: LayerForms): WantsLayer {
    return async (layer) => {
      const forms = await inner(layer);
      this.asked.set(layer.index, forms);
      return unionForms(forms, own);
    };
  }

  /** What the stages after asked for layer `index`; both forms when nobody asked. */
  of(index: number): LayerForms {
    return this.asked.get(index) ?? Forms.both;
  }
}
