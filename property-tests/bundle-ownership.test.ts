/**
 * The oci:// bundle output (src/shell/outputs/oci-bundle.ts) on the real copy loop, the
 * real TempScope and the real file system: random images whose layers hold random
 * (sometimes hostile) entries, with injected faults (a layer tar cut short, a layer the
 * engine refuses), early aborts from the consumer's side (a signal at a random layer),
 * and the scheduler's interleavings.
 *
 * Properties: every temp file ends released exactly once (the destination takes each
 * tar and releases it whether the layer applied, failed or was cut off); a run that
 * succeeds leaves exactly the bundle (config.json, container-config.json, rootfs/) and
 * nothing else beside it; a run that fails or is aborted leaves neither the bundle nor
 * its working directory; nothing outside the destination's parent changes.
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

const root = mkdtempSync(path.join(tmpdir(), 'occystrap-bundle-prop-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

type Entry = { readonly name: string; readonly type: 'file' | 'directory' | 'symlink'; readonly linkname?: string; readonly body?: string };
type LayerFault = 'none' | 'cut' | 'hostile';

const nameArb = fc.array(fc.constantFrom('a', 'b', 'etc', 'd', 'x y'), { minLength: 1, maxLength: 3 }).map((p) => p.join('/'));
const entryArb: fc.Arbitrary<Entry> = fc.oneof(
  fc.record({ name: nameArb, type: fc.constant('file' as const), body: fc.string({ maxLength: 40 }) }),
  fc.record({ name: nameArb, type: fc.constant('directory' as const) }),
  fc.record({ name: nameArb, type: fc.constant('symlink' as const), linkname: fc.constantFrom('/', '..', '../../etc', 'a', '/d/x') }),
);
const specArb = fc.record({
  layers: fc.array(fc.record({ entries: fc.array(entryArb, { maxLength: 8 }), fault: fc.constantFrom<LayerFault>('none', 'none', 'none', 'cut', 'hostile') }), { minLength: 1, maxLength: 4 }),
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

/** An input that writes each layer's tar into a temp file of its own and hands it over. */
function tarsInput(tars: readonly Uint8Array[], abortAt: number | undefined, abort: AbortController): ImageInput {
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
  return {
    description: 'tars',
    async *elements(ctx: InputContext): AsyncGenerator<ImageElement> {
      yield config;
      for (const layer of layers) {
        if (abortAt === layer.index) abort.abort(new Error('stopped by the test'));
        const file = await ctx.effects.perform({ _tag: 'CreateTemp', owner: ctx.owner, purpose: `layer-${layer.index}` });
        await writeFile(file.path, tars[layer.index] as Uint8Array);
        yield { _tag: 'Layer', layer, payload: { _tag: 'Tar', tar: { file, size: (tars[layer.index] as Uint8Array).length } } };
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
        await runPipeline({ input: tarsInput(tars, spec.abortAt, abort), output: new OciBundleOutput({ path: bundle, privileged: false }), effects: scope, signal: abort.signal });
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
      } else {
        if (abort.signal.aborted) outcomes = { ...outcomes, aborted: outcomes.aborted + 1 };
        else outcomes = { ...outcomes, failed: outcomes.failed + 1 };
        assert.deepEqual(readdirSync(parent), [], `a failed run leaves nothing: ${String(error)}`);
      }
      assert.deepEqual(readdirSync(temp), [], 'the run dir is gone');
      rmSync(run, { recursive: true, force: true });
    }),
    { numRuns: 150 },
  );
  // A test of the test: the generator reaches every outcome.
  assert.ok(outcomes.ok > 10 && outcomes.failed > 10 && outcomes.aborted > 5, JSON.stringify(outcomes));
});
