/**
 * The three stage kinds of a pipeline and what they are given.
 *
 * @module
 */
import type { ConfigElement, ImageElement, LayerDescriptor, LayerElement, LayerForms } from '../element.js';
import type { Effects } from '../ownership.js';

/**
 * The output's "which forms of this layer do you need?" question, asked by the input
 * before it fetches a layer, wrapped by each filter on the way. Neither form means the
 * output has the layer: the input sends it as `Skipped: present`.
 */
export type WantsLayer = (layer: LayerDescriptor) => Promise<LayerForms>;

/** The order in which a stage needs layers. Config always comes first (see element.ts). */
export type LayerOrder = 'manifest' | 'completion';

export interface StageContext {
  readonly effects: Effects;
  readonly signal: AbortSignal;
  /** The owner name this stage uses in ownership effects. */
  readonly owner: string;
}

export interface InputContext extends StageContext {
  readonly wants: WantsLayer;
  /** How many layers the input may fetch at once. */
  readonly parallelism: number;
  /**
   * `completion`: nothing downstream needs the layers in manifest order (the output takes
   * them as they complete, and there is no filter), so the input may start the largest
   * first: with fewer slots than layers, a large layer started last would finish last,
   * alone. Absent or `manifest`: start them in manifest order.
   */
  readonly order?: LayerOrder;
  /** Told how far each layer's fetch has come (see {@link ProgressObserver.fetched}). */
  readonly progress?: ProgressObserver;
}

/**
 * Told how a run goes, for a progress display. Every method is optional. Layers are
 * named by manifest position (from 0, the base layer), as `info` and `check` number them.
 * Calls come often (a fetch reports every chunk), so they must be cheap; an observer that
 * throws is ignored, never fails the run. It is told, never asked: it holds no file.
 */
export interface ProgressObserver {
  /** A config arrived at the output (a provisional one first when a filter rewrites layers). */
  config?(config: ConfigElement): void;
  /** The input has `bytes` of layer `index`'s blob so far, of `total` when the source declares it. */
  fetched?(index: number, bytes: number, total: number | undefined): void;
  /** The output took this layer: its fetch and the filters are done, the write starts. */
  writing?(layer: LayerElement): void;
  /** The output asked for the next element: this layer is stored (or skipped). */
  written?(layer: LayerElement): void;
}

/**
 * A source of one image: yields its config first, then each layer (any order, each
 * carrying its manifest index) in the forms `wants` asked for. An owned payload's files
 * belong to the consumer once the element is delivered; files the input never delivered
 * are its own to release.
 */
export interface ImageInput {
  readonly description: string;
  elements(ctx: InputContext): AsyncIterable<ImageElement>;
  /** Network counters for the summary (inputs that talk HTTP). */
  stats?(): {
    readonly retries: number;
    readonly rateLimited: number;
    readonly requests: number;
    readonly inflated?: number;
    /** Blob bytes received over the network, retried ones included. */
    readonly downloaded?: number;
  };
  /** Release connections; called once by whoever opened the input, after the run. */
  close?(): Promise<void>;
}

/**
 * A stream transform. A filter releases every owned file it drops or replaces. One that
 * changes layers marks the first config `provisional` and sends the final config after
 * the last layer (see element.ts).
 */
export interface ImageFilter {
  readonly name: string;
  /** Content-changing filters ask for the tar of every layer, so the output never skips a layer it cannot recognise. */
  wants?(inner: WantsLayer): WantsLayer;
  apply(elements: AsyncIterable<ImageElement>, ctx: StageContext): AsyncIterable<ImageElement>;
}

export interface OutputSummary {
  readonly destination: string;
  readonly layers: number;
  readonly layersSkipped: number;
  /** Bytes of layer data the output stored (moved or written). */
  readonly bytes: number;
  /** Layers that had to be copied because the temp dir is on another filesystem. */
  readonly copiedAcrossDevices: number;
  /** Layers decompressed by an `Inflate` effect on the way into this output. */
  readonly inflated?: number;
  /** Layers compressed by a `Compress` effect on the way into this output. */
  readonly compressed?: number;
}

/**
 * A sink for one image. `consume` must either take ownership of each owned payload
 * (move it into place or release it) or leave it undelivered; on failure it removes its
 * partial output before throwing.
 */
export interface ImageOutput {
  readonly description: string;
  readonly order: LayerOrder;
  readonly wants: WantsLayer;
  consume(elements: AsyncIterable<ImageElement>, ctx: StageContext): Promise<OutputSummary>;
  /** Network counters for the summary (outputs that talk HTTP); `uploaded`: blob bytes sent. */
  stats?(): { readonly retries: number; readonly rateLimited: number; readonly requests: number; readonly uploaded?: number };
}
