/**
 * Which layer an input starts first: in manifest order, unless nothing downstream needs it
 * (no filter, an output that takes layers as they complete), when the largest blobs start
 * first so a large layer does not start last and run alone.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Digest } from '../../src/core/digest.js';
import type { ConfigElement, ImageElement, LayerDescriptor, LayerElement } from '../../src/core/element.js';
import { LedgerEffects } from '../../src/core/ledger-effects.js';
import { runPipeline } from '../../src/core/pipeline/compose.js';
import type { ImageFilter, ImageInput, ImageOutput, InputContext, LayerOrder } from '../../src/core/pipeline/types.js';
import { fetchInParallel } from '../../src/shell/inputs/layer-fetch.js';

const SIZES = [10, 5000, 30, 900, 5000, 1];

function layers(): LayerDescriptor[] {
  return SIZES.map((size, index) => {
    const digest = `sha256:${String(index).repeat(64).slice(0, 64)}` as Digest;
    return { index, sourceId: `l${index}`, diffId: digest, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size, blob: { digest, size, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' } };
  });
}

async function startOrder(order: LayerOrder | undefined, concurrency: number): Promise<number[]> {
  const started: number[] = [];
  const fetch = async (layer: LayerDescriptor): Promise<LayerElement> => {
    started.push(layer.index);
    return { _tag: 'Layer', layer, payload: { _tag: 'Skipped', reason: 'present' } };
  };
  const effects = new LedgerEffects();
  for await (const _ of fetchInParallel(layers(), fetch, { effects, owner: 'input', signal: new AbortController().signal, concurrency, order })) void _;
  return started;
}

/** The order the input was told, for a run with `filters` into an output taking layers in `outputOrder`. */
async function orderToldBy(outputOrder: LayerOrder, filters: ImageFilter[]): Promise<LayerOrder | undefined> {
  let told: LayerOrder | undefined | 'not asked' = 'not asked';
  const config: ConfigElement = { _tag: 'Config', image: { name: 'x', tag: 'y' }, digest: `sha256:${'c'.repeat(64)}` as Digest, raw: new Uint8Array(), config: {}, layers: [] } as unknown as ConfigElement;
  const input: ImageInput = {
    description: 'recording',
    async *elements(ctx: InputContext): AsyncGenerator<ImageElement> {
      told = ctx.order;
      yield config;
    },
  };
  const output: ImageOutput = {
    description: 'drain',
    order: outputOrder,
    wants: async () => ({ tar: false, blob: false }),
    async consume(elements) {
      for await (const _ of elements) void _;
      return { destination: 'drain', layers: 0, layersSkipped: 0, bytes: 0, copiedAcrossDevices: 0 };
    },
  };
  await runPipeline({ input, filters, output, effects: new LedgerEffects() });
  assert.notEqual(told, 'not asked');
  return told as LayerOrder | undefined;
}

describe('fetch order', () => {
  test("order 'completion': the largest blobs start first (ties in manifest order)", async () => {
    assert.deepEqual(await startOrder('completion', 1), [1, 4, 3, 2, 0, 5]);
  });

  test("order 'manifest' or none: manifest order", async () => {
    assert.deepEqual(await startOrder('manifest', 1), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(await startOrder(undefined, 2), [0, 1, 2, 3, 4, 5]);
  });

  test("runPipeline tells the input 'completion' only with no filter and an output that takes layers as they complete", async () => {
    const passThrough: ImageFilter = { name: 'pass', apply: (elements) => elements };
    assert.equal(await orderToldBy('completion', []), 'completion');
    assert.equal(await orderToldBy('manifest', []), 'manifest');
    assert.equal(await orderToldBy('completion', [passThrough]), 'manifest');
  });
});
