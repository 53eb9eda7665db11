// The shared machinery of content filters (src/core/filters/layer-rewrite.ts), driven by
// hand over an in-memory effects handler and LayerFiles port: new files, released files,
// new diff_ids, the re-emitted config, duplicates, failures, early stops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import { decodeImageConfig } from '../../src/core/codecs/oci.js';
import type { Digest } from '../../src/core/digest.js';
import { type ConfigElement, type ImageElement, type LayerElement, Forms, tarOf } from '../../src/core/element.js';
import { OccystrapError } from '../../src/core/errors.js';
import { ExcludeFilter } from '../../src/core/filters/exclude.js';
import { type LayerFiles, LayerRewriteFilter, rewriteConfig } from '../../src/core/filters/layer-rewrite.js';
import { NormalizeTimestampsFilter } from '../../src/core/filters/normalize-timestamps.js';
import { type Effects, Ledger, type OwnershipEffect, type ReplyOf, type TempFile } from '../../src/core/ownership.js';
import type { StageContext } from '../../src/core/pipeline/types.js';
import { encodeHeader, END_OF_ARCHIVE, paddingFor, type TarHeader } from '../../src/core/tar/header.js';
import { readTar } from '../../src/core/tar/reader.js';
import { concatBytes as concat } from '../../src/core/bytes.js';

const enc = new TextEncoder();
const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;


const H = (p: Partial<TarHeader> & Pick<TarHeader, 'name'>): TarHeader => ({ type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000.5, ...p });
function tar(entries: readonly { header: TarHeader; data?: string }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const { header, data } of entries) {
    const d = enc.encode(data ?? '');
    parts.push(encodeHeader({ ...header, size: d.length }), d, new Uint8Array(paddingFor(d.length)));
  }
  parts.push(END_OF_ARCHIVE);
  return concat(parts);
}

/** Effects over a ledger, files in a map; `failOn` makes one kind of effect fail once. */
class World implements Effects, LayerFiles {
  readonly ledger = new Ledger();
  readonly files = new Map<string, Uint8Array>();
  failRead: string | undefined;

  async perform<E extends OwnershipEffect>(effect: E): Promise<ReplyOf<E>> {
    switch (effect._tag) {
      case 'CreateTemp': {
        const entry = this.ledger.register(effect.owner, effect.purpose, (id) => `/mem/${id}-${effect.purpose}`);
        this.files.set(entry.path, new Uint8Array(0));
        return { id: entry.id, path: entry.path } as ReplyOf<E>;
      }
      case 'HandOver':
        this.ledger.handOver(effect.file, effect.from, effect.to);
        return undefined as ReplyOf<E>;
      case 'Release':
        this.ledger.release(effect.file, effect.owner);
        this.files.delete(effect.file.path);
        return undefined as ReplyOf<E>;
      default:
        throw new Error(`unexpected effect ${effect._tag}`);
    }
  }

  read(file: TempFile): AsyncIterable<Uint8Array> {
    const bytes = this.files.get(file.path);
    const failRead = this.failRead;
    return (async function* () {
      if (!bytes) throw new Error(`ENOENT ${file.path}`);
      for (let i = 0; i < bytes.length; i += 700) {
        if (failRead !== undefined && i > 0) throw new Error(failRead);
        yield bytes.subarray(i, i + 700);
      }
    })();
  }

  async write(file: TempFile, data: AsyncIterable<Uint8Array>): Promise<{ digest: Digest; size: number }> {
    if (!this.files.has(file.path)) throw new Error(`ENOENT ${file.path}`);
    const parts: Uint8Array[] = [];
    for await (const c of data) parts.push(c.slice());
    const bytes = concat(parts);
    this.files.set(file.path, bytes);
    return { digest: sha(bytes), size: bytes.length };
  }

  /** A layer file owned by `owner` with `bytes` in it. */
  async layer(owner: string, bytes: Uint8Array): Promise<TempFile> {
    const f = await this.perform({ _tag: 'CreateTemp', owner, purpose: 'layer' });
    this.files.set(f.path, bytes);
    return f;
  }

  live(): string[] {
    return this.ledger.all().filter((e) => e.state._tag === 'Live').map((e) => `${e.path} (${JSON.stringify(e.state)})`);
  }
}

const OWNER = 'filter[0]:test';

function configFor(layers: readonly Uint8Array[], extra: Record<string, unknown> = {}): ConfigElement {
  const diffIds = layers.map(sha);
  const doc = {
    architecture: 'amd64',
    os: 'linux',
    created: '2024-01-02T03:04:05Z',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map((_, i) => ({ created: '2024-01-02T03:04:05Z', created_by: `step ${i}` })),
    ...extra,
  };
  const raw = enc.encode(JSON.stringify(doc, null, 2));
  const decoded = decodeImageConfig('config', raw);
  assert.ok(E.isRight(decoded));
  return {
    _tag: 'Config',
    image: { name: 'test/image', tag: 'v1', digest: sha(enc.encode('manifest')) },
    digest: sha(raw),
    raw,
    config: decoded.right,
    layers: diffIds.map((diffId, index) => ({ index, sourceId: `src${index}`, diffId, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 123 })),
  };
}

async function* from(elements: readonly ImageElement[]): AsyncGenerator<ImageElement> {
  for (const e of elements) yield e;
}

function ctx(world: World, signal = new AbortController().signal): StageContext {
  return { effects: world, signal, owner: OWNER };
}

async function collect(world: World, filter: LayerRewriteFilter, input: readonly ImageElement[]): Promise<ImageElement[]> {
  const out: ImageElement[] = [];
  for await (const e of filter.apply(from(input), ctx(world))) out.push(e);
  return out;
}

async function entriesOf(bytes: Uint8Array): Promise<TarHeader[]> {
  const out: TarHeader[] = [];
  async function* one() {
    yield bytes;
  }
  for await (const e of readTar(one())) out.push(e.header);
  return out;
}

const L0 = tar([
  { header: H({ name: 'etc/', type: 'directory', mode: 0o755 }) },
  { header: H({ name: 'etc/passwd', pax: { atime: '1.5', 'SCHILY.xattr.user.x': 'kept' } }), data: 'root\n' },
]);
const L1 = tar([{ header: H({ name: 'bin/sh', uid: 3_000_000, mtime: 12.25 }), data: '#!\n' }]);

test('normalize-timestamps: every layer rewritten into a new file, old files released, provisional config first, final config last with the new diff_ids', async () => {
  const world = new World();
  const config = configFor([L0, L1, L0]);
  const f0 = await world.layer(OWNER, L0);
  const f1 = await world.layer(OWNER, L1);
  const layers = config.layers;
  const input: ImageElement[] = [
    config,
    { _tag: 'Layer', layer: layers[1]!, payload: { _tag: 'Tar', tar: { file: f1, size: L1.length } } },
    { _tag: 'Layer', layer: layers[0]!, payload: { _tag: 'Tar', tar: { file: f0, size: L0.length } } },
    { _tag: 'Layer', layer: layers[2]!, payload: { _tag: 'Skipped', reason: 'duplicate' } },
  ];
  const filter = new NormalizeTimestampsFilter({ timestamp: 42, files: world });
  assert.deepEqual(await filter.wants(async () => Forms.none)(layers[0]!), Forms.tar, 'a content filter always wants the tar of the layer');
  const out = await collect(world, filter, input);

  assert.deepEqual(out.map((e) => (e._tag === 'Config' ? 'config' : `${e.layer.index}:${e.payload._tag}`)), ['config', '1:Tar', '0:Tar', '2:Skipped', 'config']);
  assert.equal((out[0] as ConfigElement).provisional, true, 'the source config goes first, provisional');
  assert.equal((out[0] as ConfigElement).raw, config.raw, 'with the source bytes');
  assert.ok(!world.files.has(f0.path) && !world.files.has(f1.path), 'old files released');
  const newIds: Digest[] = [];
  for (const e of out.filter((x): x is LayerElement => x._tag === 'Layer' && x.payload._tag === 'Tar')) {
    assert.equal(e.payload._tag, 'Tar');
    const bytes = world.files.get(tarOf(e.payload)!.file.path);
    assert.ok(bytes, 'the new file exists');
    assert.equal(e.layer.diffId, sha(bytes), 'diff_id = sha256 of the new tar');
    assert.equal(tarOf(e.payload)!.size, bytes.length);
    assert.equal(e.layer.mediaType, 'application/vnd.docker.image.rootfs.diff.tar');
    assert.equal(e.layer.size, undefined, 'the compressed size no longer applies');
    assert.equal(world.ledger.entry(tarOf(e.payload)!.file.id)?.state._tag, 'Live');
    for (const h of await entriesOf(bytes)) {
      assert.equal(h.mtime, 42, h.name);
      assert.equal(h.pax?.['atime'], undefined, 'atime dropped');
    }
    newIds[e.layer.index] = e.layer.diffId;
  }
  const headers0 = await entriesOf(world.files.get((out[2] as LayerElement & { payload: { tar: { file: TempFile } } }).payload.tar.file.path)!);
  assert.equal(Buffer.from(headers0[1]!.pax!['SCHILY.xattr.user.x'] as Uint8Array).toString(), 'kept');
  const headers1 = await entriesOf(world.files.get((out[1] as LayerElement & { payload: { tar: { file: TempFile } } }).payload.tar.file.path)!);
  assert.equal(headers1[0]!.uid, 3_000_000);

  const dup = out[3] as LayerElement;
  assert.equal(dup.layer.diffId, newIds[0], 'a duplicate gets the new diff_id of its twin');

  const c = out[4] as ConfigElement;
  assert.ok(!c.provisional, 'the last config is final');
  const doc = JSON.parse(new TextDecoder().decode(c.raw)) as { rootfs: { diff_ids: string[] }; history: unknown[] };
  assert.deepEqual(doc.rootfs.diff_ids, [newIds[0], newIds[1], newIds[0]]);
  assert.deepEqual(c.config.rootfs.diff_ids, doc.rootfs.diff_ids);
  assert.deepEqual(c.layers.map((l) => l.diffId), doc.rootfs.diff_ids);
  assert.equal(c.digest, sha(c.raw));
  assert.deepEqual(doc.history, JSON.parse(new TextDecoder().decode(config.raw)).history);
  assert.deepEqual(Object.keys(doc), Object.keys(JSON.parse(new TextDecoder().decode(config.raw))), 'key order kept');
  assert.equal(c.image.digest, undefined, 'the manifest digest no longer applies');
  assert.deepEqual({ name: c.image.name, tag: c.image.tag }, { name: 'test/image', tag: 'v1' });

  // The only live files are the ones delivered.
  assert.equal(world.live().length, 2);
});

test('the same input gives the same bytes, diff_ids and config on every run', async () => {
  const runOnce = async () => {
    const world = new World();
    const config = configFor([L0, L1]);
    const input: ImageElement[] = [
      config,
      { _tag: 'Layer', layer: config.layers[0]!, payload: { _tag: 'Tar', tar: { file: await world.layer(OWNER, L0), size: L0.length } } },
      { _tag: 'Layer', layer: config.layers[1]!, payload: { _tag: 'Tar', tar: { file: await world.layer(OWNER, L1), size: L1.length } } },
    ];
    const out = await collect(world, new NormalizeTimestampsFilter({ timestamp: 0, files: world }), input);
    return out.map((e) => (e._tag === 'Config' ? Buffer.from(e.raw).toString('hex') : e.layer.diffId));
  };
  assert.deepEqual(await runOnce(), await runOnce());
});

test('a duplicate that arrives before its twin waits for it', async () => {
  const world = new World();
  const config = configFor([L0, L0]);
  const input: ImageElement[] = [
    config,
    { _tag: 'Layer', layer: config.layers[1]!, payload: { _tag: 'Skipped', reason: 'duplicate' } },
    { _tag: 'Layer', layer: config.layers[0]!, payload: { _tag: 'Tar', tar: { file: await world.layer(OWNER, L0), size: L0.length } } },
  ];
  const out = await collect(world, new NormalizeTimestampsFilter({ timestamp: 0, files: world }), input);
  assert.deepEqual(out.map((e) => (e._tag === 'Config' ? 'config' : e.layer.index)), ['config', 0, 1, 'config']);
  const [a, b] = out.slice(1) as [LayerElement, LayerElement];
  assert.equal(a.layer.diffId, b.layer.diffId);
  assert.notEqual(a.layer.diffId, config.layers[0]!.diffId);
});

test('a layer skipped without a twin that carried data is an error', async () => {
  const world = new World();
  const config = configFor([L0]);
  const input: ImageElement[] = [config, { _tag: 'Layer', layer: config.layers[0]!, payload: { _tag: 'Skipped', reason: 'present' } }];
  await assert.rejects(collect(world, new NormalizeTimestampsFilter({ timestamp: 0, files: world }), input), /arrived without data \(present\)/);
});

test('when no layer changes, the config goes through unchanged (same bytes, same digest)', async () => {
  const world = new World();
  const plain = tar([{ header: H({ name: 'a', mtime: 7 }), data: 'a' }]);
  const config = configFor([plain]);
  const input: ImageElement[] = [config, { _tag: 'Layer', layer: config.layers[0]!, payload: { _tag: 'Tar', tar: { file: await world.layer(OWNER, plain), size: plain.length } } }];
  const out = await collect(world, new NormalizeTimestampsFilter({ timestamp: 7, files: world }), input);
  const layer = out[1] as LayerElement;
  assert.equal(layer.layer, config.layers[0], 'same descriptor');
  assert.equal(out[2], config, 'the very same config element, as the final config');
});

test('a layer that is not a tar: both files released, an input error naming the layer', async () => {
  const world = new World();
  const bad = enc.encode('this is not a tar archive at all'.repeat(40));
  const config = configFor([L0, bad]);
  const f0 = await world.layer(OWNER, L0);
  const f1 = await world.layer(OWNER, bad);
  const input: ImageElement[] = [
    config,
    { _tag: 'Layer', layer: config.layers[0]!, payload: { _tag: 'Tar', tar: { file: f0, size: L0.length } } },
    { _tag: 'Layer', layer: config.layers[1]!, payload: { _tag: 'Tar', tar: { file: f1, size: bad.length } } },
  ];
  const delivered: ImageElement[] = [];
  await assert.rejects(
    (async () => {
      for await (const e of new NormalizeTimestampsFilter({ timestamp: 0, files: world }).apply(from(input), ctx(world))) delivered.push(e);
    })(),
    (e: unknown) => {
      assert.ok(OccystrapError.is(e) && e.code === 'EINPUT', String(e));
      assert.match(e.message, /^normalize-timestamps: layer 1 \(diff_id sha256:[0-9a-f]{64}\) is not a tar we can rewrite: invalid tar header checksum/);
      return true;
    },
  );
  assert.equal(delivered.length, 2, 'the provisional config and layer 0');
  assert.ok(!world.files.has(f1.path), 'the old file was released');
  const live = world.live();
  assert.equal(live.length, 1, `only the delivered file is live: ${live.join(', ')}`);
});

test('a read that fails mid-layer releases the new file and the old one', async () => {
  const world = new World();
  const big = tar([{ header: H({ name: 'big' }), data: 'x'.repeat(5000) }]);
  const config = configFor([big]);
  const f = await world.layer(OWNER, big);
  world.failRead = 'EIO: read failed';
  await assert.rejects(
    collect(world, new NormalizeTimestampsFilter({ timestamp: 0, files: world }), [config, { _tag: 'Layer', layer: config.layers[0]!, payload: { _tag: 'Tar', tar: { file: f, size: big.length } } }]),
    /EIO: read failed/,
  );
  assert.deepEqual(world.live(), []);
  assert.equal(world.files.size, 0);
});

test('a consumer that stops early leaves the filter holding nothing', async () => {
  const world = new World();
  const config = configFor([L0, L1]);
  const f0 = await world.layer(OWNER, L0);
  const f1 = await world.layer(OWNER, L1);
  const it = new NormalizeTimestampsFilter({ timestamp: 0, files: world })
    .apply(
      from([
        config,
        { _tag: 'Layer', layer: config.layers[0]!, payload: { _tag: 'Tar', tar: { file: f0, size: L0.length } } },
        { _tag: 'Layer', layer: config.layers[1]!, payload: { _tag: 'Tar', tar: { file: f1, size: L1.length } } },
      ]),
      ctx(world),
    )
    [Symbol.asyncIterator]();
  const head = await it.next();
  assert.ok(!head.done && head.value._tag === 'Config' && head.value.provisional);
  const first = await it.next();
  assert.ok(!first.done && first.value._tag === 'Layer' && first.value.payload._tag === 'Tar');
  await it.return?.(undefined);
  // The consumer owns what it received; f1 was never taken from upstream (still the source's).
  const live = world.ledger.all().filter((e) => e.state._tag === 'Live').map((e) => e.path);
  assert.deepEqual(live.sort(), [tarOf(first.value.payload)!.file.path, f1.path].sort());
});

test('an abort during a rewrite releases both files and raises a cancellation', async () => {
  const world = new World();
  const config = configFor([L0]);
  const f0 = await world.layer(OWNER, L0);
  const ac = new AbortController();
  ac.abort(new Error('SIGINT'));
  await assert.rejects(
    (async () => {
      for await (const e of new NormalizeTimestampsFilter({ timestamp: 0, files: world }).apply(
        from([config, { _tag: 'Layer', layer: config.layers[0]!, payload: { _tag: 'Tar', tar: { file: f0, size: L0.length } } }]),
        ctx(world, ac.signal),
      ))
        void e;
    })(),
    (e: unknown) => OccystrapError.is(e) && e.code === 'EABORT',
  );
  assert.deepEqual(world.live(), []);
});

test('two content filters chained: the second sees layers before the config and maps through both', async () => {
  const world = new World();
  const config = configFor([L0, L1, L0]);
  const input: ImageElement[] = [
    config,
    { _tag: 'Layer', layer: config.layers[0]!, payload: { _tag: 'Tar', tar: { file: await world.layer('filter[0]:normalize-timestamps', L0), size: L0.length } } },
    { _tag: 'Layer', layer: config.layers[2]!, payload: { _tag: 'Skipped', reason: 'duplicate' } },
    { _tag: 'Layer', layer: config.layers[1]!, payload: { _tag: 'Tar', tar: { file: await world.layer('filter[0]:normalize-timestamps', L1), size: L1.length } } },
  ];
  const first = new NormalizeTimestampsFilter({ timestamp: 0, files: world }).apply(from(input), { ...ctx(world), owner: 'filter[0]:normalize-timestamps' });
  async function* handOver(src: AsyncIterable<ImageElement>) {
    for await (const e of src) {
      if (e._tag === 'Layer' && e.payload._tag === 'Tar') await world.perform({ _tag: 'HandOver', file: tarOf(e.payload)!.file, from: 'filter[0]:normalize-timestamps', to: 'filter[1]:exclude' });
      yield e;
    }
  }
  const second = new ExcludeFilter({ patterns: ['etc/passwd'], files: world }).apply(handOver(first), { ...ctx(world), owner: 'filter[1]:exclude' });
  const out: ImageElement[] = [];
  for await (const e of second) out.push(e);
  const c = out.at(-1) as ConfigElement;
  assert.equal(c._tag, 'Config');
  const byIndex = new Map(out.filter((e): e is LayerElement => e._tag === 'Layer').map((e) => [e.layer.index, e]));
  assert.deepEqual(c.config.rootfs.diff_ids, [0, 1, 2].map((i) => byIndex.get(i)!.layer.diffId));
  const l0 = byIndex.get(0)!;
  assert.ok(l0.payload._tag === 'Tar');
  if (l0.payload._tag === 'Tar') assert.deepEqual((await entriesOf(world.files.get(l0.payload.tar.file.path)!)).map((h) => [h.name, h.mtime]), [['etc/', 0]]);
  assert.equal(world.live().length, 2);
});

test('rewriteConfig: unchanged lists give the same element; a length mismatch is refused', () => {
  const config = configFor([L0, L1]);
  assert.equal(rewriteConfig(config, config.layers.map((l) => l.diffId)), config);
  assert.throws(() => rewriteConfig(config, [config.layers[0]!.diffId]), /1 diff_ids for 2 layers/);
  const other = sha(enc.encode('other'));
  const c = rewriteConfig(config, [config.layers[0]!.diffId, other]);
  assert.deepEqual(c.config.rootfs.diff_ids, [config.layers[0]!.diffId, other]);
  assert.equal(c.layers[0], config.layers[0], 'an unchanged layer keeps its descriptor');
  // A rewritten layer is named by its new diff_id hex, as occystrap renames it.
  assert.deepEqual(c.layers[1], { index: 1, sourceId: other.slice('sha256:'.length), diffId: other, mediaType: 'application/vnd.docker.image.rootfs.diff.tar' });
  assert.equal(new TextDecoder().decode(c.raw), JSON.stringify(JSON.parse(new TextDecoder().decode(config.raw), (k, v) => (k === 'diff_ids' ? c.config.rootfs.diff_ids : v))));
  const fromRegistry = { ...config, image: { name: 'h:1/x', tag: 't', registry: 'h:1' } };
  assert.deepEqual(rewriteConfig(fromRegistry, [config.layers[0]!.diffId, other]).image, { name: 'h:1/x', tag: 't', registry: 'h:1' }, 'the registry host is kept');
});
