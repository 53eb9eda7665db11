/**
 * Synthetic stages for the element model with both forms (tar and blob), over a
 * {@link MemoryFs}: inputs that yield two files per layer, filters that keep one form and
 * drop the other, read the tar (lazily inflated) or trim to what the stages after asked
 * for, the real `search` and `exclude` filters, and destinations on the real copy loop
 * (`copyInto`) that need the tar or a blob.
 *
 * Layers are small real tars (so the real filters can read them); a blob is the memory
 * codecs' transform of the tar ({@link compressedContent}). Stages follow the ownership
 * contract exactly unless a BROKEN option says otherwise (test-of-tests); clean-up
 * failures go to {@link FormsWorld.problems}.
 *
 * @module
 */
import type { Digest } from '../../src/core/digest.js';
import {
  blobOf,
  type BlobFile,
  type BlobStream,
  type ConfigElement,
  type ConsumedTar,
  type TarConsumer,
  type TarConsumerOffer,
  dataPayload,
  type DataPayload,
  Forms,
  type ImageElement,
  type LayerDescriptor,
  type LayerElement,
  type LayerForms,
  ownedFiles,
  type PlacedTar,
  type PlacedTarget,
  type TarPlacement,
  releaseElement,
  type TarFile,
  tarOf,
  unionForms,
  wantsAny,
} from '../../src/core/element.js';
import { throwIfAborted } from '../../src/core/errors.js';
import { ExcludeFilter } from '../../src/core/filters/exclude.js';
import type { LayerFiles } from '../../src/core/filters/layer-rewrite.js';
import { type SearchReport, SearchFilter } from '../../src/core/filters/search.js';
import type { Compression } from '../../src/core/media-types.js';
import { MediaTypes } from '../../src/core/media-types.js';
import type { TempFile } from '../../src/core/ownership.js';
import { type CommittedImage, copyInto, type ImageDestination, type PutLayerResult } from '../../src/core/pipeline/copy-image.js';
import { DownstreamForms, ensureTar, keepForms } from '../../src/core/pipeline/layer-forms.js';
import { parallelMap } from '../../src/core/pipeline/parallel-map.js';
import { Turns } from '../../src/core/pipeline/turns.js';
import type { ImageFilter, ImageInput, ImageOutput, InputContext, LayerOrder, OutputSummary, StageContext, WantsLayer } from '../../src/core/pipeline/types.js';
import { concatBytes } from '../../src/core/bytes.js';
import { encodeHeader, END_OF_ARCHIVE, paddingFor } from '../../src/core/tar/header.js';
import { compressedContent, shaOf } from './memory-codecs.js';
import type { MemoryFs } from './memory-fs.js';
import { InjectedError, takeThenStop } from './model-pipeline.js';

export interface FormsWorld {
  readonly fs: MemoryFs;
  readonly problems: string[];
}

export type FormName = 'tar' | 'blob' | 'both';

export interface FormsLayerSpec {
  /** File entries in the layer's tar (after its directory); a `.pyc` entry (every third) is what `exclude` drops. */
  readonly files: number;
  /** An earlier layer this one repeats (same content and diff_id: the input sends it as a duplicate). */
  readonly repeatOf: number | undefined;
  /** How the source stores the blob. */
  readonly compression: Compression;
  /** The forms the random input yields, whatever was asked. */
  readonly randomForm: FormName;
  /**
   * The source's blob does not uncompress to the diff_id (its own digest is right): a
   * stage that inflates it must fail with EDIGEST; passed through, it is stored as is.
   */
  readonly badBlob?: boolean;
}

const toText = (b: Uint8Array) => Buffer.from(b).toString('latin1');

/** The layer's tar (as a latin1 string): `files` small entries. */
export function tarContent(layers: readonly FormsLayerSpec[], i: number): string {
  const l = layers[i];
  if (!l) throw new Error(`no layer ${i}`);
  if (l.repeatOf !== undefined) return tarContent(layers, l.repeatOf);
  // A directory entry first: layers that are not repeats differ, so their diff_ids do.
  const parts: Uint8Array[] = [encodeHeader({ name: `dir${i}/`, type: 'directory', size: 0, mode: 0o755, uid: 0, gid: 0, mtime: 1_700_000_000 })];
  for (let f = 0; f < l.files; f++) {
    const data = new TextEncoder().encode(`layer ${i} file ${f}\n`);
    const name = f % 3 === 2 ? `cache/l${i}-${f}.pyc` : `dir${i}/file-${f}.txt`;
    parts.push(encodeHeader({ name, type: 'file', size: data.length, mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000 }), data, new Uint8Array(paddingFor(data.length)));
  }
  parts.push(END_OF_ARCHIVE);
  return toText(concatBytes(parts));
}

/** The source's blob of a layer. */
export function sourceBlob(layers: readonly FormsLayerSpec[], i: number): string {
  const { compression, badBlob } = layers[i] as FormsLayerSpec;
  const tar = tarContent(layers, i) + (badBlob ? 'X' : '');
  return compression === 'none' ? tar : compressedContent(tar, compression);
}

function blobMediaType(c: Compression): string {
  return c === 'gzip' ? MediaTypes.ociLayerGzip : c === 'zstd' ? MediaTypes.ociLayerZstd : MediaTypes.ociLayer;
}

export function formsDescriptors(layers: readonly FormsLayerSpec[]): LayerDescriptor[] {
  return layers.map((l, index) => {
    const blob = sourceBlob(layers, index);
    const mediaType = blobMediaType(l.compression);
    return { index, sourceId: `src${index}`, diffId: shaOf(tarContent(layers, index)), mediaType, size: blob.length, blob: { digest: shaOf(blob), size: blob.length, mediaType } };
  });
}

export function formsConfig(layers: readonly FormsLayerSpec[]): ConfigElement {
  const descriptors = formsDescriptors(layers);
  const diffIds = descriptors.map((d) => d.diffId);
  const raw = new TextEncoder().encode(JSON.stringify({ rootfs: { type: 'layers', diff_ids: diffIds }, history: [] }));
  return { _tag: 'Config', image: { name: 'forms/image', tag: 'v1' }, digest: shaOf(toText(raw)), raw, config: { rootfs: { type: 'layers', diff_ids: diffIds } }, layers: descriptors };
}

export function formsOf(name: FormName): LayerForms {
  return name === 'tar' ? Forms.tar : name === 'blob' ? Forms.blob : Forms.both;
}

async function releaseQuietly(world: FormsWorld, ctx: StageContext, file: TempFile, who: string): Promise<void> {
  try {
    await ctx.effects.perform({ _tag: 'Release', file, owner: ctx.owner });
  } catch (e) {
    world.problems.push(`${who}: could not release #${file.id} (${file.path}): ${(e as Error).message}`);
  }
}

async function releaseAllQuietly(world: FormsWorld, ctx: StageContext, e: ImageElement, who: string): Promise<void> {
  for (const file of ownedFiles(e)) await releaseQuietly(world, ctx, file, who);
}

// ----- inputs ----------------------------------------------------------------------------

export interface FormsInputSpec {
  /**
   * `asked`: the forms `wants` answers (Skipped: present for none); `tars`: only ever the
   * tar, as a source without blobs (none asked: Skipped: present); `random`: each layer's
   * `randomForm`, whatever was asked.
   */
  readonly kind: 'asked' | 'tars' | 'random';
  readonly layers: readonly FormsLayerSpec[];
  /** Throw after this layer's files were created and written (releasing them first). */
  readonly throwAtLayer: number | undefined;
  /** BROKEN on purpose: a layer that fails keeps its files. */
  readonly leakOnThrow?: boolean;
}

export function formsInput(world: FormsWorld, spec: FormsInputSpec): ImageInput {
  return { description: `forms-${spec.kind}(${spec.layers.length})`, elements: (ctx) => formsInputElements(world, spec, ctx) };
}

async function* formsInputElements(world: FormsWorld, spec: FormsInputSpec, ctx: InputContext): AsyncGenerator<ImageElement, void, undefined> {
  const { effects, owner, signal, wants, parallelism } = ctx;
  throwIfAborted(signal);
  const config = formsConfig(spec.layers);
  yield config;
  const fetch = async (d: LayerDescriptor, sig: AbortSignal): Promise<LayerElement> => {
    throwIfAborted(sig);
    const l = spec.layers[d.index] as FormsLayerSpec;
    if (l.repeatOf !== undefined) return { _tag: 'Layer', layer: d, payload: { _tag: 'Skipped', reason: 'duplicate' } };
    const asked = await wants(d);
    const forms: LayerForms = spec.kind === 'asked' ? asked : spec.kind === 'tars' ? (wantsAny(asked) ? Forms.tar : Forms.none) : formsOf(l.randomForm);
    if (!wantsAny(forms)) return { _tag: 'Layer', layer: d, payload: { _tag: 'Skipped', reason: 'present' } };
    throwIfAborted(sig);
    let tar: TarFile | undefined;
    let blob: BlobFile | undefined;
    let stream: BlobStream | undefined;
    let consumer: TarConsumer | undefined;
    try {
      // A consumer downstream offered: wait for the turn, then give it the tar in two pieces.
      consumer = forms.tar && forms.consume ? await forms.consume.claim(sig) : undefined;
      if (consumer) {
        const content = tarContent(spec.layers, d.index);
        const bytes = new TextEncoder().encode(content);
        const half = Math.floor(bytes.length / 2);
        await consumer.write(bytes.subarray(0, half));
        throwIfAborted(sig);
        if (spec.throwAtLayer === d.index) throw new InjectedError(`input failed in layer ${d.index}`);
        await consumer.write(bytes.subarray(half));
        consumer.end();
        return { _tag: 'Layer', layer: d, payload: { _tag: 'Consumed', consumed: { consumer: consumer.id, size: content.length } } };
      }
      // A place downstream offered: wait for the turn, then append the tar there (claims are serial).
      const placed = forms.tar && forms.place ? await forms.place.claim(sig) : undefined;
      if (placed) {
        const content = tarContent(spec.layers, d.index);
        await world.fs.writeFile(placed.file.path, content, 'append');
        if (forms.blob) {
          const file = await effects.perform({ _tag: 'CreateTemp', owner, purpose: `in-${d.index}-blob` });
          const bytes = sourceBlob(spec.layers, d.index);
          blob = { file, digest: shaOf(bytes), size: 0, mediaType: d.mediaType, compression: l.compression };
          await world.fs.writeFile(file.path, bytes);
          blob = { ...blob, size: bytes.length };
        }
        if (spec.throwAtLayer === d.index) throw new InjectedError(`input failed in layer ${d.index}`);
        return { _tag: 'Layer', layer: d, payload: { _tag: 'Placed', placed: { target: placed, size: content.length }, ...(blob ? { blob } : {}) } };
      }
      // One pass makes both forms: the tar in two pieces, then the blob.
      if (forms.tar) {
        const file = await effects.perform({ _tag: 'CreateTemp', owner, purpose: `in-${d.index}-tar` });
        tar = { file, size: 0 };
        const content = tarContent(spec.layers, d.index);
        const half = Math.floor(content.length / 2);
        await world.fs.writeFile(file.path, content.slice(0, half), 'replace');
        throwIfAborted(sig);
        await world.fs.writeFile(file.path, content.slice(half), 'append');
        tar = { file, size: content.length };
      }
      if (forms.blob) {
        const file = await effects.perform({ _tag: 'CreateTemp', owner, purpose: `in-${d.index}-blob` });
        const content = sourceBlob(spec.layers, d.index);
        blob = { file, digest: shaOf(content), size: 0, mediaType: d.mediaType, compression: l.compression };
        // A stream downstream offered gets the same bytes, in two pieces, as the file is written.
        stream = forms.stream ? forms.stream.open(sig) : undefined;
        const bytes = new TextEncoder().encode(content);
        const half = Math.floor(bytes.length / 2);
        await stream?.write(bytes.subarray(0, half));
        throwIfAborted(sig);
        await stream?.write(bytes.subarray(half));
        await world.fs.writeFile(file.path, content);
        blob = { ...blob, size: content.length };
      }
      if (spec.throwAtLayer === d.index) throw new InjectedError(`input failed in layer ${d.index}`);
      if (stream && blob) {
        stream.end();
        blob = { ...blob, streamed: stream.id };
        stream = undefined;
      }
      return { _tag: 'Layer', layer: d, payload: dataPayload(tar, blob) };
    } catch (error) {
      stream?.abort(error instanceof Error ? error : new Error(String(error)));
      consumer?.abort(error instanceof Error ? error : new Error(String(error)));
      if (!spec.leakOnThrow) {
        if (tar) await releaseQuietly(world, ctx, tar.file, 'input');
        if (blob) await releaseQuietly(world, ctx, blob.file, 'input');
      }
      throw error;
    }
  };
  async function* descriptors(): AsyncGenerator<LayerDescriptor, void, undefined> {
    yield* config.layers;
  }
  yield* parallelMap(fetch, { concurrency: parallelism, order: 'completion', dispose: releaseElement(effects, owner), signal })(descriptors());
}

// ----- filters ---------------------------------------------------------------------------

export type FormsFilterSpec =
  /** Asks for both forms, passes on only `keep` (releasing the other). */
  | { readonly kind: 'keepOne'; readonly keep: 'tar' | 'blob'; readonly throwAtLayer: number | undefined; readonly leakDropped?: boolean }
  /** Reads every layer's tar (ensureTar: inflates a blob-only layer); `asks`: says so in `wants`. */
  | {
      readonly kind: 'readTar';
      readonly asks: boolean;
      readonly keepBlob: boolean;
      readonly throwAtLayer: number | undefined;
      /** BROKEN on purpose: drops the tar it got and inflates the blob again (a needless Inflate). */
      readonly wasteful?: boolean;
    }
  /** Asks for nothing itself; passes on only the forms the stages after asked for (keepForms). */
  | { readonly kind: 'trim'; readonly throwAtLayer: number | undefined }
  /** The real search filter. */
  | { readonly kind: 'search' }
  /** The real exclude filter (a content filter: provisional config, final config after the layers). */
  | { readonly kind: 'exclude' };

/** LayerFiles over the memory fs. */
export function memoryLayerFiles(fs: MemoryFs): LayerFiles {
  const toBytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
  return {
    read(file: TempFile): AsyncIterable<Uint8Array> {
      return (async function* () {
        yield toBytes(await fs.readFile(file.path));
      })();
    },
    async write(file: TempFile, data: AsyncIterable<Uint8Array>) {
      const parts: Uint8Array[] = [];
      for await (const c of data) parts.push(c.slice());
      const text = toText(concatBytes(parts));
      await fs.writeFile(file.path, text, 'replace');
      return { digest: shaOf(text), size: text.length };
    },
  };
}

export function makeFormsFilter(world: FormsWorld, spec: FormsFilterSpec, searchReports: SearchReport[]): ImageFilter {
  switch (spec.kind) {
    case 'keepOne':
      return keepOneFilter(world, spec);
    case 'readTar':
      return readTarFilter(world, spec);
    case 'trim':
      return trimFilter(world, spec);
    case 'search':
      return new SearchFilter({ pattern: '*.txt', read: memoryLayerFiles(world.fs).read, report: (r) => void searchReports.push(r) });
    case 'exclude':
      return new ExcludeFilter({ patterns: ['*.pyc'], files: memoryLayerFiles(world.fs) });
  }
}

/** A layer element that carries files (its payload is not Skipped). */
type DataLayer = LayerElement & { readonly payload: DataPayload };

/**
 * The walk of the filter `name` over `elements`: configs and skipped layers pass as they
 * are, every other layer goes through `step` (its result passes on), except the layer at
 * `throwAtLayer`, where the filter releases what the layer carries and fails.
 */
async function* eachDataLayer(
  world: FormsWorld,
  ctx: StageContext,
  name: string,
  throwAtLayer: number | undefined,
  elements: AsyncIterable<ImageElement>,
  step: (e: DataLayer) => Promise<ImageElement>,
): AsyncGenerator<ImageElement> {
  for await (const e of elements) {
    if (e._tag !== 'Layer' || e.payload._tag === 'Skipped') {
      yield e;
      continue;
    }
    if (throwAtLayer === e.layer.index) {
      await releaseAllQuietly(world, ctx, e, name);
      throw new InjectedError(`${name} failed at layer ${e.layer.index}`);
    }
    yield await step(e as DataLayer);
  }
}

function keepOneFilter(world: FormsWorld, spec: Extract<FormsFilterSpec, { kind: 'keepOne' }>): ImageFilter {
  const name = `keep-${spec.keep}`;
  return {
    name,
    wants: (inner) => async (d) => (wantsAny(await inner(d)) ? Forms.both : Forms.none),
    apply: (elements, ctx) =>
      eachDataLayer(world, ctx, name, spec.throwAtLayer, elements, async (e) => {
        if (e.payload._tag !== 'Both') return e;
        const { tar, blob } = e.payload;
        const dropped = spec.keep === 'tar' ? blob.file : tar.file;
        if (!spec.leakDropped) {
          try {
            await ctx.effects.perform({ _tag: 'Release', file: dropped, owner: ctx.owner });
          } catch (error) {
            await releaseQuietly(world, ctx, spec.keep === 'tar' ? tar.file : blob.file, name);
            throw error;
          }
        }
        return { _tag: 'Layer', layer: e.layer, payload: spec.keep === 'tar' ? { _tag: 'Tar', tar } : { _tag: 'Blob', blob } };
      }),
  };
}

function readTarFilter(world: FormsWorld, spec: Extract<FormsFilterSpec, { kind: 'readTar' }>): ImageFilter {
  const name = 'read-tar';
  return {
    name,
    ...(spec.asks ? { wants: (inner: WantsLayer): WantsLayer => async (d) => unionForms(await inner(d), Forms.tar) } : {}),
    apply(elements, ctx) {
      const formCtx = { effects: ctx.effects, owner: ctx.owner };
      return eachDataLayer(world, ctx, name, spec.throwAtLayer, elements, async (e) => {
        let payload: DataPayload = e.payload;
        try {
          if (spec.wasteful && payload._tag === 'Both') {
            const blobOnly: DataPayload = { _tag: 'Blob', blob: payload.blob };
            await ctx.effects.perform({ _tag: 'Release', file: payload.tar.file, owner: ctx.owner });
            payload = blobOnly;
          }
          payload = (await ensureTar(e.layer, payload, formCtx, spec.keepBlob)).payload;
        } catch (error) {
          // ensureTar leaves the payload's files with us.
          await releaseAllQuietly(world, ctx, { _tag: 'Layer', layer: e.layer, payload }, name);
          throw error;
        }
        const element: LayerElement = { _tag: 'Layer', layer: e.layer, payload };
        try {
          const content = await world.fs.readFile((tarOf(payload) as TarFile).file.path);
          if (shaOf(content) !== e.layer.diffId) world.problems.push(`${name}: layer ${e.layer.index}'s tar hashes to ${shaOf(content)}, not ${e.layer.diffId}`);
        } catch (error) {
          await releaseAllQuietly(world, ctx, element, name);
          throw error;
        }
        return element;
      });
    },
  };
}

function trimFilter(world: FormsWorld, spec: Extract<FormsFilterSpec, { kind: 'trim' }>): ImageFilter {
  const name = 'trim';
  const downstream = new DownstreamForms();
  return {
    name,
    wants: (inner) => downstream.wrap(inner, Forms.none),
    apply: (elements, ctx) =>
      eachDataLayer(world, ctx, name, spec.throwAtLayer, elements, async (e) => {
        const payload = await keepForms(e.payload, downstream.of(e.layer.index), { effects: ctx.effects, owner: ctx.owner });
        return payload === e.payload ? e : { _tag: 'Layer', layer: e.layer, payload };
      }),
  };
}

// ----- destinations on the copy loop -----------------------------------------------------

export const DEST = '/out/dest';

export type DestOp = 'begin' | 'putLayer' | 'putConfig' | 'commit';

export interface FormsDestSpec {
  readonly kind: 'dest';
  readonly needs: 'tar' | 'gzip' | 'zstd';
  readonly order: LayerOrder;
  readonly concurrency: number;
  /** Layers (their original diff_ids) the destination already holds. */
  readonly present: readonly number[];
  /** How a layer gets in: moved by rename, or read, written and released. */
  readonly store: 'move' | 'copy';
  readonly failAt: { readonly op: DestOp; readonly layer: number } | undefined;
  /** BROKEN on purpose: a layer it does not store (it holds it, or fails) keeps its file. */
  readonly forgetUnstored?: boolean;
  /** BROKEN on purpose: releases each stored layer's temp file a second time. */
  readonly releaseTwice?: boolean;
  /**
   * A tar destination that offers every layer a place at the end of a temp file of its
   * own (as tar:// does its archive), one claim at a time in manifest order; a placed
   * layer's bytes are then copied out to its layer file, and the temp file is released at
   * commit or abort.
   */
  readonly offers?: boolean;
  /**
   * A tar destination that offers every layer a consumer (as oci:// does): one at a time,
   * once every earlier layer is stored; the bytes given are gathered and, when the layer
   * arrives `Consumed`, checked against its diff_id and written out to its layer file.
   */
  readonly consumes?: boolean;
}

export interface PeekSpec {
  readonly kind: 'peek';
  readonly wants: FormName;
  readonly stopAfter: number;
  readonly via: 'break' | 'return';
}

export type FormsOutputSpec = FormsDestSpec | PeekSpec;

export interface StoredLayer {
  readonly path: string | undefined;
  readonly form: 'tar' | Compression;
}

/** What a destination saw, in order (for the config rule and the form checks). */
export type DestEvent =
  | { readonly op: 'begin'; readonly config: ConfigElement }
  | { readonly op: 'putLayer'; readonly index: number; readonly form: DataPayload['_tag']; readonly kept: boolean }
  | { readonly op: 'putConfig'; readonly config: ConfigElement }
  | { readonly op: 'commit'; readonly image: CommittedImage<StoredLayer> }
  | { readonly op: 'abort' };

const extOf = (form: 'tar' | Compression) => (form === 'tar' ? 'tar' : form === 'gzip' ? 'gz' : form === 'zstd' ? 'zst' : 'raw');

export function layerPath(index: number, form: 'tar' | Compression): string {
  return `${DEST}/layer-${index}.${extOf(form)}`;
}

/** An ImageDestination over the memory fs; everything it adds lives under {@link DEST}. */
export class FormsDestination implements ImageDestination<StoredLayer> {
  readonly description = `forms-dest://${DEST}`;
  readonly order: LayerOrder;
  readonly needs: ImageDestination['needs'];
  readonly concurrency: number;
  readonly events: DestEvent[] = [];
  private readonly present: ReadonlySet<Digest>;
  private readonly added: string[] = [];
  private madeDir = false;
  private inFlight = 0;
  /** The file places are offered in (offers), its length, and the claim filling it now. */
  private area: TempFile | undefined;
  private areaLength = 0;
  private placing: { readonly claim: number; readonly index: number; readonly offset: number } | undefined;
  private claims = 0;
  private aborted = false;
  private readonly storedIds = new Set<Digest>();
  private readonly turns = new Turns();
  private layers: readonly LayerDescriptor[] = [];
  readonly offer?: (layer: LayerDescriptor) => TarPlacement | undefined;
  readonly consume?: (layer: LayerDescriptor) => TarConsumerOffer | undefined;
  /** Consumers granted (consumes), by id; `working` is the one whose bytes may still come. */
  private readonly grants = new Map<number, { readonly index: number; readonly chunks: Uint8Array[]; state: 'open' | 'ended' | 'aborted'; delivered: boolean }>();
  private working: number | undefined;
  private begun = false;

  constructor(
    private readonly world: FormsWorld,
    private readonly spec: FormsDestSpec,
    originalDiffIds: readonly Digest[],
  ) {
    this.order = spec.order;
    this.needs = spec.needs === 'tar' ? { _tag: 'Tar' } : { _tag: 'Blob', compression: spec.needs };
    this.concurrency = spec.concurrency;
    this.present = new Set(spec.present.map((i) => originalDiffIds[i]).filter((d): d is Digest => d !== undefined));
    if (spec.offers && spec.needs === 'tar') this.offer = (layer) => ({ claim: (signal) => this.claim(layer.index, signal) });
    if (spec.consumes && spec.needs === 'tar') this.consume = (layer) => ({ claim: (signal) => this.claimConsumer(layer.index, signal) });
  }

  /** As oci:// decides: begun, no consumer at work, every earlier new diff_id stored (or held). */
  private consumerTurnOf(index: number): 'now' | 'never' | 'closed' | undefined {
    if (this.aborted) return 'closed';
    if (!this.begun || this.working !== undefined) return undefined;
    const layer = this.layers[index];
    if (!layer || this.layers.slice(0, index).some((l) => l.diffId === layer.diffId) || this.storedIds.has(layer.diffId) || this.present.has(layer.diffId)) return 'never';
    return this.layers.slice(0, index).every((l) => this.storedIds.has(l.diffId) || this.present.has(l.diffId)) ? 'now' : undefined;
  }

  private async claimConsumer(index: number, signal: AbortSignal): Promise<TarConsumer | undefined> {
    const turn = await this.turns.until(() => this.consumerTurnOf(index), signal);
    if (turn === 'never') return undefined;
    if (turn === 'closed') throw new InjectedError('the destination stopped');
    const id = ++this.claims;
    const grant = { index, chunks: [] as Uint8Array[], state: 'open' as 'open' | 'ended' | 'aborted', delivered: false };
    this.grants.set(id, grant);
    this.working = id;
    const settle = (state: 'ended' | 'aborted') => {
      if (grant.state !== 'open') this.world.problems.push(`input: consumer of layer ${index} told ${state} after ${grant.state}`);
      grant.state = state;
    };
    return {
      id,
      write: async (chunk) => {
        if (grant.state !== 'open') this.world.problems.push(`input: bytes for layer ${index} after its consumer was ${grant.state}`);
        grant.chunks.push(chunk.slice());
      },
      end: () => settle('ended'),
      abort: () => {
        settle('aborted');
        if (this.working === id) this.working = undefined;
        this.turns.wake();
      },
    };
  }

  /** A layer given to a consumer: checked against its grant and diff_id, written out to its layer file. */
  private async putConsumed(layer: LayerDescriptor, consumed: ConsumedTar): Promise<PutLayerResult<StoredLayer>> {
    const grant = this.grants.get(consumed.consumer);
    this.events.push({ op: 'putLayer', index: layer.index, form: 'Consumed', kept: false });
    if (!grant || grant.index !== layer.index || grant.delivered || grant.state !== 'ended') {
      this.world.problems.push(`destination: layer ${layer.index} arrived consumed by ${grant ? `a ${grant.state} consumer of layer ${grant.index}` : 'a consumer it did not grant'}`);
      throw new InjectedError('bad consumer');
    }
    grant.delivered = true;
    this.working = undefined;
    const content = toText(concatBytes(grant.chunks));
    if (content.length !== consumed.size || shaOf(content) !== layer.diffId) this.world.problems.push(`destination: layer ${layer.index} consumed ${content.length} bytes that are not its tar`);
    if (this.failing('putLayer', layer.index)) {
      this.turns.wake();
      throw new InjectedError(`destination failed storing layer ${layer.index}`);
    }
    const target = layerPath(layer.index, 'tar');
    this.added.push(target);
    await this.world.fs.writeNew(target, content);
    this.storedIds.add(layer.diffId);
    this.turns.wake();
    return { stored: { path: target, form: 'tar' }, bytes: consumed.size };
  }

  /** As tar:// decides: the area exists, nothing fills it, every earlier new diff_id is stored. */
  private turnOf(index: number): 'now' | 'never' | 'closed' | undefined {
    if (this.aborted) return 'closed';
    if (!this.area) return undefined;
    const layer = this.layers[index];
    if (!layer || this.layers.slice(0, index).some((l) => l.diffId === layer.diffId) || this.storedIds.has(layer.diffId) || this.present.has(layer.diffId)) return 'never';
    if (this.placing) return undefined;
    // A layer it holds already arrives Skipped (no putLayer): it is in place from the start.
    return this.layers.slice(0, index).every((l) => this.storedIds.has(l.diffId) || this.present.has(l.diffId)) ? 'now' : undefined;
  }


  private async claim(index: number, signal: AbortSignal): Promise<PlacedTarget | undefined> {
    const turn = await this.turns.until(() => this.turnOf(index), signal);
    if (turn === 'never') return undefined;
    if (turn === 'closed') throw new InjectedError('the destination stopped');
    const claim = ++this.claims;
    this.placing = { claim, index, offset: this.areaLength };
    return { file: this.area as TempFile, offset: this.areaLength, claim };
  }

  private failing(op: DestOp, layer = -1): boolean {
    return this.spec.failAt?.op === op && (op !== 'putLayer' || this.spec.failAt.layer === layer);
  }

  async has(layer: LayerDescriptor): Promise<boolean> {
    return this.present.has(layer.diffId);
  }

  async begin(config: ConfigElement, ctx: StageContext): Promise<void> {
    this.events.push({ op: 'begin', config });
    if (this.failing('begin')) throw new InjectedError('destination failed in begin');
    await this.world.fs.mkdir(DEST);
    this.madeDir = true;
    this.layers = config.layers;
    this.begun = true;
    this.turns.wake();
    if (this.offer) {
      this.area = await ctx.effects.perform({ _tag: 'CreateTemp', owner: ctx.owner, purpose: 'place-area' });
      this.turns.wake();
    }
  }

  async putLayer(layer: LayerDescriptor, payload: DataPayload, ctx: StageContext): Promise<PutLayerResult<StoredLayer>> {
    const who = 'destination';
    const releaseAll = () => releaseAllQuietly(this.world, ctx, { _tag: 'Layer', layer, payload }, who);
    const wanted = this.needs._tag === 'Tar' ? 'Tar' : 'Blob';
    if (payload._tag === 'Placed' && wanted === 'Tar') return this.putPlaced(layer, payload.placed, ctx);
    if (payload._tag === 'Consumed' && wanted === 'Tar') return this.putConsumed(layer, payload.consumed);
    if (payload._tag !== wanted) {
      this.world.problems.push(`copy loop: layer ${layer.index} came as ${payload._tag}, the destination needs ${wanted}`);
      await releaseAll();
      return { stored: { path: undefined, form: 'tar' }, bytes: 0, kept: true };
    }
    const kept = this.present.has(layer.diffId);
    this.events.push({ op: 'putLayer', index: layer.index, form: payload._tag, kept });
    if (++this.inFlight > this.concurrency) this.world.problems.push(`copy loop: ${this.inFlight} putLayer calls at once, concurrency is ${this.concurrency}`);
    try {
      return await this.store(layer, payload, ctx, kept);
    } finally {
      this.inFlight--;
    }
  }

  /** A layer written into the area: checked against its claim, copied out to its layer file. */
  private async putPlaced(layer: LayerDescriptor, placed: PlacedTar, ctx: StageContext): Promise<PutLayerResult<StoredLayer>> {
    const at = this.placing;
    this.events.push({ op: 'putLayer', index: layer.index, form: 'Placed', kept: false });
    if (!at || at.claim !== placed.target.claim || at.index !== layer.index || at.offset !== placed.target.offset || placed.target.file !== this.area) {
      this.world.problems.push(`destination: layer ${layer.index} arrived placed under a claim it was not given`);
      throw new InjectedError('bad placement');
    }
    this.placing = undefined;
    const content = (await this.world.fs.readFile(placed.target.file.path)).slice(at.offset, at.offset + placed.size);
    if (content.length !== placed.size) this.world.problems.push(`destination: layer ${layer.index} placed ${placed.size} bytes, the area holds ${content.length}`);
    this.areaLength = at.offset + placed.size;
    if (this.failing('putLayer', layer.index)) throw new InjectedError(`destination failed storing layer ${layer.index}`);
    const target = layerPath(layer.index, 'tar');
    this.added.push(target);
    await this.world.fs.writeNew(target, content);
    this.storedIds.add(layer.diffId);
    this.turns.wake();
    void ctx;
    return { stored: { path: target, form: 'tar' }, bytes: placed.size };
  }

  private async releaseArea(ctx: StageContext): Promise<void> {
    const area = this.area;
    this.area = undefined;
    if (area) await releaseQuietly(this.world, ctx, area, 'destination');
  }

  private async store(layer: LayerDescriptor, payload: DataPayload, ctx: StageContext, kept: boolean): Promise<PutLayerResult<StoredLayer>> {
    const who = 'destination';
    const releaseAll = () => releaseAllQuietly(this.world, ctx, { _tag: 'Layer', layer, payload }, who);
    if (this.failing('putLayer', layer.index)) {
      if (!this.spec.forgetUnstored) await releaseAll();
      throw new InjectedError(`destination failed storing layer ${layer.index}`);
    }
    if (kept) {
      if (!this.spec.forgetUnstored) await releaseAll();
      this.storedIds.add(layer.diffId);
      this.turns.wake();
      return { stored: { path: undefined, form: 'tar' }, bytes: 0, kept: true };
    }
    const blob = blobOf(payload);
    const form: 'tar' | Compression = payload._tag === 'Tar' ? 'tar' : (blob as BlobFile).compression;
    const file = (payload._tag === 'Tar' ? payload.tar.file : (blob as BlobFile).file) as TempFile;
    const target = layerPath(layer.index, form);
    const { fs } = this.world;
    let moved = false;
    let copied = false;
    try {
      if (this.spec.store === 'move') {
        const r = await ctx.effects.perform({ _tag: 'MoveIntoPlace', file, owner: ctx.owner, destination: target });
        moved = true;
        this.added.push(target);
        copied = r.copied;
      } else {
        const content = await fs.readFile(file.path);
        this.added.push(target);
        await fs.writeNew(target, content);
        moved = true;
        await ctx.effects.perform({ _tag: 'Release', file, owner: ctx.owner });
      }
    } catch (error) {
      if (!moved) await releaseQuietly(this.world, ctx, file, who);
      throw error;
    }
    if (this.spec.releaseTwice) await ctx.effects.perform({ _tag: 'Release', file, owner: ctx.owner });
    this.storedIds.add(layer.diffId);
    this.turns.wake();
    const size = payload._tag === 'Tar' ? payload.tar.size : (blob as BlobFile).size;
    return { stored: { path: target, form }, bytes: size, copiedAcrossDevices: copied };
  }

  async putConfig(config: ConfigElement): Promise<void> {
    this.events.push({ op: 'putConfig', config });
    if (this.failing('putConfig')) throw new InjectedError('destination failed in putConfig');
    this.added.push(`${DEST}/config.json`);
    await this.world.fs.writeNew(`${DEST}/config.json`, toText(config.raw));
  }

  async commit(image: CommittedImage<StoredLayer>, ctx: StageContext): Promise<{ readonly destination: string }> {
    this.events.push({ op: 'commit', image });
    if (this.failing('commit')) throw new InjectedError('destination failed in commit');
    if (this.placing) this.world.problems.push(`destination: commit while layer ${this.placing.index} still holds a place`);
    for (const [id, g] of this.grants) if (!g.delivered) this.world.problems.push(`destination: commit while consumer ${id} of layer ${g.index} was never delivered`);
    this.added.push(`${DEST}/manifest`);
    await this.world.fs.writeNew(`${DEST}/manifest`, manifestText(image));
    await this.releaseArea(ctx);
    return { destination: DEST };
  }

  async abort(ctx: StageContext): Promise<void> {
    this.events.push({ op: 'abort' });
    this.placing = undefined;
    this.aborted = true;
    this.turns.wake();
    await this.releaseArea(ctx);
    if (this.inFlight > 0) this.world.problems.push(`copy loop: abort() while ${this.inFlight} putLayer call(s) were under way`);
    for (const p of [...this.added].reverse()) {
      await this.world.fs.unlink(p).catch((e: unknown) => {
        if ((e as { code?: string }).code !== 'ENOENT') this.world.problems.push(`destination: could not remove ${p}: ${(e as Error).message}`);
      });
    }
    if (this.madeDir) await this.world.fs.removeDir(DEST).catch((e: unknown) => this.world.problems.push(`destination: could not remove ${DEST}: ${(e as Error).message}`));
  }
}

/** The manifest a destination writes at commit: one line per position. */
export function manifestText(image: CommittedImage<StoredLayer>): string {
  const lines = image.layers.map((r) => (r._tag === 'Stored' ? `${r.layer.diffId} ${r.stored.path ?? 'kept'}` : r._tag === 'Present' ? `${r.layer.diffId} present` : `${r.layer.diffId} duplicate-of ${r.of}`));
  return [image.config.digest, ...lines].join('\n');
}

/** Takes `stopAfter` elements (releasing every file they carry), then stops early. */
export function formsPeekOutput(spec: PeekSpec): ImageOutput {
  return {
    description: `peek(${spec.stopAfter})`,
    order: 'completion',
    wants: async () => formsOf(spec.wants),
    async consume(elements, ctx): Promise<OutputSummary> {
      await takeThenStop(elements, spec, releaseElement(ctx.effects, ctx.owner));
      return { destination: 'peek', layers: 0, layersSkipped: 0, bytes: 0, copiedAcrossDevices: 0 };
    },
  };
}

export function makeFormsOutput(world: FormsWorld, spec: FormsOutputSpec, layers: readonly FormsLayerSpec[]): { output: ImageOutput; destination: FormsDestination | undefined } {
  if (spec.kind === 'peek') return { output: formsPeekOutput(spec), destination: undefined };
  const destination = new FormsDestination(world, spec, formsDescriptors(layers).map((d) => d.diffId));
  return { output: copyInto(destination), destination };
}
