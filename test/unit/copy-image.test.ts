/**
 * The copy loop (copyInto): the element rules it enforces, the order of destination
 * operations, the forms it gives each layer (Inflate/Compress effects), duplicates, and
 * abort on failure. Over a ledger-only effects handler (no files).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Digest } from '../../src/core/digest.js';
import { type BlobFile, type ConfigElement, type DataPayload, type ImageElement, type LayerDescriptor, Forms, ownedFiles } from '../../src/core/element.js';
import { OccystrapError } from '../../src/core/errors.js';
import type { Effects, OwnershipEffect, TempFile } from '../../src/core/ownership.js';
import { elementPositions } from '../../src/core/pipeline/compose.js';
import { copyInto, type DestinationNeeds, type ImageDestination, type LayerRecord } from '../../src/core/pipeline/copy-image.js';
import { reorder } from '../../src/core/pipeline/reorder.js';
import type { StageContext } from '../../src/core/pipeline/types.js';
import { LedgerEffects } from '../../src/core/ledger-effects.js';

const OWNER = 'output';
const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
const descriptor = (index: number, diff = index + 1): LayerDescriptor => ({
  index,
  sourceId: `s${index}`,
  diffId: digest(diff),
  mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
  blob: { digest: digest(100 + diff), size: 10, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
});
const config = (diffs: number[], extra: Partial<ConfigElement> = {}): ConfigElement => ({
  _tag: 'Config',
  image: { name: 'test/image', tag: 'latest' },
  digest: digest(999),
  raw: new Uint8Array([1]),
  config: { rootfs: { type: 'layers', diff_ids: diffs.map(digest) } },
  layers: diffs.map((d, i) => descriptor(i, d)),
  ...extra,
});

/** Ledger-only effects; Inflate answers the digest set for the source path (default: the path's diff_id tag). */
class MemoryEffects extends LedgerEffects {
  /** What an Inflate of the file at a path yields. */
  readonly inflatesTo = new Map<string, Digest>();
  protected override async transcode(effect: Extract<OwnershipEffect, { _tag: 'Inflate' | 'Compress' }>): Promise<unknown> {
    this.ledger.checkOwned(effect.source, effect.owner, effect._tag);
    const e = this.ledger.register(effect.owner, effect.purpose, (id) => `/mem/${id}`);
    const d = effect._tag === 'Inflate' ? (this.inflatesTo.get(effect.source.path) ?? digest(0)) : digest(5000 + e.id);
    return { file: { id: e.id, path: e.path }, digest: d, size: 7 };
  }
  live(): string[] {
    return this.ledger
      .all()
      .filter((e) => e.state._tag === 'Live')
      .map((e) => e.path);
  }
  count(tag: OwnershipEffect['_tag']): number {
    return this.performed.filter((e) => e._tag === tag).length;
  }
}

/** A destination that records its calls and moves every file it is given. */
function recorder(needs: DestinationNeeds, options: { failAt?: number; concurrency?: number; order?: 'manifest' | 'completion' } = {}) {
  const calls: string[] = [];
  const given: DataPayload[] = [];
  let committed: LayerRecord<number>[] | undefined;
  let inFlight = 0;
  let maxInFlight = 0;
  const destination: ImageDestination<number> = {
    description: 'memory',
    order: options.order ?? 'completion',
    needs,
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    begin: async (c) => void calls.push(`begin${c.provisional ? ' provisional' : ''}`),
    putConfig: async (c) => void calls.push(`config ${c.digest.slice(-3)}`),
    async putLayer(layer, payload, ctx) {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      calls.push(`layer ${layer.index}`);
      given.push(payload);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      for (const file of ownedFiles({ _tag: 'Layer', layer, payload })) {
        if (options.failAt === layer.index) await ctx.effects.perform({ _tag: 'Release', file, owner: ctx.owner });
        else await ctx.effects.perform({ _tag: 'MoveIntoPlace', file, owner: ctx.owner, destination: `/store/${layer.index}` });
      }
      if (options.failAt === layer.index) throw new Error(`put failed at ${layer.index}`);
      return { stored: layer.index, bytes: 10 };
    },
    async commit(image) {
      calls.push('commit');
      committed = [...image.layers];
      return { destination: '/store' };
    },
    abort: async () => void calls.push('abort'),
  };
  return { destination, calls, given, committed: () => committed, maxInFlight: () => maxInFlight };
}

async function tarLayer(effects: MemoryEffects, layer: LayerDescriptor): Promise<ImageElement> {
  const file = await effects.perform({ _tag: 'CreateTemp', owner: OWNER, purpose: `tar-${layer.index}` });
  effects.inflatesTo.set(file.path, layer.diffId);
  return { _tag: 'Layer', layer, payload: { _tag: 'Tar', tar: { file, size: 10 } } };
}

async function blobLayer(effects: MemoryEffects, layer: LayerDescriptor, inflatesTo: Digest = layer.diffId): Promise<ImageElement> {
  const file = await effects.perform({ _tag: 'CreateTemp', owner: OWNER, purpose: `blob-${layer.index}` });
  effects.inflatesTo.set(file.path, inflatesTo);
  const blob: BlobFile = { file, digest: layer.blob!.digest, size: 10, mediaType: layer.blob!.mediaType, compression: 'gzip' };
  return { _tag: 'Layer', layer, payload: { _tag: 'Blob', blob } };
}

async function bothLayer(effects: MemoryEffects, layer: LayerDescriptor): Promise<ImageElement> {
  const t = (await tarLayer(effects, layer)) as { payload: { tar: { file: TempFile; size: number } } };
  const b = (await blobLayer(effects, layer)) as { payload: { blob: BlobFile } };
  return { _tag: 'Layer', layer, payload: { _tag: 'Both', tar: t.payload.tar, blob: b.payload.blob } };
}

function ctxFor(effects: Effects): StageContext {
  return { effects, signal: new AbortController().signal, owner: OWNER };
}

async function* stream(elements: ImageElement[]): AsyncGenerator<ImageElement> {
  yield* elements;
}

const isOutputError = (pattern: RegExp) => (e: unknown) => OccystrapError.is(e) && e.code === 'EOUTPUT' && pattern.test(e.message);

describe('copy loop: the element rules', () => {
  const cases: Array<[string, (fx: MemoryEffects) => Promise<ImageElement[]>, RegExp]> = [
    ['a layer before the config', async (fx) => [await tarLayer(fx, descriptor(0))], /a layer arrived before the config/],
    ['a second final config', async (fx) => [config([1]), await tarLayer(fx, descriptor(0)), config([1])], /a second config arrived/],
    ['a provisional config with no final one', async (fx) => [config([1], { provisional: true }), await tarLayer(fx, descriptor(0))], /the final config never arrived/],
    ['a final config before the last layer', async (fx) => [config([1, 2], { provisional: true }), await tarLayer(fx, descriptor(0)), config([1, 2])], /final config arrived after 1 of 2 layers/],
    ['a layer twice', async (fx) => [config([1, 2]), await tarLayer(fx, descriptor(0)), await tarLayer(fx, descriptor(0))], /layer 0 arrived twice/],
    ['a layer out of range', async (fx) => [config([1]), await tarLayer(fx, descriptor(3))], /layer 3 arrived but the image has 1 layers/],
    ['a missing layer', async (fx) => [config([1, 2]), await tarLayer(fx, descriptor(0))], /got 1 of 2 layers/],
    ['no image at all', async () => [], /the input produced no image/],
    ['a layer whose diff_id is not the final config\'s', async (fx) => [config([1], { provisional: true }), await tarLayer(fx, descriptor(0, 1)), config([7])], /layer 0 arrived as .* but the config names/],
    ['a duplicate nobody carried', async () => [config([1]), { _tag: 'Layer', layer: descriptor(0), payload: { _tag: 'Skipped', reason: 'duplicate' } }], /arrived without data as a duplicate, and no other layer carried it/],
  ];
  for (const [name, make, pattern] of cases) {
    test(`${name}: one EOUTPUT error, every file released or moved, abort when begun`, async () => {
      const fx = new MemoryEffects();
      const rec = recorder({ _tag: 'Tar' });
      const elements = await make(fx);
      await assert.rejects(copyInto(rec.destination).consume(stream(elements), ctxFor(fx)), isOutputError(pattern));
      assert.deepEqual(fx.live(), [], 'no file left live');
      assert.ok(!rec.calls.includes('commit'));
      assert.equal(rec.calls.includes('abort'), rec.calls.some((c) => c.startsWith('begin')), 'abort exactly when begin was called');
      assert.ok(rec.calls.filter((c) => c === 'abort').length <= 1);
    });
  }
});

describe('copy loop: operations in order', () => {
  test('a final first config: begin, putConfig, the layers, commit', async () => {
    const fx = new MemoryEffects();
    const rec = recorder({ _tag: 'Tar' });
    const c = config([1, 2]);
    const summary = await copyInto(rec.destination).consume(stream([c, await tarLayer(fx, descriptor(1, 2)), await tarLayer(fx, descriptor(0, 1))]), ctxFor(fx));
    assert.deepEqual(rec.calls, ['begin', 'config 3e7', 'layer 1', 'layer 0', 'commit']);
    assert.deepEqual(summary, { destination: '/store', layers: 2, layersSkipped: 0, bytes: 20, copiedAcrossDevices: 0, inflated: 0, compressed: 0 });
    assert.deepEqual(fx.live(), []);
  });

  test('a provisional first config: the final config is put after the layers, and commit gets it', async () => {
    const fx = new MemoryEffects();
    const rec = recorder({ _tag: 'Tar' });
    const final = { ...config([5]), digest: digest(0xabc) };
    await copyInto(rec.destination).consume(stream([config([1], { provisional: true }), await tarLayer(fx, descriptor(0, 5)), final]), ctxFor(fx));
    assert.deepEqual(rec.calls, ['begin provisional', 'layer 0', 'config abc', 'commit']);
  });

  test('reorder places a final config after the last layer for a manifest-order output', async () => {
    const fx = new MemoryEffects();
    const out: string[] = [];
    const positions = elementPositions();
    const elements = [config([1, 2], { provisional: true }), await tarLayer(fx, descriptor(1, 2)), await tarLayer(fx, descriptor(0, 1)), config([1, 2])];
    for await (const e of reorder<ImageElement>({ indexOf: positions, first: -1, dispose: async () => undefined })(stream(elements))) {
      out.push(e._tag === 'Config' ? (e.provisional ? 'provisional' : 'final') : `layer ${e.layer.index}`);
    }
    assert.deepEqual(out, ['provisional', 'layer 0', 'layer 1', 'final']);
  });

  test('layers are put up to `concurrency` at once', async () => {
    const fx = new MemoryEffects();
    const rec = recorder({ _tag: 'Tar' }, { concurrency: 2 });
    const layers = await Promise.all([0, 1, 2, 3, 4].map((i) => tarLayer(fx, descriptor(i))));
    await copyInto(rec.destination).consume(stream([config([1, 2, 3, 4, 5]), ...layers]), ctxFor(fx));
    assert.equal(rec.maxInFlight(), 2);
  });

  test('a failing put: the puts under way settle, then abort once, no commit, nothing live', async () => {
    const fx = new MemoryEffects();
    const rec = recorder({ _tag: 'Tar' }, { concurrency: 3, failAt: 1 });
    const layers = await Promise.all([0, 1, 2, 3].map((i) => tarLayer(fx, descriptor(i))));
    await assert.rejects(copyInto(rec.destination).consume(stream([config([1, 2, 3, 4]), ...layers]), ctxFor(fx)), /put failed at 1/);
    assert.equal(rec.calls.at(-1), 'abort');
    assert.equal(rec.calls.filter((c) => c === 'abort').length, 1);
    assert.ok(!rec.calls.includes('commit'));
    assert.deepEqual(fx.live(), []);
  });

  test('duplicates and present layers reach commit as records; a duplicate names its carrier', async () => {
    const fx = new MemoryEffects();
    const rec = recorder({ _tag: 'Tar' });
    const c = config([1, 1, 2]);
    const elements: ImageElement[] = [
      c,
      { _tag: 'Layer', layer: c.layers[0]!, payload: { _tag: 'Skipped', reason: 'duplicate' } },
      await tarLayer(fx, c.layers[1]!),
      { _tag: 'Layer', layer: c.layers[2]!, payload: { _tag: 'Skipped', reason: 'present' } },
    ];
    const summary = await copyInto(rec.destination).consume(stream(elements), ctxFor(fx));
    assert.deepEqual(
      rec.committed()!.map((r) => (r._tag === 'Duplicate' ? `dup of ${r.of}` : r._tag)),
      ['dup of 1', 'Stored', 'Present'],
    );
    assert.equal(summary.layersSkipped, 2);
  });
});

describe('copy loop: forms', () => {
  test('a blob destination given blobs: passed through, no Inflate and no Compress', async () => {
    const fx = new MemoryEffects();
    const rec = recorder({ _tag: 'Blob', compression: 'gzip' });
    const summary = await copyInto(rec.destination).consume(stream([config([1, 2]), await blobLayer(fx, descriptor(0)), await blobLayer(fx, descriptor(1, 2))]), ctxFor(fx));
    assert.deepEqual(rec.given.map((p) => p._tag), ['Blob', 'Blob']);
    assert.equal(fx.count('Inflate') + fx.count('Compress'), 0);
    assert.equal(summary.compressed, 0);
  });

  test('a blob destination given a tar: one Compress, the tar released, the new blob given', async () => {
    const fx = new MemoryEffects();
    const rec = recorder({ _tag: 'Blob', compression: 'zstd' });
    const summary = await copyInto(rec.destination).consume(stream([config([1]), await tarLayer(fx, descriptor(0))]), ctxFor(fx));
    assert.equal(fx.count('Compress'), 1);
    const given = rec.given[0]!;
    assert.equal(given._tag, 'Blob');
    assert.equal(given._tag === 'Blob' && given.blob.compression, 'zstd');
    assert.equal(given._tag === 'Blob' && given.blob.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
    assert.equal(summary.compressed, 1);
    assert.deepEqual(fx.live(), []);
  });

  test('a tar destination given both forms: the blob released, no Inflate', async () => {
    const fx = new MemoryEffects();
    const rec = recorder({ _tag: 'Tar' });
    await copyInto(rec.destination).consume(stream([config([1]), await bothLayer(fx, descriptor(0))]), ctxFor(fx));
    assert.deepEqual(rec.given.map((p) => p._tag), ['Tar']);
    assert.equal(fx.count('Inflate'), 0);
    assert.equal(fx.count('Release'), 1);
    assert.deepEqual(fx.live(), []);
  });

  test('a tar destination given a blob: one Inflate whose digest is checked against the diff_id', async () => {
    const fx = new MemoryEffects();
    const rec = recorder({ _tag: 'Tar' });
    const summary = await copyInto(rec.destination).consume(stream([config([1]), await blobLayer(fx, descriptor(0))]), ctxFor(fx));
    assert.equal(fx.count('Inflate'), 1);
    assert.equal(summary.inflated, 1);
    assert.deepEqual(rec.given.map((p) => p._tag), ['Tar']);
    assert.deepEqual(fx.live(), []);
  });

  test('an Inflate that gives another digest: EDIGEST, both files released, abort', async () => {
    const fx = new MemoryEffects();
    const rec = recorder({ _tag: 'Tar' });
    await assert.rejects(
      copyInto(rec.destination).consume(stream([config([1]), await blobLayer(fx, descriptor(0), digest(42))]), ctxFor(fx)),
      (e: unknown) => OccystrapError.is(e) && e.code === 'EDIGEST' && /uncompresses to .* but the config's diff_id is/.test(e.message),
    );
    assert.deepEqual(fx.live(), []);
    assert.deepEqual(rec.calls, ['begin', 'config 3e7', 'abort']);
  });

  test('wants: what the destination needs, or nothing when it has the layer', async () => {
    const has = new Set([1]);
    const output = copyInto<null>({
      description: 'x',
      order: 'completion',
      needs: { _tag: 'Blob', compression: 'gzip' },
      has: async (l) => has.has(l.index),
      begin: async () => undefined,
      putConfig: async () => undefined,
      putLayer: async () => ({ stored: null, bytes: 0 }),
      commit: async () => ({ destination: 'x' }),
      abort: async () => undefined,
    });
    assert.deepEqual(await output.wants(descriptor(0)), Forms.blob);
    assert.deepEqual(await output.wants(descriptor(1)), Forms.none);
  });
});
