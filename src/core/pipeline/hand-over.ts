/**
 * Transfer ownership of each element's files from one stage to the next, on delivery.
 *
 * @module
 */
import { type ImageElement, ownedFiles } from '../element.js';
import type { Effects } from '../ownership.js';

/**
 * Re-yield every element, first performing a `HandOver` effect from `from` to `to` for
 * each temp file it carries.
 *
 * - Errors: a failed hand-over (an ownership violation) propagates; that element's file
 *   stays with `from` and the run's scope releases it.
 * - Cancellation: returning the generator returns the source.
 * - Ownership: an element belongs to `to` from the moment it is yielded.
 *
 * @example
 * ```ts
 * import { handOver } from 'occystrap/core';
 * const stream = handOver(effects, 'input', 'output')(input.elements(ctx));
 * ```
 */
export function handOver(effects: Effects, from: string, to: string) {
  return async function* handOverStage(source: AsyncIterable<ImageElement>): AsyncGenerator<ImageElement, void, undefined> {
    for await (const element of source) {
      for (const file of ownedFiles(element)) await effects.perform({ _tag: 'HandOver', file, from, to });
      yield element;
    }
  };
}
