/**
 * Synthetic pipeline stages over a {@link MemoryFs}: an input, a filter and three outputs
 * that follow the ownership contract of `src/core/pipeline/types.ts` exactly, so that a
 * property over `runPipeline` tests the combinators and the scope, not the stages.
 *
 * Every stage can be told to fail at a chosen layer (with an {@link InjectedError}); the
 * memory fs can fail any operation. Clean-up failures inside a stage (a release that was
 * refused, an unlink of a moved file that failed) are recorded in {@link World.problems}
 * rather than thrown, so a test can tell "the stage met a broken invariant" from "the run
 * failed as injected".
 *
 * @module
 */
import type { Digest } from '../../src/core/digest.js';
import { type ConfigElement, type ImageElement, type LayerDescriptor, type LayerElement, releaseElement, Forms, tarOf, wantsAny } from '../../src/core/element.js';
import { throwIfAborted } from '../../src/core/errors.js';
import type { TempFile } from '../../src/core/ownership.js';
import { parallelMap } from '../../src/core/pipeline/parallel-map.js';
import type { ImageFilter, ImageInput, ImageOutput, InputContext, OutputSummary, StageContext, WantsLayer } from '../../src/core/pipeline/types.js';
import type { MemoryFs } from './memory-fs.js';

/** An error a synthetic stage was told to raise. */
export class InjectedError extends Error {
  readonly injected = true;
  constructor(message: string) {
    super(message);
    this.name = 'InjectedError';
  }
}

export interface World {
  readonly fs: MemoryFs;
  /** Clean-up failures inside stages; a well-behaved run leaves this empty. */
  readonly problems: string[];
}

const fakeDigest = (n: number, salt: string): Digest => `sha256:${(salt + n.toString(16)).padStart(64, '0').slice(-64)}` as Digest;

export function layerContent(index: number): string {
  return `L${index}`;
}

export function layerDescriptors(count: number): LayerDescriptor[] {
  return Array.from({ length: count }, (_, index) => ({
    index,
    sourceId: `src${index}`,
    diffId: fakeDigest(index, 'd1ff'),
    mediaType: 'application/vnd.oci.image.layer.v1.tar',
  }));
}

export function configElement(count: number): ConfigElement {
  const layers = layerDescriptors(count);
  const raw = new TextEncoder().encode(`config:${count}`);
  return {
    _tag: 'Config',
    image: { name: 'synthetic/image', tag: 'latest' },
    digest: fakeDigest(count, 'c0ff'),
    raw,
    config: { rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } },
    layers,
  };
}

async function releaseQuietly(world: World, ctx: StageContext, file: TempFile, who: string): Promise<void> {
  try {
    await ctx.effects.perform({ _tag: 'Release', file, owner: ctx.owner });
  } catch (e) {
    world.problems.push(`${who}: could not release #${file.id} (${file.path}): ${(e as Error).message}`);
  }
}

// ----- input ---------------------------------------------------------------------------

export interface InputSpec {
  readonly layers: number;
  /** Throw after this layer's temp file was created and written (releasing it first). */
  readonly throwAtLayer?: number | undefined;
  /** Write each layer in this many pieces (more fs operations, more interleavings). */
  readonly chunks?: number;
  /** BROKEN on purpose (test-of-tests): a call that throws keeps its file instead of releasing it. */
  readonly leakOnThrow?: boolean;
}

/**
 * Config first, then every layer the pipeline wants, fetched by the real `parallelMap`
 * with `ctx.parallelism` calls at once and delivered in completion order.
 */
export function syntheticInput(world: World, spec: InputSpec): ImageInput {
  return { description: `synthetic(${spec.layers} layers)`, elements: (ctx) => inputElements(world, spec, ctx) };
}

async function* inputElements(world: World, spec: InputSpec, ctx: InputContext): AsyncGenerator<ImageElement, void, undefined> {
  const { effects, owner, signal, wants, parallelism } = ctx;
  throwIfAborted(signal);
  const config = configElement(spec.layers);
  yield config;
  const chunks = Math.max(1, spec.chunks ?? 1);

  const fetch = async (d: LayerDescriptor, sig: AbortSignal): Promise<LayerElement> => {
    throwIfAborted(sig);
    if (!wantsAny(await wants(d))) return { _tag: 'Layer', layer: d, payload: { _tag: 'Skipped', reason: 'present' } };
    throwIfAborted(sig);
    const file = await effects.perform({ _tag: 'CreateTemp', owner, purpose: `layer ${d.index}` });
    try {
      const content = layerContent(d.index);
      const step = Math.ceil(content.length / chunks);
      for (let c = 0; c < chunks; c++) {
        await world.fs.writeFile(file.path, content.slice(c * step, (c + 1) * step), c === 0 ? 'replace' : 'append');
        throwIfAborted(sig);
      }
      if (spec.throwAtLayer === d.index) throw new InjectedError(`input failed in layer ${d.index}`);
      return { _tag: 'Layer', layer: d, payload: { _tag: 'Tar', tar: { file, size: content.length } } };
    } catch (error) {
      // The contract: a call that throws releases what it created.
      if (!spec.leakOnThrow) await releaseQuietly(world, ctx, file, 'input');
      throw error;
    }
  };

  async function* descriptors(): AsyncGenerator<LayerDescriptor, void, undefined> {
    for (const d of config.layers) yield d;
  }

  yield* parallelMap(fetch, { concurrency: parallelism, order: 'completion', dispose: releaseElement(effects, owner), signal })(descriptors());
}

// ----- filter --------------------------------------------------------------------------

export interface FilterSpec {
  readonly name: string;
  /** Layers whose file the filter replaces by a new temp file (`name(old content)`). */
  readonly replace: readonly number[];
  /** Throw when this layer arrives (releasing what it holds first). */
  readonly throwAtLayer?: number | undefined;
}

export function syntheticFilter(world: World, spec: FilterSpec): ImageFilter {
  const replaces = new Set(spec.replace);
  return {
    name: spec.name,
    // A content-changing filter wants the layers it changes, whatever the output says.
    wants: (inner: WantsLayer): WantsLayer => async (d) => (replaces.has(d.index) ? Forms.tar : inner(d)),
    apply: (elements, ctx) => filterElements(world, spec, replaces, elements, ctx),
  };
}

async function* filterElements(
  world: World,
  spec: FilterSpec,
  replaces: ReadonlySet<number>,
  elements: AsyncIterable<ImageElement>,
  ctx: StageContext,
): AsyncGenerator<ImageElement, void, undefined> {
  const { effects, owner } = ctx;
  const who = `filter ${spec.name}`;
  for await (const e of elements) {
    if (e._tag !== 'Layer') {
      yield e;
      continue;
    }
    const old = e.payload._tag === 'Tar' ? tarOf(e.payload)!.file : undefined;
    if (spec.throwAtLayer === e.layer.index) {
      if (old) await releaseQuietly(world, ctx, old, who);
      throw new InjectedError(`${who} failed at layer ${e.layer.index}`);
    }
    if (!old || !replaces.has(e.layer.index)) {
      yield e;
      continue;
    }
    let fresh: TempFile | undefined;
    let content: string;
    try {
      const before = await world.fs.readFile(old.path);
      content = `${spec.name}(${before})`;
      fresh = await effects.perform({ _tag: 'CreateTemp', owner, purpose: `${spec.name} layer ${e.layer.index}` });
      await world.fs.writeFile(fresh.path, content);
    } catch (error) {
      if (fresh) await releaseQuietly(world, ctx, fresh, who);
      await releaseQuietly(world, ctx, old, who);
      throw error;
    }
    try {
      await effects.perform({ _tag: 'Release', file: old, owner });
    } catch (error) {
      await releaseQuietly(world, ctx, fresh, who);
      throw error;
    }
    yield { _tag: 'Layer', layer: e.layer, payload: { _tag: 'Tar', tar: { file: fresh, size: content.length } } };
  }
}

// ----- outputs -------------------------------------------------------------------------

export interface DirOutputSpec {
  readonly kind: 'dir';
  /** The directory it creates and fills (`config.json`, `layer-<i>`). */
  readonly dest: string;
  /** Layers it says it already has (`wants` answers no). */
  readonly present: readonly number[];
  /** Fail when this layer arrives (after taking it: it must release it). */
  readonly failOnLayer?: number | undefined;
  /** BROKEN on purpose (test-of-tests): on failure, leave what it already moved in place. */
  readonly skipRollback?: boolean;
}

export interface TarOutputSpec {
  readonly kind: 'tar';
  /** The single file it produces, through a temp file beside it. */
  readonly target: string;
  readonly present: readonly number[];
  readonly failOnLayer?: number | undefined;
}

export interface PeekOutputSpec {
  readonly kind: 'peek';
  /** Stop after this many elements. */
  readonly stopAfter: number;
  /** How it stops: `break` out of `for await`, or call `return()` on the iterator. */
  readonly via: 'break' | 'return';
}

export type OutputSpec = DirOutputSpec | TarOutputSpec | PeekOutputSpec;

/** What an output checks of its stream as it arrives: one config first, then each of its layers once, all of them by the end. */
class StreamCheck {
  private config: ConfigElement | undefined;
  private readonly seen = new Set<number>();

  /** How many layers have arrived. */
  get arrived(): number {
    return this.seen.size;
  }

  onConfig(e: ConfigElement): void {
    if (this.config) throw new Error('protocol: a second config');
    this.config = e;
  }

  onLayer(e: LayerElement): void {
    if (!this.config) throw new Error(`protocol: layer ${e.layer.index} arrived before the config`);
    if (e.layer.index < 0 || e.layer.index >= this.config.layers.length || this.seen.has(e.layer.index)) {
      throw new Error(`protocol: layer ${e.layer.index} arrived twice or out of range`);
    }
    this.seen.add(e.layer.index);
  }

  complete(): void {
    if (!this.config) throw new Error('protocol: the stream ended without a config');
    if (this.seen.size !== this.config.layers.length) throw new Error(`protocol: the stream ended after ${this.seen.size} of ${this.config.layers.length} layers`);
  }
}

/** `wants` of an output whose destination already holds the layers `present`: nothing for those, the tar for the others. */
function tarUnlessPresent(present: readonly number[]): ImageOutput['wants'] {
  const held = new Set(present);
  return async (d) => (held.has(d.index) ? Forms.none : Forms.tar);
}

/** Completion order; moves every layer into `dest`, removes everything it made on failure. */
export function dirOutput(world: World, spec: DirOutputSpec): ImageOutput {
  return {
    description: `dir://${spec.dest}`,
    order: 'completion',
    wants: tarUnlessPresent(spec.present),
    async consume(elements, ctx): Promise<OutputSummary> {
      const { fs } = world;
      const made: string[] = [];
      let madeDir = false;
      let held: TempFile | undefined;
      const stream = new StreamCheck();
      let layers = 0;
      let skipped = 0;
      let bytes = 0;
      let copied = 0;
      try {
        for await (const e of elements) {
          if (e._tag === 'Config') {
            stream.onConfig(e);
            await fs.mkdir(spec.dest);
            madeDir = true;
            const configPath = `${spec.dest}/config.json`;
            await fs.writeNew(configPath, new TextDecoder().decode(e.raw));
            made.push(configPath);
            continue;
          }
          stream.onLayer(e);
          if (e.payload._tag === 'Skipped') {
            skipped++;
            continue;
          }
          held = tarOf(e.payload)!.file;
          if (spec.failOnLayer === e.layer.index) throw new InjectedError(`dir output failed at layer ${e.layer.index}`);
          const target = `${spec.dest}/layer-${e.layer.index}`;
          const r = await ctx.effects.perform({ _tag: 'MoveIntoPlace', file: held, owner: ctx.owner, destination: target });
          held = undefined;
          made.push(target);
          layers++;
          bytes += tarOf(e.payload)!.size;
          if (r.copied) copied++;
        }
        stream.complete();
        return { destination: spec.dest, layers, layersSkipped: skipped, bytes, copiedAcrossDevices: copied };
      } catch (error) {
        if (held) await releaseQuietly(world, ctx, held, 'dir output');
        if (spec.skipRollback) throw error;
        for (const p of made.reverse()) {
          await fs.unlink(p).catch((e: unknown) => world.problems.push(`dir output: could not remove ${p}: ${(e as Error).message}`));
        }
        if (madeDir) await fs.removeDir(spec.dest).catch((e: unknown) => world.problems.push(`dir output: could not remove ${spec.dest}: ${(e as Error).message}`));
        throw error;
      }
    },
  };
}

/** Manifest order; appends each layer to a temp file beside the target, renamed over it at the end. */
export function tarOutput(world: World, spec: TarOutputSpec): ImageOutput {
  return {
    description: `tar://${spec.target}`,
    order: 'manifest',
    wants: tarUnlessPresent(spec.present),
    async consume(elements, ctx): Promise<OutputSummary> {
      const { fs } = world;
      let tar: TempFile | undefined;
      let held: TempFile | undefined;
      const stream = new StreamCheck();
      let layers = 0;
      let skipped = 0;
      let bytes = 0;
      try {
        for await (const e of elements) {
          if (e._tag === 'Config') {
            stream.onConfig(e);
            tar = await ctx.effects.perform({
              _tag: 'CreateTemp',
              owner: ctx.owner,
              purpose: 'tar',
              location: { _tag: 'Beside', target: spec.target },
            });
            await fs.writeFile(tar.path, new TextDecoder().decode(e.raw));
            continue;
          }
          stream.onLayer(e);
          if (e.layer.index !== stream.arrived - 1) throw new Error(`protocol: manifest order broken, got layer ${e.layer.index} after ${stream.arrived - 1} layers`);
          if (!tar) throw new Error('protocol: no tar file');
          if (e.payload._tag === 'Skipped') {
            skipped++;
            await fs.writeFile(tar.path, `|skip(${e.layer.index})`, 'append');
            continue;
          }
          held = tarOf(e.payload)!.file;
          if (spec.failOnLayer === e.layer.index) throw new InjectedError(`tar output failed at layer ${e.layer.index}`);
          const content = await fs.readFile(held.path);
          await fs.writeFile(tar.path, `|${content}`, 'append');
          const done = held;
          held = undefined;
          await ctx.effects.perform({ _tag: 'Release', file: done, owner: ctx.owner });
          layers++;
          bytes += tarOf(e.payload)!.size;
        }
        stream.complete();
        if (!tar) throw new Error('protocol: no tar file');
        const r = await ctx.effects.perform({ _tag: 'MoveIntoPlace', file: tar, owner: ctx.owner, destination: spec.target });
        tar = undefined;
        return { destination: spec.target, layers, layersSkipped: skipped, bytes, copiedAcrossDevices: r.copied ? 1 : 0 };
      } catch (error) {
        if (held) await releaseQuietly(world, ctx, held, 'tar output');
        if (tar) await releaseQuietly(world, ctx, tar, 'tar output');
        throw error;
      }
    },
  };
}

/**
 * Pull `stopAfter` elements through `take`, then stop early: by `break` out of `for await`,
 * or by calling the iterator's `return()` by hand (both must release what is in flight).
 */
export async function takeThenStop<T>(elements: AsyncIterable<T>, spec: { readonly stopAfter: number; readonly via: 'break' | 'return' }, take: (e: T) => Promise<void>): Promise<void> {
  if (spec.stopAfter <= 0) return;
  let n = 0;
  if (spec.via === 'break') {
    for await (const e of elements) {
      n++;
      await take(e);
      if (n >= spec.stopAfter) break;
    }
    return;
  }
  const it = elements[Symbol.asyncIterator]();
  try {
    while (n < spec.stopAfter) {
      const r = await it.next();
      if (r.done) break;
      n++;
      await take(r.value);
    }
  } finally {
    await it.return?.();
  }
}

/** Takes `stopAfter` elements (releasing what they carry), then stops early. Writes nothing. */
export function peekOutput(world: World, spec: PeekOutputSpec): ImageOutput {
  return {
    description: `peek(${spec.stopAfter})`,
    order: 'completion',
    wants: async () => Forms.tar,
    async consume(elements, ctx): Promise<OutputSummary> {
      let layers = 0;
      const take = async (e: ImageElement) => {
        if (e._tag === 'Layer' && e.payload._tag === 'Tar') {
          layers++;
          await ctx.effects.perform({ _tag: 'Release', file: tarOf(e.payload)!.file, owner: ctx.owner });
        }
      };
      // With stopAfter 0 it never pulls: runPipeline's own clean-up has to release everything in flight.
      await takeThenStop(elements, spec, take);
      void world;
      return { destination: 'peek', layers, layersSkipped: 0, bytes: 0, copiedAcrossDevices: 0 };
    },
  };
}

export function makeOutput(world: World, spec: OutputSpec): ImageOutput {
  switch (spec.kind) {
    case 'dir':
      return dirOutput(world, spec);
    case 'tar':
      return tarOutput(world, spec);
    case 'peek':
      return peekOutput(world, spec);
  }
}

/** What a successful run leaves in the output area: path → content. */
export function expectedOutputFiles(layers: number, filters: readonly FilterSpec[], output: OutputSpec): Map<string, string> {
  const out = new Map<string, string>();
  const replacedBySome = (i: number) => filters.some((f) => f.replace.includes(i));
  const skippedLayer = (i: number, present: readonly number[]) => present.includes(i) && !replacedBySome(i);
  const contentAfterFilters = (i: number) => filters.reduce((c, f) => (f.replace.includes(i) ? `${f.name}(${c})` : c), layerContent(i));
  switch (output.kind) {
    case 'dir':
      out.set(`${output.dest}/config.json`, `config:${layers}`);
      for (let i = 0; i < layers; i++) if (!skippedLayer(i, output.present)) out.set(`${output.dest}/layer-${i}`, contentAfterFilters(i));
      break;
    case 'tar': {
      let s = `config:${layers}`;
      for (let i = 0; i < layers; i++) s += skippedLayer(i, output.present) ? `|skip(${i})` : `|${contentAfterFilters(i)}`;
      out.set(output.target, s);
      break;
    }
    case 'peek':
      break;
  }
  return out;
}

export function expectedSkipped(layers: number, filters: readonly FilterSpec[], output: OutputSpec): number {
  if (output.kind === 'peek') return 0;
  let n = 0;
  for (let i = 0; i < layers; i++) if (output.present.includes(i) && !filters.some((f) => f.replace.includes(i))) n++;
  return n;
}
