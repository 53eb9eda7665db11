/**
 * A bounded read-ahead buffer between two stages.
 *
 * @module
 */
import { InternalError } from '../errors.js';

export interface BufferOptions<T> {
  /** Called for every value the buffer took from the source but never delivered. */
  readonly dispose: (value: T) => Promise<void>;
}

/**
 * Pull up to `capacity` values ahead of the consumer, so a slow consumer (an output
 * writing to disk) never stalls a fast producer (an input downloading layers), and memory
 * stays bounded by `capacity` elements.
 *
 * - Errors: a source error is raised at the consumer's next pull (values still queued are
 *   disposed, not delivered).
 * - Cancellation: when the consumer stops early (`break`, `return()`, a throw in its
 *   loop), the buffer stops pulling, waits for the pull in flight, disposes that value and
 *   every queued one, then returns the source.
 * - Ownership: a queued value is the buffer's; a yielded value is the consumer's.
 *
 * @example
 * ```ts
 * import { buffer } from 'occystrap/core';
 * async function* numbers() { for (let i = 0; i < 5; i++) yield i; }
 * const seen: number[] = [];
 * for await (const n of buffer<number>(2, { dispose: async () => {} })(numbers())) seen.push(n);
 * // seen: [0, 1, 2, 3, 4]
 * ```
 */
export function buffer<T>(capacity: number, options: BufferOptions<T>) {
  if (!Number.isInteger(capacity) || capacity < 1) throw new InternalError(`buffer capacity must be a positive integer, got ${capacity}`);
  return (source: AsyncIterable<T>): AsyncGenerator<T, void, undefined> => bufferImpl(source, capacity, options.dispose);
}

async function* bufferImpl<T>(source: AsyncIterable<T>, capacity: number, dispose: (v: T) => Promise<void>): AsyncGenerator<T, void, undefined> {
  const iterator = source[Symbol.asyncIterator]();
  const queue: T[] = [];
  let finished = false;
  let failure: { error: unknown } | undefined;
  let stopped = false;
  let wakeConsumer: () => void = () => {};
  let wakeProducer: () => void = () => {};
  const disposeErrors: unknown[] = [];
  const safeDispose = async (v: T) => {
    try {
      await dispose(v);
    } catch (e) {
      disposeErrors.push(e);
    }
  };

  const pump = (async () => {
    let exhausted = false;
    try {
      while (!stopped) {
        while (queue.length >= capacity && !stopped) await new Promise<void>((r) => (wakeProducer = r));
        if (stopped) break;
        const r = await iterator.next();
        if (r.done) {
          exhausted = true;
          break;
        }
        if (stopped) {
          await safeDispose(r.value);
          break;
        }
        queue.push(r.value);
        wakeConsumer();
      }
    } catch (error) {
      failure = { error };
      exhausted = true; // a generator that threw is finished
    } finally {
      if (!exhausted) {
        try {
          await iterator.return?.();
        } catch (error) {
          failure ??= { error };
        }
      }
      finished = true;
      wakeConsumer();
    }
  })();

  try {
    for (;;) {
      if (failure) throw failure.error;
      if (queue.length > 0) {
        const next = queue.shift() as T;
        wakeProducer();
        yield next;
        continue;
      }
      if (finished) {
        if (failure) throw (failure as { error: unknown }).error;
        return;
      }
      await new Promise<void>((r) => (wakeConsumer = r));
    }
  } finally {
    stopped = true;
    wakeProducer();
    await pump;
    for (const v of queue.splice(0)) await safeDispose(v);
    if (disposeErrors.length > 0 && !failure) throw disposeErrors[0];
  }
}
