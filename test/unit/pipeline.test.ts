/**
 * Example tests for the pipeline combinators: buffer, parallelMap, reorder, handOver and
 * runPipeline. (The ownership properties over random pipelines are in property-tests/.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Digest } from '../../src/core/digest.js';
import { type ConfigElement, type ImageElement, type LayerDescriptor, type LayerElement, Forms, tarOf, wantsAny } from '../../src/core/element.js';
import { InternalError, OccystrapError } from '../../src/core/errors.js';
import type { TempFile } from '../../src/core/ownership.js';
import { buffer } from '../../src/core/pipeline/buffer.js';
import { runPipeline } from '../../src/core/pipeline/compose.js';
import { handOver } from '../../src/core/pipeline/hand-over.js';
import { parallelMap } from '../../src/core/pipeline/parallel-map.js';
import { reorder } from '../../src/core/pipeline/reorder.js';
import type { ImageInput, ImageOutput } from '../../src/core/pipeline/types.js';
import { LedgerEffects } from '../../src/core/ledger-effects.js';
import { diskFullOutput } from '../support/disk-full-output.js';

const tick = () => new Promise<void>((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function settle(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await tick();
}

/** A source of 0..count-1 that records what it produced and whether it was closed. */
function countingSource(count: number, opts: { failAfter?: number } = {}) {
  const state = { produced: 0, returned: false, finished: false };
  async function* gen(): AsyncGenerator<number, void, undefined> {
    try {
      for (let i = 0; i < count; i++) {
        if (opts.failAfter !== undefined && i === opts.failAfter) throw new Error(`source failed at ${i}`);
        state.produced++;
        yield i;
      }
      state.finished = true;
    } finally {
      if (!state.finished) state.returned = true;
    }
  }
  return { state, source: gen() };
}


const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
const descriptor = (index: number): LayerDescriptor => ({ index, sourceId: `s${index}`, diffId: digest(index + 1), mediaType: 'application/vnd.oci.image.layer.v1.tar' });
const config = (n: number): ConfigElement => ({
  _tag: 'Config',
  image: { name: 'test/image', tag: 'latest' },
  digest: digest(999),
  raw: new Uint8Array(),
  config: { rootfs: { type: 'layers', diff_ids: Array.from({ length: n }, (_, i) => digest(i + 1)) } },
  layers: Array.from({ length: n }, (_, i) => descriptor(i)),
});

describe('buffer', () => {
  test('bounded read-ahead: the producer is never more than capacity+1 ahead, and does run ahead', async () => {
    for (const capacity of [1, 2, 4]) {
      const { state, source } = countingSource(20);
      let consumed = 0;
      let maxAhead = 0;
      for await (const v of buffer(capacity, { dispose: async () => {} })(source)) {
        assert.equal(v, consumed);
        consumed++;
        await settle(); // a slow consumer: let the pump run as far as it may
        maxAhead = Math.max(maxAhead, state.produced - consumed);
        assert.ok(state.produced - consumed <= capacity + 1, `capacity ${capacity}: producer ${state.produced - consumed} ahead`);
      }
      assert.equal(consumed, 20);
      assert.ok(maxAhead >= capacity, `capacity ${capacity}: the producer never ran ahead (max ${maxAhead})`);
    }
  });

  test('a source error surfaces at the consumer; values not delivered are disposed', async () => {
    const { source } = countingSource(10, { failAfter: 3 });
    const delivered: number[] = [];
    const disposed: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const v of buffer(2, { dispose: async (x: number) => void disposed.push(x) })(source)) {
          delivered.push(v);
          await settle();
        }
      })(),
      /source failed at 3/,
    );
    assert.deepEqual([...delivered, ...disposed].sort(), [0, 1, 2]);
  });

  test('early stop: queued values are disposed and the source is returned', async () => {
    const { state, source } = countingSource(100);
    const disposed: number[] = [];
    const delivered: number[] = [];
    for await (const v of buffer(3, { dispose: async (x: number) => void disposed.push(x) })(source)) {
      delivered.push(v);
      await settle(); // the buffer fills up behind us
      if (delivered.length === 2) break;
    }
    assert.deepEqual(delivered, [0, 1]);
    assert.ok(disposed.length >= 1, 'nothing was queued when we stopped');
    // Every value produced was either delivered or disposed, exactly once.
    assert.deepEqual([...delivered, ...disposed].sort((a, b) => a - b), Array.from({ length: state.produced }, (_, i) => i));
    assert.equal(state.returned, true, 'the source was not returned');
  });

  test('rejects a capacity that is not a positive integer', () => {
    const internal = (e: unknown) => OccystrapError.is(e) && e.code === 'EINTERNAL' && e instanceof InternalError;
    assert.throws(() => buffer(0, { dispose: async () => {} }), internal);
    assert.throws(() => buffer(1.5, { dispose: async () => {} }), internal);
  });
});

describe('parallelMap', () => {
  test('never runs more than `concurrency` calls at once, and does reach it', async () => {
    for (const concurrency of [1, 2, 3]) {
      let active = 0;
      let maxActive = 0;
      const map = parallelMap(
        async (v: number) => {
          active++;
          maxActive = Math.max(maxActive, active);
          await sleep(1 + (v % 3));
          active--;
          return v * 10;
        },
        { concurrency, order: 'completion', dispose: async () => {} },
      );
      const out: number[] = [];
      for await (const v of map(countingSource(9).source)) out.push(v);
      assert.deepEqual(out.sort((a, b) => a - b), [0, 10, 20, 30, 40, 50, 60, 70, 80]);
      assert.equal(maxActive, concurrency);
    }
  });

  test('input order keeps source order; completion order follows finishing times', async () => {
    const delays = [30, 1, 15];
    const fn = async (v: number) => {
      await sleep(delays[v] as number);
      return v;
    };
    const inOrder: number[] = [];
    for await (const v of parallelMap(fn, { concurrency: 3, order: 'input', dispose: async () => {} })(countingSource(3).source)) inOrder.push(v);
    assert.deepEqual(inOrder, [0, 1, 2]);
    const byCompletion: number[] = [];
    for await (const v of parallelMap(fn, { concurrency: 3, order: 'completion', dispose: async () => {} })(countingSource(3).source)) byCompletion.push(v);
    assert.deepEqual(byCompletion, [1, 2, 0]);
  });

  test('an error is raised; results settled but not delivered are disposed, calls in flight are aborted', async () => {
    const disposed: number[] = [];
    const aborted: number[] = [];
    const map = parallelMap(
      async (v: number, signal: AbortSignal) => {
        if (v === 0) {
          await sleep(10);
          throw new Error('call 0 failed');
        }
        if (v === 3) {
          // Long-running: only the abort ends it.
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          aborted.push(v);
          throw new Error('aborted');
        }
        return v;
      },
      { concurrency: 4, order: 'input', dispose: async (v) => void disposed.push(v) },
    );
    const { state, source } = countingSource(10);
    const delivered: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const v of map(source)) delivered.push(v);
      })(),
      /call 0 failed/,
    );
    assert.deepEqual(delivered, []);
    assert.deepEqual(disposed.sort(), [1, 2]);
    assert.deepEqual(aborted, [3]);
    assert.equal(state.returned, true);
  });

  test('early stop aborts calls in flight through their signal, disposes finished results, returns the source', async () => {
    const disposed: number[] = [];
    const sawAbort: number[] = [];
    const map = parallelMap(
      async (v: number, signal: AbortSignal) => {
        if (v === 0) return v;
        if (v === 1) {
          await sleep(5);
          return v; // finishes while the consumer is busy: settled, never delivered
        }
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        sawAbort.push(v);
        return v; // a result produced after the stop is disposed too
      },
      { concurrency: 3, order: 'input', dispose: async (v) => void disposed.push(v) },
    );
    const { state, source } = countingSource(10);
    for await (const v of map(source)) {
      assert.equal(v, 0);
      await sleep(20);
      break;
    }
    assert.deepEqual(sawAbort, [2]);
    assert.deepEqual(disposed.sort(), [1, 2]);
    assert.equal(state.returned, true);
    assert.equal(state.produced, 3, 'it pulled more than concurrency values');
  });

  test('an outer signal aborts the calls', async () => {
    const outer = new AbortController();
    const map = parallelMap(
      async (_v: number, signal: AbortSignal) => {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        throw new Error('call aborted');
      },
      { concurrency: 2, order: 'completion', dispose: async () => {}, signal: outer.signal },
    );
    const run = (async () => {
      for await (const _ of map(countingSource(5).source)) void _;
    })();
    await settle();
    outer.abort(new Error('stop'));
    await assert.rejects(run, /call aborted/);
  });
});

describe('reorder', () => {
  const byI = (v: { i: number }) => v.i;
  async function* of<T>(...values: T[]): AsyncGenerator<T, void, undefined> {
    for (const v of values) {
      await tick();
      yield v;
    }
  }

  test('restores position order, delivering each value as soon as it is due', async () => {
    const out: number[] = [];
    for await (const v of reorder({ indexOf: byI, dispose: async () => {} })(of({ i: 2 }, { i: 0 }, { i: 3 }, { i: 1 }, { i: 4 }))) out.push(v.i);
    assert.deepEqual(out, [0, 1, 2, 3, 4]);
    const withFirst: number[] = [];
    for await (const v of reorder({ indexOf: byI, first: -1, dispose: async () => {} })(of({ i: 1 }, { i: -1 }, { i: 0 }))) withFirst.push(v.i);
    assert.deepEqual(withFirst, [-1, 0, 1]);
  });

  test('a gap at the end is an error naming the missing position; held values are disposed', async () => {
    const disposed: number[] = [];
    const out: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const v of reorder({ indexOf: byI, dispose: async (v: { i: number }) => void disposed.push(v.i) })(of({ i: 0 }, { i: 3 }, { i: 2 }))) out.push(v.i);
      })(),
      /position 1 never arrived/,
    );
    assert.deepEqual(out, [0]);
    assert.deepEqual(disposed.sort(), [2, 3]);
  });

  test('a repeated position is an error; the offending and held values are disposed', async () => {
    const disposed: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const _ of reorder({ indexOf: byI, dispose: async (v: { i: number }) => void disposed.push(v.i) })(of({ i: 2 }, { i: 2 }))) void _;
      })(),
      /arrived twice or out of range/,
    );
    assert.deepEqual(disposed, [2, 2]);
  });

  test('early stop disposes every held value and returns the source', async () => {
    const disposed: number[] = [];
    let returned = false;
    async function* source(): AsyncGenerator<{ i: number }, void, undefined> {
      try {
        for (const i of [2, 3, 0, 1, 4]) {
          await tick();
          yield { i };
        }
      } finally {
        returned = true;
      }
    }
    const out: number[] = [];
    for await (const v of reorder({ indexOf: byI, dispose: async (v: { i: number }) => void disposed.push(v.i) })(source())) {
      out.push(v.i);
      break;
    }
    assert.deepEqual(out, [0]);
    assert.deepEqual(disposed.sort(), [2, 3]);
    assert.equal(returned, true);
  });
});

describe('handOver', () => {
  test('performs a HandOver for every owned file, on delivery, and re-yields every element', async () => {
    const effects = new LedgerEffects();
    const a = await effects.perform({ _tag: 'CreateTemp', owner: 'input', purpose: 'a' });
    const b = await effects.perform({ _tag: 'CreateTemp', owner: 'input', purpose: 'b' });
    const layer = (index: number, file?: TempFile): LayerElement => ({
      _tag: 'Layer',
      layer: descriptor(index),
      payload: file ? { _tag: 'Tar', tar: { file, size: 1 } } : { _tag: 'Skipped', reason: 'present' },
    });
    async function* source(): AsyncGenerator<ImageElement, void, undefined> {
      yield config(3);
      yield layer(0, a);
      yield layer(1);
      yield layer(2, b);
    }
    effects.performed.length = 0;
    const seen: string[] = [];
    for await (const e of handOver(effects, 'input', 'output')(source())) {
      seen.push(e._tag === 'Config' ? 'config' : `layer ${e.layer.index}`);
      // Delivered means handed over: the file is already the consumer's.
      for (const f of e._tag === 'Layer' && e.payload._tag === 'Tar' ? [tarOf(e.payload)!.file] : []) {
        assert.deepEqual(effects.ledger.entry(f.id)?.state, { _tag: 'Live', owner: 'output' });
      }
    }
    assert.deepEqual(seen, ['config', 'layer 0', 'layer 1', 'layer 2']);
    assert.deepEqual(effects.performed, [
      { _tag: 'HandOver', file: a, from: 'input', to: 'output' },
      { _tag: 'HandOver', file: b, from: 'input', to: 'output' },
    ]);
  });
});

describe('runPipeline', () => {
  /** An input that yields the config, then its layers in the given (non-manifest) order. */
  function shuffledInput(order: readonly number[], owned: (i: number) => boolean = () => true): ImageInput {
    return {
      description: 'shuffled',
      async *elements(ctx) {
        yield config(order.length);
        for (const i of order) {
          await tick();
          if (!owned(i) || !wantsAny(await ctx.wants(descriptor(i)))) {
            yield { _tag: 'Layer', layer: descriptor(i), payload: { _tag: 'Skipped', reason: 'present' } };
            continue;
          }
          const file = await ctx.effects.perform({ _tag: 'CreateTemp', owner: ctx.owner, purpose: `layer ${i}` });
          yield { _tag: 'Layer', layer: descriptor(i), payload: { _tag: 'Tar', tar: { file, size: 1 } } };
        }
      },
    };
  }

  function recordingOutput(order: 'manifest' | 'completion', seen: string[]): ImageOutput {
    return {
      description: 'recording',
      order,
      wants: async () => Forms.tar,
      async consume(elements, ctx) {
        let layers = 0;
        for await (const e of elements) {
          if (e._tag === 'Config') {
            seen.push('config');
            continue;
          }
          seen.push(String(e.layer.index));
          if (e.payload._tag === 'Tar') {
            await ctx.effects.perform({ _tag: 'MoveIntoPlace', file: tarOf(e.payload)!.file, owner: ctx.owner, destination: `/dest/${e.layer.index}` });
            layers++;
          }
        }
        return { destination: '/dest', layers, layersSkipped: 0, bytes: layers, copiedAcrossDevices: 0 };
      },
    };
  }

  test('a manifest-order output gets the config first, then layers 0..n-1, whatever order the input yields', async () => {
    for (const order of [[3, 0, 2, 1, 4], [4, 3, 2, 1, 0], [0, 1, 2, 3, 4], [1, 0]]) {
      for (const bufferDepth of [1, 3]) {
        const effects = new LedgerEffects();
        const seen: string[] = [];
        const summary = await runPipeline({ input: shuffledInput(order), output: recordingOutput('manifest', seen), effects, parallelism: 2, bufferDepth });
        assert.deepEqual(seen, ['config', ...order.map((_, i) => String(i))], `input order ${order}`);
        assert.equal(summary.layers, order.length);
        assert.ok(effects.ledger.all().every((e) => e.state._tag === 'Moved'));
      }
    }
  });

  test('a completion-order output gets the layers as the input yields them', async () => {
    const effects = new LedgerEffects();
    const seen: string[] = [];
    await runPipeline({ input: shuffledInput([2, 0, 1]), output: recordingOutput('completion', seen), effects });
    assert.deepEqual(seen, ['config', '2', '0', '1']);
  });

  test('when the output fails, every file still held by the stages is released', async () => {
    const effects = new LedgerEffects();
    // Every layer of shuffledInput is a tar: the output releases the first and fails.
    await assert.rejects(runPipeline({ input: shuffledInput([3, 1, 2, 0, 4]), output: diskFullOutput('manifest'), effects, parallelism: 2, bufferDepth: 2 }), /disk full/);
    // The input's generator was returned mid-way, so the layers it never created do not exist;
    // everything it did create ended released (by the output, the reorderer or the buffer).
    assert.ok(effects.ledger.all().length > 0);
    for (const e of effects.ledger.all()) assert.equal(e.state._tag, 'Released', `#${e.id} ${e.purpose}: ${JSON.stringify(e.state)}`);
  });
});
