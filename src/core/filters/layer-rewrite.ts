/**
 * What every content-changing filter shares: rewrite each layer's tar into a new temp
 * file through {@link rewriteTar}, give the layer its new diff_id, pass the source config
 * on first marked `provisional`, and send the final config after the layers with
 * `rootfs.diff_ids` rewritten (the config rule of element.ts).
 *
 * The bytes reach this pure module through a port ({@link LayerFiles}): the shell streams
 * a temp file it owns and writes a new one, hashing it as it writes.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { describeDecodeError, parseJsonBytes } from '../codecs/common.js';
import { decodeImageConfig } from '../codecs/oci.js';
import { type Digest, digestHex } from '../digest.js';
import { type ConfigElement, type DataPayload, Forms, type ImageElement, type LayerDescriptor, type LayerElement, releaseElement, type TarFile, tarOf } from '../element.js';
import { DownstreamForms, ensureTar, keepForms } from '../pipeline/layer-forms.js';
import { AbortError, hasCode, inputError, InternalError, OccystrapError } from '../errors.js';
import { MediaTypes } from '../media-types.js';
import type { TempFile } from '../ownership.js';
import type { ImageFilter, StageContext, WantsLayer } from '../pipeline/types.js';
import { sha256Digest } from '../sha256.js';
import { emptyRewriteStats, rewriteTar, type RewriteStats, type TarTransform } from '../tar/rewrite.js';
import { TarReadError } from '../tar/reader.js';
import type { FilterChainEntry } from './chain-hash.js';

// ------------------------------------------------------------------ port

/** Port: the layer bytes of temp files. The caller owns `file` for the whole call. */
export interface LayerFiles {
  /** Stream the bytes of `file`. */
  read(file: TempFile, signal?: AbortSignal): AsyncIterable<Uint8Array>;
  /** Write `data` into the (empty) file `file`, returning the sha256 and length of what was written. */
  write(file: TempFile, data: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<{ readonly digest: Digest; readonly size: number }>;
}

// ---------------------------------------------------------- descriptors

/** The media type of the uncompressed form of a layer type (Docker or OCI family). */
function uncompressedMediaType(mediaType: string): string {
  return mediaType.startsWith('application/vnd.docker.') ? MediaTypes.dockerLayerTar : MediaTypes.ociLayer;
}

/**
 * A layer descriptor after a rewrite gave it `diffId`: the same position, the new diff_id
 * hex as its source id (occystrap renames a rewritten layer so), the uncompressed media
 * type, and no compressed size (it described the old blob). Unchanged when the diff_id is.
 */
export function rewrittenDescriptor(d: LayerDescriptor, diffId: Digest): LayerDescriptor {
  if (diffId === d.diffId) return d;
  return { index: d.index, sourceId: digestHex(diffId), diffId, mediaType: uncompressedMediaType(d.mediaType) };
}

/**
 * The config with `rootfs.diff_ids` replaced by `diffIds` (by position). When nothing
 * changes, the element is returned as is (same bytes, same digest). Otherwise the raw JSON
 * is parsed, the list replaced, and the document re-serialised with `JSON.stringify`:
 * compact, keys in their original order, everything else (history included) kept. The
 * digest is the sha256 of the new bytes; the manifest digest the image was addressed by no
 * longer applies and is dropped.
 */
export function rewriteConfig(config: ConfigElement, diffIds: readonly Digest[]): ConfigElement {
  if (diffIds.length !== config.layers.length) throw new InternalError(`rewriteConfig: ${diffIds.length} diff_ids for ${config.layers.length} layers`);
  if (diffIds.every((d, i) => d === config.layers[i]?.diffId)) return config;
  config.layers.forEach((d, i) => {
    if (d.index !== i) throw new InternalError(`rewriteConfig: the config's layer ${i} says it is at position ${d.index}`);
  });
  const parsed = parseJsonBytes('image config', config.raw);
  if (E.isLeft(parsed)) throw inputError(describeDecodeError(parsed.left));
  const doc = parsed.right as { rootfs?: { diff_ids?: unknown } };
  const current = doc.rootfs?.diff_ids;
  if (!Array.isArray(current) || current.length !== diffIds.length) {
    throw inputError(`image config: rootfs.diff_ids has ${Array.isArray(current) ? current.length : 'no'} entries for ${diffIds.length} layers`);
  }
  (doc.rootfs as { diff_ids: unknown }).diff_ids = [...diffIds];
  const raw = new TextEncoder().encode(JSON.stringify(doc));
  const decoded = decodeImageConfig('image config', raw);
  if (E.isLeft(decoded)) throw inputError(describeDecodeError(decoded.left));
  return {
    _tag: 'Config',
    image: { name: config.image.name, tag: config.image.tag, ...(config.image.registry !== undefined ? { registry: config.image.registry } : {}) },
    digest: sha256Digest(raw),
    raw,
    config: decoded.right,
    layers: config.layers.map((d, i) => rewrittenDescriptor(d, diffIds[i] as Digest)),
  };
}

// ---------------------------------------------------------------- filter

/** What a rewrite did to one layer (for logs). */
export interface LayerRewriteReport {
  readonly index: number;
  readonly from: Digest;
  readonly to: Digest;
  readonly size: number;
  readonly entries: number;
  readonly dropped: number;
}

export interface LayerRewriteOptions {
  /** The filter's name (messages, temp-file purposes). */
  readonly name: string;
  /** A fresh transform for each layer (a transform may keep per-layer state). */
  readonly transform: () => TarTransform;
  readonly files: LayerFiles;
  /** Called after each layer is rewritten. */
  readonly onLayer?: (report: LayerRewriteReport) => void;
  /** Largest PAX header or GNU long name accepted (default 4 MiB). */
  readonly maxExtendedHeaderBytes?: number;
  /** PAX records the transform removes from every entry (see `RewriteOptions.droppedRecords`). */
  readonly droppedRecords?: readonly string[];
  /** The filter's options in canonical form, for {@link filterChainHash} (default none). */
  readonly chainOptions?: Readonly<Record<string, unknown>>;
}

/** Raised by a transform that refuses an entry (code `ETRANSFORM`; the message says why and what to do). */
export class TransformError extends OccystrapError {
  constructor(message: string) {
    super('ETRANSFORM', message);
    this.name = 'TransformError';
  }
}

/**
 * A filter that rewrites the tar of every layer.
 *
 * - Layers: each owned layer is rewritten into a new temp file (created as this stage's
 *   owner); its diff_id is the sha256 of the new tar. The old file is released once the
 *   new one is complete. On failure the new file and the old one are both released and
 *   the error propagates. Layers are rewritten one at a time, in arrival order.
 * - Skipped layers: `wants` answers true, so an output never skips a layer this filter must
 *   rewrite. A layer skipped as a `duplicate` gets the new diff_id of the layer that carried
 *   its content (held until that one is rewritten); one whose content never arrives is an
 *   error.
 * - Config: the first config is passed on at once, marked `provisional`; the final one
 *   (the upstream final config when this filter follows another content filter) follows
 *   the last layer with the new diff_ids ({@link rewriteConfig}). Layers therefore
 *   stream to a manifest-order output as they are rewritten.
 * - Forms: asks for the tar of every layer; a layer that came only as a blob is inflated
 *   here (an `Inflate` effect) and its blob released; a rewritten layer carries its new
 *   tar only.
 * - Determinism: the output depends only on the input bytes and the transform.
 * - Cancellation: stopping early holds no file (the layer being rewritten is finished or
 *   released first); an abort stops the rewrite, releasing both files.
 */
export class LayerRewriteFilter implements ImageFilter {
  readonly name: string;
  /** What identifies this filter's effect on layers (see `chain-hash.ts`). */
  readonly chainEntry: FilterChainEntry;

  constructor(private readonly options: LayerRewriteOptions) {
    this.name = options.name;
    this.chainEntry = { name: options.name, options: options.chainOptions ?? {} };
  }

  private readonly downstream = new DownstreamForms();

  /**
   * The tar of every layer (never "present": the output cannot know the rewritten
   * layer), plus the blob when the stages after want one, so an unchanged layer can keep
   * the source's blob.
   */
  wants(inner: WantsLayer): WantsLayer {
    return this.downstream.wrap(inner, Forms.tar);
  }

  apply(elements: AsyncIterable<ImageElement>, ctx: StageContext): AsyncIterable<ImageElement> {
    return this.run(elements, ctx);
  }

  private async *run(elements: AsyncIterable<ImageElement>, ctx: StageContext): AsyncGenerator<ImageElement, void, undefined> {
    // The config the final one is made from, and whether an upstream final config is still to come.
    let config: ConfigElement | undefined;
    let upstreamFinalDue = false;
    const byIndex = new Map<number, Digest>();
    const byOriginal = new Map<Digest, Digest>();
    const waiting: LayerElement[] = [];
    const resolved = (e: LayerElement, diffId: Digest): LayerElement => {
      byIndex.set(e.layer.index, diffId);
      return { _tag: 'Layer', layer: rewrittenDescriptor(e.layer, diffId), payload: e.payload };
    };
    for await (const element of elements) {
      if (element._tag === 'Config') {
        if (!config) {
          config = element;
          upstreamFinalDue = element.provisional === true;
          yield { ...element, provisional: true };
          continue;
        }
        if (!upstreamFinalDue || element.provisional) throw inputError(`${this.name}: a second config arrived for one image`);
        config = element;
        upstreamFinalDue = false;
        continue;
      }
      if (element.payload._tag === 'Skipped') {
        const twin = byOriginal.get(element.layer.diffId);
        if (twin) yield resolved(element, twin);
        else waiting.push(element);
        continue;
      }
      const rewritten = await this.rewriteLayer(element, element.payload, ctx);
      byOriginal.set(element.layer.diffId, rewritten.layer.diffId);
      byIndex.set(element.layer.index, rewritten.layer.diffId);
      yield rewritten;
    }
    for (const element of waiting) {
      const twin = byOriginal.get(element.layer.diffId);
      if (!twin) {
        const why = element.payload._tag === 'Skipped' ? element.payload.reason : 'unknown';
        throw inputError(
          `${this.name}: layer ${element.layer.index} (diff_id ${element.layer.diffId}) arrived without data (${why}) and no other layer carried its content; ${this.name} has to rewrite every layer`,
        );
      }
      yield resolved(element, twin);
    }
    if (config) {
      if (upstreamFinalDue) throw inputError(`${this.name}: the final config never arrived after the layers`);
      const c = config;
      const final = rewriteConfig(
        c,
        c.layers.map((d) => byIndex.get(d.index) ?? byOriginal.get(d.diffId) ?? d.diffId),
      );
      yield final.provisional ? { ...final, provisional: false } : final;
    }
  }

  /** Rewrite one layer into a new temp file; releases the payload's files in every case. */
  private async rewriteLayer(element: LayerElement, payload: DataPayload, ctx: StageContext): Promise<LayerElement> {
    const { effects, owner, signal } = ctx;
    const { layer } = element;
    const release = (file: TempFile) => effects.perform({ _tag: 'Release', file, owner });
    const after = this.downstream.of(layer.index);
    let source: DataPayload;
    try {
      // The source blob is kept only while it may still pass on: if the rewrite changes nothing.
      source = (await ensureTar(layer, payload, { effects, owner, signal }, after.blob)).payload;
    } catch (error) {
      await releaseElement(effects, owner)(element).catch(() => undefined);
      throw this.describe(error, layer, signal);
    }
    const releaseSource = () => releaseElement(effects, owner)({ _tag: 'Layer', layer, payload: source });
    const old = (tarOf(source) as TarFile).file;
    let fresh: TempFile | undefined;
    let written: { readonly digest: Digest; readonly size: number };
    const stats: RewriteStats = emptyRewriteStats();
    try {
      fresh = await effects.perform({ _tag: 'CreateTemp', owner, purpose: `${this.name}-layer-${layer.index}` });
      const options = {
        signal,
        stats,
        ...(this.options.maxExtendedHeaderBytes !== undefined ? { maxExtendedHeaderBytes: this.options.maxExtendedHeaderBytes } : {}),
        ...(this.options.droppedRecords !== undefined ? { droppedRecords: this.options.droppedRecords } : {}),
      };
      written = await this.options.files.write(fresh, rewriteTar(this.options.files.read(old, signal), this.options.transform(), options), signal);
    } catch (error) {
      // Every file is still ours: release them; the scope is the safety net if that fails.
      if (fresh) await release(fresh).catch(() => undefined);
      await releaseSource().catch(() => undefined);
      throw this.describe(error, layer, signal);
    }
    // The transform kept every entry as it was: the source passes on byte for byte, even where
    // our encoder would have written the same entries differently (another tool's header
    // fields, record padding), so a filter that changes nothing never changes a diff_id.
    const unchanged = written.digest === layer.diffId || (stats.dropped === 0 && stats.changed === 0);
    this.options.onLayer?.({ index: layer.index, from: layer.diffId, to: unchanged ? layer.diffId : written.digest, size: unchanged ? ((tarOf(source) as TarFile).size ?? written.size) : written.size, entries: stats.entries, dropped: stats.dropped });
    if (unchanged) {
      // Unchanged: the source's forms pass on (its blob keeps the source's digest); the copy goes.
      try {
        await release(fresh);
      } catch (error) {
        await releaseSource().catch(() => undefined);
        throw error;
      }
      return { _tag: 'Layer', layer, payload: await keepForms(source, after, { effects, owner }) };
    }
    try {
      await releaseSource();
    } catch (error) {
      await release(fresh).catch(() => undefined);
      throw error;
    }
    return { _tag: 'Layer', layer: rewrittenDescriptor(layer, written.digest), payload: { _tag: 'Tar', tar: { file: fresh, size: written.size } } };
  }

  private describe(error: unknown, layer: LayerDescriptor, signal: AbortSignal): unknown {
    if (signal.aborted) return error instanceof AbortError ? error : new AbortError(signal.reason);
    const where = `${this.name}: layer ${layer.index} (diff_id ${layer.diffId})`;
    if (hasCode(error, 'ETAR')) return inputError(`${where} is not a tar we can rewrite: ${error.message} (at byte ${(error as TarReadError).offset})`, error);
    if (hasCode(error, 'ETRANSFORM')) return inputError(`${where}: ${error.message}`, error);
    return error;
  }
}
