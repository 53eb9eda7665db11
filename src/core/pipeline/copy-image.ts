/**
 * The one copy loop: the rules every output shares, driving small destination
 * operations (in the spirit of containers/image's `ImageDestination`).
 *
 * @module
 */
import type { BlobStreamOffer, ConfigElement, DataPayload, ImageElement, LayerDescriptor, LayerElement, TarConsumerOffer, TarPlacement } from '../element.js';
import { Forms, ownedFiles } from '../element.js';
import { outputError } from '../errors.js';
import type { BlobCompression } from '../ownership.js';
import { ensureBlob, ensureTar } from './layer-forms.js';
import type { ImageOutput, LayerOrder, OutputSummary, StageContext, WantsLayer } from './types.js';

/** The form a destination stores a layer in. */
export type DestinationNeeds =
  /** The uncompressed tar (dir://, tar://, search, check, the extracting outputs). */
  | { readonly _tag: 'Tar' }
  /** A blob: the source's as it is, or the tar compressed with `compression` when there is none. */
  | { readonly _tag: 'Blob'; readonly compression: BlobCompression };

export interface PutLayerResult<S> {
  /** What the destination remembers about the stored layer, given back to `commit`. */
  readonly stored: S;
  /** Bytes of layer data written or moved into the destination. */
  readonly bytes: number;
  /** The destination already held this layer and kept its own copy (the files were released). */
  readonly kept?: boolean;
  /** The move had to copy across filesystems. */
  readonly copiedAcrossDevices?: boolean;
}

/** One manifest position at commit time. */
export type LayerRecord<S> =
  | { readonly _tag: 'Stored'; readonly layer: LayerDescriptor; readonly stored: S }
  /** The destination said it had the layer; nothing was fetched. */
  | { readonly _tag: 'Present'; readonly layer: LayerDescriptor }
  /** The same diff_id as the layer at position `of`, whose data came with that element. */
  | { readonly _tag: 'Duplicate'; readonly layer: LayerDescriptor; readonly of: number };

export interface CommittedImage<S> {
  /** The image's config: the final one when a filter changed the layers. */
  readonly config: ConfigElement;
  /** One record per manifest position, in manifest order. */
  readonly layers: readonly LayerRecord<S>[];
}

/**
 * What an output implements: the operations the copy loop calls. The loop enforces the
 * element rules (config first, one image, every layer once, the final config after the
 * layers, the counts), gives each layer the form the destination needs, and calls:
 *
 * `begin` once with the first config → `putLayer` per layer with data (up to
 * `concurrency` at once, in the order the pipeline delivers: manifest order when `order`
 * is `'manifest'`) → `putConfig` once with the final config (right after `begin` when the
 * first config is final) → `commit` once; on any failure after `begin` was called,
 * `abort` once instead of `commit`, after every `putLayer` under way has settled.
 */
export interface ImageDestination<S = unknown> {
  readonly description: string;
  readonly order: LayerOrder;
  readonly needs: DestinationNeeds;
  /** `putLayer` calls at once (default 1). */
  readonly concurrency?: number;
  /**
   * A place for this layer's tar in the destination itself (destinations that need `Tar`):
   * the input may write the tar there and deliver it `Placed`, instead of a temp file that
   * `putLayer` would copy. `putLayer` then receives the `Placed` payload.
   */
  offer?(layer: LayerDescriptor): TarPlacement | undefined;
  /**
   * A stream for this layer's blob bytes as the input fetches them (destinations that need
   * `Blob`): the destination copies them while the download runs, and `putLayer` then
   * receives the blob file marked `streamed` with the stream's id.
   */
  stream?(layer: LayerDescriptor): BlobStreamOffer | undefined;
  /**
   * A consumer for this layer's tar bytes as the input reads them (destinations that need
   * `Tar` and apply a tar as it streams: the extracting outputs). `putLayer` then receives
   * the `Consumed` payload, and waits for the consumer's work. Asked before `offer`.
   */
  consume?(layer: LayerDescriptor): TarConsumerOffer | undefined;
  /** May the input skip this layer? True only when the destination holds it (verified). */
  has?(layer: LayerDescriptor): Promise<boolean>;
  /** The run starts (check the target, take locks). Its failure leads to `abort`. */
  begin(config: ConfigElement, ctx: StageContext): Promise<void>;
  /**
   * Store one layer. The destination owns `payload`'s files from the call on: it moves or
   * releases each before it returns or throws.
   */
  putLayer(layer: LayerDescriptor, payload: DataPayload, ctx: StageContext): Promise<PutLayerResult<S>>;
  /** The image's final config (its bytes are what the destination writes). */
  putConfig(config: ConfigElement, ctx: StageContext): Promise<void>;
  /** Make the image visible (manifest, index, rename into place). */
  commit(image: CommittedImage<S>, ctx: StageContext): Promise<{ readonly destination: string }>;
  /** Remove what this run added. Called at most once; must not throw for clean-up trouble. */
  abort(ctx: StageContext): Promise<void>;
}

type Pending = { readonly _tag: 'Pending'; readonly layer: LayerDescriptor };

/**
 * An {@link ImageOutput} that runs the copy loop into `destination`.
 *
 * - Errors: a broken element rule (a layer before the config, a second image, a layer
 *   twice or out of range, missing layers, descriptors that disagree with the final
 *   config) is an `EOUTPUT` error; any destination error propagates. Either way the
 *   loop waits for the puts under way, calls `abort`, and raises the first error.
 * - Cancellation: the pipeline's guarded stream raises an `AbortError`; same clean-up.
 * - Ownership: the loop owns each delivered element's files until it passes them to
 *   `putLayer` (releasing those of elements it refuses, and forms the destination does
 *   not need); `Inflate`/`Compress` effects it performs make files it owns until passed.
 *
 * @example
 * ```ts
 * import { copyInto, runPipeline, type ImageDestination } from 'occystrap/core';
 * const output = copyInto(myDestination);
 * await runPipeline({ input, output, effects });
 * ```
 */
export function copyInto<S>(destination: ImageDestination<S>): ImageOutput {
  return new CopyOutput(destination);
}

/** The class form of {@link copyInto}, for outputs that are a destination plus the loop. */
export class CopyOutput<S> implements ImageOutput {
  readonly description: string;
  readonly order: LayerOrder;

  constructor(readonly destination: ImageDestination<S>) {
    this.description = destination.description;
    this.order = destination.order;
  }

  readonly wants: WantsLayer = async (layer) => {
    if (await this.destination.has?.(layer)) return Forms.none;
    if (this.destination.needs._tag !== 'Tar') {
      const stream = this.destination.stream?.(layer);
      return stream ? { ...Forms.blob, stream } : Forms.blob;
    }
    const consume = this.destination.consume?.(layer);
    if (consume) return { ...Forms.tar, consume };
    const place = this.destination.offer?.(layer);
    return place ? { ...Forms.tar, place } : Forms.tar;
  };

  consume(elements: AsyncIterable<ImageElement>, ctx: StageContext): Promise<OutputSummary> {
    return runCopy(this.destination, elements, ctx);
  }
}

async function runCopy<S>(destination: ImageDestination<S>, elements: AsyncIterable<ImageElement>, ctx: StageContext): Promise<OutputSummary> {
  const what = destination.description;
  const fail = (message: string) => outputError(`${what}: ${message}`);
  const { effects, owner } = ctx;
  const releaseAll = async (element: ImageElement) => {
    for (const file of ownedFiles(element)) await effects.perform({ _tag: 'Release', file, owner }).catch(() => undefined);
  };
  const concurrency = Math.max(1, destination.concurrency ?? 1);
  let first: ConfigElement | undefined;
  let final: ConfigElement | undefined;
  let begun = false;
  const records = new Map<number, LayerRecord<S> | Pending>();
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let bytes = 0;
  let skipped = 0;
  let copied = 0;
  let inflated = 0;
  let compressed = 0;

  const put = async (element: LayerElement, payload: DataPayload) => {
    const formCtx = { effects, owner, signal: ctx.signal };
    let ready: DataPayload;
    try {
      const needs = destination.needs;
      if (payload._tag === 'Placed') {
        // Written into the destination already: only the tar is wanted there.
        if (needs._tag !== 'Tar') throw fail(`layer ${element.layer.index} arrived placed, but this destination stores blobs`);
        ready = { _tag: 'Placed', placed: payload.placed };
        if (payload.blob) await effects.perform({ _tag: 'Release', file: payload.blob.file, owner });
      } else if (payload._tag === 'Consumed') {
        if (needs._tag !== 'Tar') throw fail(`layer ${element.layer.index} arrived consumed, but this destination stores blobs`);
        ready = payload;
      } else {
        const formed = needs._tag === 'Tar' ? await ensureTar(element.layer, payload, formCtx, false) : await ensureBlob(element.layer, payload, formCtx, needs.compression, false);
        if (formed.transcoded) {
          if (needs._tag === 'Tar') inflated++;
          else compressed++;
        }
        ready = formed.payload;
      }
    } catch (e) {
      await releaseAll({ _tag: 'Layer', layer: element.layer, payload });
      throw e;
    }
    const result = await destination.putLayer(element.layer, ready, ctx);
    records.set(element.layer.index, { _tag: 'Stored', layer: element.layer, stored: result.stored });
    bytes += result.bytes;
    if (result.kept) skipped++;
    if (result.copiedAcrossDevices) copied++;
  };

  // Iterated by hand, not with for-await: on a failure the destination is aborted before
  // the stream is closed, because closing waits for the input's fetches under way, and a
  // fetch may be waiting for the destination (a place it offered, see `offer`).
  const stream = elements[Symbol.asyncIterator]();
  let signalPutFailed: () => void = () => undefined;
  const putFailed = new Promise<'failed'>((resolve) => (signalPutFailed = () => resolve('failed')));
  let closed = false;
  /** A pull left waiting when a put failed: its element, when it comes, is ours to release. */
  let unanswered: Promise<IteratorResult<ImageElement>> | undefined;
  const close = async () => {
    if (closed) return;
    closed = true;
    if (unanswered) {
      const late = await unanswered.catch(() => undefined);
      if (late && !late.done) await releaseAll(late.value);
    }
    await stream.return?.();
  };
  try {
    for (;;) {
      // A put that fails ends the wait for the next element (which may wait for that put).
      const pulled = stream.next();
      const next = await Promise.race([pulled, putFailed]);
      if (next === 'failed') {
        unanswered = pulled;
        throw (failure as { error: unknown } | undefined)?.error;
      }
      if (next.done) {
        closed = true;
        break;
      }
      const element = next.value;
      if (element._tag === 'Config') {
        if (!first) {
          first = element;
          begun = true;
          await destination.begin(element, ctx);
          if (!element.provisional) {
            final = element;
            await destination.putConfig(element, ctx);
          }
          continue;
        }
        if (final) throw fail('a second config arrived; one image per run');
        if (element.provisional) throw fail('a second provisional config arrived; the final config must follow the layers');
        if (records.size < first.layers.length) throw fail(`the final config arrived after ${records.size} of ${first.layers.length} layers; it must follow the last layer`);
        final = element;
        continue;
      }
      if (!first) {
        await releaseAll(element);
        throw fail('a layer arrived before the config');
      }
      if (first.provisional && final) {
        await releaseAll(element);
        throw fail('a layer arrived after the final config');
      }
      const index = element.layer.index;
      if (!Number.isInteger(index) || index < 0 || index >= first.layers.length || records.has(index)) {
        await releaseAll(element);
        throw fail(`layer ${index} arrived ${records.has(index) ? 'twice' : `but the image has ${first.layers.length} layers`}`);
      }
      const payload = element.payload;
      if (payload._tag === 'Skipped') {
        skipped++;
        records.set(index, payload.reason === 'present' ? { _tag: 'Present', layer: element.layer } : { _tag: 'Duplicate', layer: element.layer, of: -1 });
        continue;
      }
      records.set(index, { _tag: 'Pending', layer: element.layer });
      const task: Promise<void> = put(element, payload).then(
        () => {
          inFlight.delete(task);
        },
        (error: unknown) => {
          inFlight.delete(task);
          failure ??= { error };
          signalPutFailed();
        },
      );
      inFlight.add(task);
      if (inFlight.size >= concurrency) await Promise.race(inFlight);
      if (failure) throw failure.error;
    }
    await Promise.all(inFlight);
    if (failure) throw (failure as { error: unknown }).error;
    if (!first) throw fail('the input produced no image');
    if (first.provisional && !final) throw fail('the final config never arrived after the layers');
    const config = final ?? first;
    if (records.size !== config.layers.length) throw fail(`got ${records.size} of ${config.layers.length} layers`);
    if (final !== first) await destination.putConfig(config, ctx);
    const layers = ordered(config, records, fail);
    const committed = await destination.commit({ config, layers }, ctx);
    return {
      destination: committed.destination,
      layers: config.layers.length,
      layersSkipped: skipped,
      bytes,
      copiedAcrossDevices: copied,
      inflated,
      compressed,
    };
  } catch (error) {
    await Promise.allSettled([...inFlight]);
    if (begun) await destination.abort(ctx).catch(() => undefined);
    throw error;
  } finally {
    // After `abort` on a failure (see above), so fetches waiting for the destination end.
    await close().catch(() => undefined);
  }
}

/** The records in manifest order, duplicates resolved to the position that carried their data. */
function ordered<S>(config: ConfigElement, records: Map<number, LayerRecord<S> | Pending>, fail: (m: string) => Error): LayerRecord<S>[] {
  const out: LayerRecord<S>[] = [];
  const carrier = new Map<string, number>();
  config.layers.forEach((expected, i) => {
    const r = records.get(i);
    if (!r || r._tag === 'Pending') throw fail(`layer ${i} was never stored`);
    if (r.layer.diffId !== expected.diffId) throw fail(`layer ${i} arrived as ${r.layer.diffId} but the config names ${expected.diffId}`);
    if (r._tag !== 'Duplicate' && !carrier.has(expected.diffId)) carrier.set(expected.diffId, i);
    out.push(r);
  });
  return out.map((r, i) => {
    if (r._tag !== 'Duplicate') return r;
    const of = carrier.get(r.layer.diffId);
    if (of === undefined) throw fail(`layer ${i} (${r.layer.diffId}) arrived without data as a duplicate, and no other layer carried it`);
    return { ...r, of };
  });
}
