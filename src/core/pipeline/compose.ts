/**
 * Compose input → filters → output into one run.
 *
 * @module
 */
import { type ImageElement, type LayerElement, releaseElement } from '../element.js';
import { AbortError } from '../errors.js';
import type { Effects } from '../ownership.js';
import { buffer } from './buffer.js';
import { handOver } from './hand-over.js';
import { reorder } from './reorder.js';
import type { ImageFilter, ImageInput, ImageOutput, OutputSummary, ProgressObserver, WantsLayer } from './types.js';

export interface PipelineOptions {
  readonly input: ImageInput;
  readonly filters?: readonly ImageFilter[];
  readonly output: ImageOutput;
  readonly effects: Effects;
  /** Aborting it cancels the run: every stage stops and undelivered files are released. */
  readonly signal?: AbortSignal;
  /** Layers fetched at once by the input (default 4). */
  readonly parallelism?: number;
  /** Elements the input may run ahead of the output (default: 2 × parallelism). */
  readonly bufferDepth?: number;
  /** Told how the run goes (fetch bytes from the input; configs and layers as the output takes and stores them). */
  readonly progress?: ProgressObserver;
}

/** The stage owner names used in ownership effects, in flow order. */
export const Owners = {
  input: 'input',
  buffer: 'buffer',
  filter: (i: number, name: string) => `filter[${i}]:${name}`,
  output: 'output',
} as const;

/**
 * The order positions a pipeline gives elements: the first config -1, the layers their
 * indexes, a final config (the second config, after a provisional one) one past the last
 * layer. Stateful: one per stream.
 */
export function elementPositions(): (e: ImageElement) => number {
  let configs = 0;
  return (e) => {
    if (e._tag !== 'Config') return e.layer.index;
    return configs++ === 0 ? -1 : e.layers.length;
  };
}

/**
 * The output's `wants`, wrapped by each filter from the output back to the input. A filter
 * without `wants` of its own passes the forms on but not a `place`, a `stream` or a `consume`: it
 * may read the tar, which a placed or consumed layer does not have as a file of its own, or change the
 * layer, whose original bytes a stream would already have sent on.
 */
export function composeWants(filters: readonly ImageFilter[], outputWants: WantsLayer): WantsLayer {
  return filters.reduceRight<WantsLayer>((inner, f) => (f.wants ? f.wants(inner) : withoutPlace(inner)), outputWants);
}

function withoutPlace(inner: WantsLayer): WantsLayer {
  return async (layer) => {
    const forms = await inner(layer);
    return forms.place || forms.stream || forms.consume ? { tar: forms.tar, blob: forms.blob } : forms;
  };
}

/** The observer with every call guarded: a display that throws must not fail the run. */
function quietObserver(o: ProgressObserver): ProgressObserver {
  const guard =
    <A extends unknown[]>(f: ((...args: A) => void) | undefined) =>
    (...args: A) => {
      try {
        f?.apply(o, args);
      } catch {
        // ignored: progress is told, never in the way
      }
    };
  return { config: guard(o.config), fetched: guard(o.fetched), writing: guard(o.writing), written: guard(o.written) };
}

/**
 * Run one image through input → buffer → filters → [reorder] → output.
 *
 * Ownership travels with the elements: the input owns what it creates; each hand-over
 * stage transfers an element's file to the next owner when it delivers it; the buffer,
 * the filters and the reorderer release whatever they hold but never deliver; the output
 * moves or releases what it receives. The input is always asked for completion order; a
 * reorder stage in front of the output restores manifest order when the output needs it,
 * so downloads never wait for writes.
 *
 * - Errors: the first error from any stage aborts the others (through the signal every
 *   stage receives), every stage's undelivered files are released, the output removes its
 *   partial result, and the error is raised.
 * - Cancellation: aborting `signal` raises an {@link AbortError} with the same clean-up.
 * - Progress: `progress` is told each config and layer as the output takes it, each layer
 *   again when the output asks for the next element, and (through the input) each
 *   layer's fetched bytes; it never changes the run.
 * - Ownership: every temp file created during the run ends moved or released once,
 *   provided each stage honours its contract; the shell's scope is the safety net for one
 *   that does not.
 *
 * @example
 * ```ts
 * import { runPipeline } from 'occystrap/core';
 * const summary = await runPipeline({ input, output, effects, parallelism: 4 });
 * console.log(`${summary.layers} layers, ${summary.bytes} bytes`);
 * ```
 */
export async function runPipeline(options: PipelineOptions): Promise<OutputSummary> {
  const { input, output, effects } = options;
  const progress = options.progress && quietObserver(options.progress);
  const filters = options.filters ?? [];
  const parallelism = options.parallelism ?? 4;
  const depth = options.bufferDepth ?? Math.max(2, 2 * parallelism);
  const controller = new AbortController();
  const outer = options.signal;
  const onAbort = () => controller.abort(outer?.reason);
  if (outer?.aborted) throw new AbortError(outer.reason);
  outer?.addEventListener('abort', onAbort, { once: true });
  const signal = controller.signal;

  let stream: AsyncIterable<ImageElement> = input.elements({
    effects,
    signal,
    owner: Owners.input,
    wants: composeWants(filters, output.wants),
    parallelism,
    order: filters.length === 0 ? output.order : 'manifest',
    ...(progress ? { progress } : {}),
  });
  stream = handOver(effects, Owners.input, Owners.buffer)(stream);
  stream = buffer<ImageElement>(depth, { dispose: releaseElement(effects, Owners.buffer) })(stream);
  let owner: string = Owners.buffer;
  filters.forEach((filter, i) => {
    const name = Owners.filter(i, filter.name);
    stream = handOver(effects, owner, name)(stream);
    stream = filter.apply(stream, { effects, signal, owner: name });
    owner = name;
  });
  stream = handOver(effects, owner, Owners.output)(stream);
  if (output.order === 'manifest') {
    stream = reorder<ImageElement>({ indexOf: elementPositions(), first: -1, dispose: releaseElement(effects, Owners.output) })(stream);
  }
  const head = stream[Symbol.asyncIterator]();
  // The layer the output took last: stored once the output asks for the next element.
  let writing: LayerElement | undefined;
  const stored = () => {
    if (writing) progress?.written?.(writing);
    writing = undefined;
  };
  const guarded: AsyncIterable<ImageElement> = {
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        if (signal.aborted) throw new AbortError(signal.reason);
        if (!progress) return head.next();
        stored();
        const r = await head.next();
        if (r.done) return r;
        if (r.value._tag === 'Config') progress.config?.(r.value);
        else progress.writing?.((writing = r.value));
        return r;
      },
      return: (v?: unknown) => head.return?.(v) ?? Promise.resolve({ done: true as const, value: undefined }),
    }),
  };

  try {
    return await output.consume(guarded, { effects, signal, owner: Owners.output });
  } catch (error) {
    if (!signal.aborted) controller.abort(error);
    if (outer?.aborted) throw new AbortError(outer.reason);
    throw error;
  } finally {
    outer?.removeEventListener('abort', onAbort);
    if (!signal.aborted) controller.abort(new AbortError(new Error('pipeline finished')));
    // Return the chain so every stage releases what it still holds.
    try {
      await head.return?.(undefined);
    } catch {
      // The run's outcome is already decided; the scope releases anything left.
    }
  }
}
