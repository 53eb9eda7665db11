/**
 * The oci:// bundle output (src/shell/outputs/oci-bundle.ts) on the real copy loop, the
 * real TempScope and the real file system: random images whose layers hold random
 * (sometimes hostile) entries, with injected faults (a layer tar cut short, a layer the
 * engine refuses), early aborts from the consumer's side (a signal at a random layer),
 * and the scheduler's interleavings.
 *
 * Layers reach the output either as temp files or through the output's consumer (the
 * bytes streamed into the engine as the input reads them; sometimes aborted halfway, as
 * on a digest mismatch; sometimes taken and then not used, as a broken input would).
 *
 * Properties: every temp file ends released exactly once (the destination takes each
 * tar and releases it whether the layer applied, failed or was cut off); a run that
 * succeeds leaves exactly the bundle (config.json, container-config.json, rootfs/) and
 * nothing else beside it; a run that fails or is aborted leaves neither the bundle nor
 * its working directory; nothing outside the destination's parent changes; a run that
 * succeeds builds the same tree as the same layers given as temp files only.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as fc from 'fast-check';
import type { ConfigElement, ImageElement, LayerDescriptor } from '../src/core/element.js';
import type { Digest } from '../src/core/digest.js';
import { runPipeline } from '../src/core/pipeline/compose.js';
import type { ImageInput, InputContext } from '../src/core/pipeline/types.js';
import { encodeHeader, END_OF_ARCHIVE, paddingFor, type TarHeader } from '../src/core/tar/header.js';
import { OciBundleOutput } from '../src/shell/outputs/oci-bundle.js';
import { TempScope } from '../src/shell/scope.js';
import { treeManifest } from '../test/support/tree-manifest.js';

const root = mkdtempSync(path.join(tmpdir(), 'occystrap-bundle-prop-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

type Entry = { readonly name: string; readonly type: 'file' | 'directory' | 'symlink'; readonly linkname?: string; readonly body?: string };
type LayerFault = 'none' | 'cut' | 'hostile';
/**
 * How the input hands a layer over: a temp file; the output's consumer (the bytes in three
 * pieces, then `end`); the consumer aborted halfway (a digest mismatch), the input failing;
 * or the consumer taken and the layer then sent as a file anyway (a broken input).
 */
type Delivery = 'temp' | 'consume' | 'mismatch' | 'unused';

const nameArb = fc.array(fc.constantFrom('a', 'b', 'etc', 'd', 'x y'), { minLength: 1, maxLength: 3 }).map((p) => p.join('/'));
const entryArb: fc.Arbitrary<Entry> = fc.oneof(
  fc.record({ name: nameArb, type: fc.constant('file' as const), body: fc.string({ maxLength: 40 }) }),
  fc.record({ name: nameArb, type: fc.constant('directory' as const) }),
  fc.record({ name: nameArb, type: fc.constant('symlink' as const), linkname: fc.constantFrom('/', '..', '../../etc', 'a', '/d/x') }),
);
const specArb = fc.record({
  layers: fc.array(
    fc.record({
      entries: fc.array(entryArb, { maxLength: 8 }),
      fault: fc.constantFrom<LayerFault>('none', 'none', 'none', 'cut', 'hostile'),
      delivery: fc.oneof(
        { arbitrary: fc.constant<Delivery>('temp'), weight: 4 },
        { arbitrary: fc.constant<Delivery>('consume'), weight: 6 },
        { arbitrary: fc.constant<Delivery>('mismatch'), weight: 1 },
        { arbitrary: fc.constant<Delivery>('unused'), weight: 1 },
      ),
    }),
    { minLength: 1, maxLength: 4 },
  ),
  abortAt: fc.option(fc.nat({ max: 4 }), { nil: undefined }),
});

const enc = new TextEncoder();

/** The tar of a layer's entries (a hostile layer adds `.` as a symlink; a cut one loses its end). */
function layerTar(entries: readonly Entry[], fault: LayerFault): Uint8Array {
  const parts: Uint8Array[] = [];
  const all = fault === 'hostile' ? [...entries, { name: '.', type: 'symlink' as const, linkname: '/tmp' }] : entries;
  for (const e of all) {
    const body = e.type === 'file' ? enc.encode(e.body ?? '') : new Uint8Array();
    const header: TarHeader = { name: e.name, type: e.type, size: body.length, mode: e.type === 'directory' ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, ...(e.linkname ? { linkname: e.linkname } : {}) };
    parts.push(encodeHeader(header), body, new Uint8Array(paddingFor(body.length)));
  }
  parts.push(END_OF_ARCHIVE);
  const whole = Buffer.concat(parts);
  return fault === 'cut' ? whole.subarray(0, Math.max(0, whole.length - 700)) : whole;
}

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

/** Counted over the whole property: how often each way of handing over happened. */
const handedOver = { temp: 0, consumed: 0, mismatch: 0, unused: 0 };

/** An input that hands each layer's tar over as `deliveries` says: a temp file of its own, or the output's consumer. */
function tarsInput(tars: readonly Uint8Array[], deliveries: readonly Delivery[], abortAt: number | undefined, abort: AbortController, counts = handedOver): ImageInput {
  const layers: LayerDescriptor[] = tars.map((t, index) => ({ index, sourceId: `l${index}`, diffId: sha(t), mediaType: 'application/vnd.oci.image.layer.v1.tar' }));
  const raw = enc.encode(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/true'] }, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }));
  const config = {
    _tag: 'Config',
    image: { name: 'prop', tag: '1' },
    digest: sha(raw),
    raw,
    config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/true'] }, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } },
    layers,
  } as unknown as ConfigElement;
  const seen = new Set<Digest>();
  return {
    description: 'tars',
    async *elements(ctx: InputContext): AsyncGenerator<ImageElement> {
      yield config;
      for (const layer of layers) {
        if (abortAt === layer.index) abort.abort(new Error('stopped by the test'));
        const tar = tars[layer.index] as Uint8Array;
        // The same diff_id again: its data went with the first (as every input does).
        if (seen.has(layer.diffId)) {
          yield { _tag: 'Layer', layer, payload: { _tag: 'Skipped', reason: 'duplicate' } };
          continue;
        }
        seen.add(layer.diffId);
        const delivery = deliveries[layer.index] as Delivery;
        const forms = delivery === 'temp' ? undefined : await ctx.wants(layer);
        // Every earlier layer was delivered: the claim may wait for them to be applied.
        const consumer = forms?.consume ? await forms.consume.claim(ctx.signal) : undefined;
        if (consumer && delivery !== 'unused') {
          const third = Math.ceil(tar.length / 3);
          await consumer.write(tar.subarray(0, third));
          if (delivery === 'mismatch') {
            counts.mismatch++;
            const error = new Error(`layer ${layer.index} hashed wrong (injected)`);
            consumer.abort(error);
            throw error;
          }
          await consumer.write(tar.subarray(third, 2 * third));
          await consumer.write(tar.subarray(2 * third));
          consumer.end();
          counts.consumed++;
          yield { _tag: 'Layer', layer, payload: { _tag: 'Consumed', consumed: { consumer: consumer.id, size: tar.length } } };
          continue;
        }
        if (consumer) counts.unused++;
        else counts.temp++;
        const file = await ctx.effects.perform({ _tag: 'CreateTemp', owner: ctx.owner, purpose: `layer-${layer.index}` });
        await writeFile(file.path, tar);
        yield { _tag: 'Layer', layer, payload: { _tag: 'Tar', tar: { file, size: tar.length } } };
      }
    },
  };
}

function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: false }).map(String).sort();
}

test('oci:// bundle: every temp file released once; success leaves exactly the bundle, failure or abort leaves nothing', async () => {
  let outcomes = { ok: 0, failed: 0, aborted: 0 };
  await fc.assert(
    fc.asyncProperty(specArb, async (spec) => {
      const run = mkdtempSync(path.join(root, 'run-'));
      const outside = path.join(run, 'outside');
      mkdirSync(outside);
      writeFileSync(path.join(outside, 'keep'), 'sentinel');
      const parent = path.join(run, 'dest');
      mkdirSync(parent);
      const temp = path.join(run, 'temp');
      mkdirSync(temp);
      const scope = await TempScope.open({ parent: temp });
      const abort = new AbortController();
      const tars = spec.layers.map((l) => layerTar(l.entries, l.fault));
      const bundle = path.join(parent, 'bundle');
      let error: unknown;
      try {
        await runPipeline({ input: tarsInput(tars, spec.layers.map((l) => l.delivery), spec.abortAt, abort), output: new OciBundleOutput({ path: bundle, privileged: false }), effects: scope, signal: abort.signal });
      } catch (e) {
        error = e;
      }
      const live = scope.ledger.all().filter((e) => e.state._tag === 'Live' || e.state._tag === 'Moving');
      const report = await scope.close();
      assert.deepEqual(live.map((e) => e.id), [], 'every temp file was released or moved by the time the run returned');
      assert.equal(report.released, 0, 'close() had nothing left to release');
      assert.deepEqual(listing(outside), ['keep'], 'nothing outside changed');
      if (error === undefined) {
        outcomes = { ...outcomes, ok: outcomes.ok + 1 };
        assert.deepEqual(readdirSync(parent), ['bundle']);
        assert.deepEqual(readdirSync(bundle).sort(), ['config.json', 'container-config.json', 'rootfs']);
        // Streamed or spooled, the same layers make the same tree: build it again from temp files only.
        const reference = path.join(run, 'reference');
        const refScope = await TempScope.open({ parent: temp });
        await runPipeline({ input: tarsInput(tars, tars.map(() => 'temp'), undefined, new AbortController(), { temp: 0, consumed: 0, mismatch: 0, unused: 0 }), output: new OciBundleOutput({ path: reference, privileged: false }), effects: refScope });
        await refScope.close();
        // Without mtimes: a parent no entry names is made at build time, one run or the other.
        assert.deepEqual(treeManifest(path.join(bundle, 'rootfs'), { mtimes: false }), treeManifest(path.join(reference, 'rootfs'), { mtimes: false }), 'the consumed layers built the tree the temp files build');
      } else {
        if (abort.signal.aborted) outcomes = { ...outcomes, aborted: outcomes.aborted + 1 };
        else outcomes = { ...outcomes, failed: outcomes.failed + 1 };
        assert.deepEqual(readdirSync(parent), [], `a failed run leaves nothing: ${String(error)}`);
      }
      assert.deepEqual(readdirSync(temp), [], 'the run dir is gone');
      rmSync(run, { recursive: true, force: true });
    }),
    { numRuns: 250 },
  );
  // A test of the test: the generator reaches every outcome.
  assert.ok(outcomes.ok > 10 && outcomes.failed > 10 && outcomes.aborted > 5, JSON.stringify(outcomes));
  assert.ok(handedOver.temp > 20 && handedOver.consumed > 20 && handedOver.mismatch > 5 && handedOver.unused > 5, JSON.stringify(handedOver));
});
