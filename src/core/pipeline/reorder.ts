/**
 * Restore manifest order from completion order.
 *
 * @module
 */
import { InternalError } from '../errors.js';

export interface ReorderOptions<T> {
  /** The position of a value; positions are consecutive integers starting at `first`. */
  readonly indexOf: (value: T) => number;
  /** The first position (default 0). */
  readonly first?: number;
  /** Called for every held value that is never delivered. */
  readonly dispose: (value: T) => Promise<void>;
}

/**
 * Yield values in position order as soon as each becomes due, holding values that arrive
 * early. The source keeps being read while values are held, so later layers keep arriving
 * while an earlier one is awaited.
 *
 * - Errors: a repeated or out-of-range position is an error (the offending value is
 *   disposed); a source that ends with a gap raises an error naming the missing position.
 * - Cancellation: stopping early disposes every held value and returns the source.
 * - Ownership: held values are the reorderer's; yielded values are the consumer's.
 *
 * @example
 * ```ts
 * import { reorder } from 'occystrap/core';
 * async function* arrivals() { yield { i: 2 }; yield { i: 0 }; yield { i: 1 }; }
 * const out: number[] = [];
 * for await (const v of reorder({ indexOf: (v: { i: number }) => v.i, dispose: async () => {} })(arrivals())) out.push(v.i);
 * // out: [0, 1, 2]
 * ```
 */
export function reorder<T>(options: ReorderOptions<T>) {
  return (source: AsyncIterable<T>): AsyncGenerator<T, void, undefined> => reorderImpl(source, options);
}

async function* reorderImpl<T>(source: AsyncIterable<T>, { indexOf, first = 0, dispose }: ReorderOptions<T>): AsyncGenerator<T, void, undefined> {
  const held = new Map<number, T>();
  let next = first;
  try {
    for await (const value of source) {
      const index = indexOf(value);
      if (!Number.isInteger(index) || index < next || held.has(index)) {
        await dispose(value);
        throw new InternalError(`reorder: position ${index} arrived twice or out of range (next due: ${next})`);
      }
      held.set(index, value);
      while (held.has(next)) {
        const due = held.get(next) as T;
        held.delete(next);
        next++;
        yield due;
      }
    }
    if (held.size > 0) throw new InternalError(`reorder: position ${next} never arrived (holding ${[...held.keys()].join(', ')})`);
  } finally {
    const errors: unknown[] = [];
    for (const value of held.values()) {
      try {
        await dispose(value);
      } catch (e) {
        errors.push(e);
      }
    }
    held.clear();
    if (errors.length > 0) throw errors[0];
  }
}
