/**
 * Map a stream through an async function with bounded concurrency.
 *
 * @module
 */
import { AbortError, InternalError } from '../errors.js';

export interface ParallelMapOptions<B> {
  /** At most this many calls run (or wait undelivered) at once. */
  readonly concurrency: number;
  /** `input`: deliver results in source order; `completion`: as they finish. */
  readonly order: 'input' | 'completion';
  /** Called for every result produced but never delivered (early stop or error). */
  readonly dispose: (value: B) => Promise<void>;
  /** Aborting it aborts every call in flight. */
  readonly signal?: AbortSignal;
}

type Settled<B> = { readonly ok: true; readonly value: B } | { readonly ok: false; readonly error: unknown };

/**
 * Run `fn` over the source with at most `concurrency` calls in flight (results waiting
 * for delivery count against the limit, so held results stay bounded).
 *
 * - Errors: the first failed call (in delivery order) is raised; every other call is
 *   aborted through its signal and awaited, and their results are disposed.
 * - Cancellation: when the consumer stops early, calls in flight are aborted and
 *   awaited; every result not yet delivered is disposed; the source is returned.
 * - Ownership: `fn` owns what it creates until it returns; a result is the map's until it
 *   is yielded, then the consumer's. A call that throws must release what it created.
 *
 * @example
 * ```ts
 * import { parallelMap } from 'occystrap/core';
 * async function* ids() { yield 3; yield 1; yield 2; }
 * const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
 * const out: number[] = [];
 * const doubled = parallelMap(async (n: number) => { await sleep(n * 5); return n * 2; },
 *   { concurrency: 3, order: 'input', dispose: async () => {} });
 * for await (const n of doubled(ids())) out.push(n);
 * // out: [6, 2, 4]
 * ```
 */
export function parallelMap<A, B>(fn: (value: A, signal: AbortSignal, index: number) => Promise<B>, options: ParallelMapOptions<B>) {
  const { concurrency } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new InternalError(`concurrency must be a positive integer, got ${concurrency}`);
  return (source: AsyncIterable<A>): AsyncGenerator<B, void, undefined> => parallelMapImpl(source, fn, options);
}

async function* parallelMapImpl<A, B>(
  source: AsyncIterable<A>,
  fn: (value: A, signal: AbortSignal, index: number) => Promise<B>,
  { concurrency, order, dispose, signal }: ParallelMapOptions<B>,
): AsyncGenerator<B, void, undefined> {
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(signal?.reason);
  if (signal?.aborted) controller.abort(signal.reason);
  else signal?.addEventListener('abort', onOuterAbort, { once: true });

  const iterator = source[Symbol.asyncIterator]();
  const running = new Map<number, Promise<void>>();
  const settled = new Map<number, Settled<B>>();
  let started = 0;
  let delivered = 0;
  let exhausted = false;

  const start = (value: A, index: number) => {
    let call: Promise<B>;
    try {
      call = fn(value, controller.signal, index);
    } catch (error) {
      call = Promise.reject(error);
    }
    const tracked = call.then(
      (v): Settled<B> => ({ ok: true, value: v }),
      (error: unknown): Settled<B> => ({ ok: false, error }),
    ).then((s) => {
      running.delete(index);
      settled.set(index, s);
    });
    running.set(index, tracked);
  };

  try {
    for (;;) {
      while (!exhausted && running.size + settled.size < concurrency) {
        const r = await iterator.next();
        if (r.done) {
          exhausted = true;
          break;
        }
        start(r.value, started++);
      }
      if (running.size === 0 && settled.size === 0) return;

      let pick: number;
      if (order === 'input') {
        pick = delivered;
        if (!settled.has(pick)) await running.get(pick);
      } else {
        if (settled.size === 0) await Promise.race(running.values());
        pick = settled.keys().next().value as number;
      }
      const result = settled.get(pick) as Settled<B>;
      settled.delete(pick);
      delivered++;
      if (!result.ok) throw result.error;
      yield result.value;
    }
  } finally {
    signal?.removeEventListener('abort', onOuterAbort);
    controller.abort(new AbortError(new Error('parallelMap stopped')));
    await Promise.all(running.values());
    const disposeErrors: unknown[] = [];
    for (const s of settled.values()) {
      if (!s.ok) continue;
      try {
        await dispose(s.value);
      } catch (e) {
        disposeErrors.push(e);
      }
    }
    settled.clear();
    if (!exhausted) await iterator.return?.();
    if (disposeErrors.length > 0) throw disposeErrors[0];
  }
}
