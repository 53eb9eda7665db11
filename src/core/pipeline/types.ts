/**
 * The three stage kinds of a pipeline and what they are given.
 *
 * @module
 */
import type { ImageElement, LayerDescriptor } from '../element.js';
import type { Effects } from '../ownership.js';

/** The output's "do you still need this layer?" question, asked by the input before it fetches a layer. */
export type WantsLayer = (layer: LayerDescriptor) => Promise<boolean>;

/** The order in which a stage needs layers. Config always comes first. */
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
}

/**
 * A source of one image: yields its config first, then each layer (any order, each
 * carrying its manifest index). An owned payload's file belongs to the consumer once the
 * element is delivered; files the input never delivered are its own to release.
 */
export interface ImageInput {
  readonly description: string;
  elements(ctx: InputContext): AsyncIterable<ImageElement>;
  /** Network counters for the summary (inputs that talk HTTP). */
  stats?(): { readonly retries: number; readonly rateLimited: number; readonly requests: number };
  /** Release connections; called once by whoever opened the input, after the run. */
  close?(): Promise<void>;
}

/** A stream transform. A filter releases every owned file it drops or replaces. */
export interface ImageFilter {
  readonly name: string;
  /** Content-changing filters answer "yes" so the output never skips a layer it cannot recognise. */
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
}
