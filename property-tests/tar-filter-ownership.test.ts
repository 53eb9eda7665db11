/**
 * Ownership through content filters (normalize-timestamps, exclude): random runPipeline
 * runs whose layers are real tars (some not tars at all, some repeated), one or two content
 * filters, faults injected into reads and writes of layer files, outputs that fail, stop
 * early or check every digest, and aborts, all over a scheduler-controlled memory fs under
 * the real TempScope.
 *
 * The property: every temp file a filter replaces (and every one it creates) ends released
 * or moved exactly once, by the stages themselves (the scope's safety net releases
 * nothing), whether the run succeeds, a filter fails mid-layer, the output fails, or the
 * consumer stops early. On success, every layer the output receives hashes to its diff_id
 * and the config it receives (after the layers) lists exactly those diff_ids.
 */
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fc from 'fast-check';
import type { Digest } from '../src/core/digest.js';
import { type ConfigElement, type ImageElement, type LayerDescriptor, type LayerElement, releaseElement, Forms, tarOf } from '../src/core/element.js';
import { OccystrapError, throwIfAborted } from '../src/core/errors.js';
import { ExcludeFilter } from '../src/core/filters/exclude.js';
import type { LayerFiles } from '../src/core/filters/layer-rewrite.js';
import { NormalizeTimestampsFilter } from '../src/core/filters/normalize-timestamps.js';
import type { TempFile } from '../src/core/ownership.js';
import { parallelMap } from '../src/core/pipeline/parallel-map.js';
import { runPipeline } from '../src/core/pipeline/compose.js';
import type { ImageFilter, ImageInput, ImageOutput, InputContext, OutputSummary } from '../src/core/pipeline/types.js';
import { encodeHeader, END_OF_ARCHIVE, paddingFor, type TarHeader } from '../src/core/tar/header.js';
import { readTar } from '../src/core/tar/reader.js';
import { assertNoViolations, invariantAfterClose, releasedFilesAreGone, withDeadline } from './support/invariants.js';
import { isInjected, MemoryFs } from './support/memory-fs.js';
import { InjectedError, peekOutput } from './support/model-pipeline.js';
import { realScope } from './support/scopes.js';
import { concatBytes as concat } from '../src/core/bytes.js';

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;
const toText = (b: Uint8Array) => Buffer.from(b).toString('latin1');
const toBytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));


/** A small real layer: a few files with xattrs and sub-second times. */
function layerTar(i: number, files: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let f = 0; f < files; f++) {
    const data = new TextEncoder().encode(`layer ${i} file ${f}\n`.repeat(f + 1));
    const h: TarHeader = {
      name: f % 3 === 2 ? `cache/l${i}-${f}.pyc` : `dir${i}/file-${f}.txt`,
      type: 'file',
      size: data.length,
      mode: 0o644,
      uid: f === 0 ? 3_000_000 : 0,
      gid: 0,
      mtime: 1_700_000_000 + i + f / 4,
      pax: { 'SCHILY.xattr.user.n': `${i}.${f}`, atime: '1.5' },
    };
    parts.push(encodeHeader(h), data, new Uint8Array(paddingFor(data.length)));
  }
  parts.push(END_OF_ARCHIVE);
  return concat(parts);
}

// ----- ports and stages over the memory fs ------------------------------------------------

/** LayerFiles over the memory fs: two reads and two writes per layer, so faults can land mid-layer. */
function memoryLayerFiles(fs: MemoryFs): LayerFiles {
  return {
    read(file: TempFile): AsyncIterable<Uint8Array> {
      return (async function* () {
        const first = toBytes(await fs.readFile(file.path));
        const half = Math.floor(first.length / 2);
        yield first.subarray(0, half);
        const again = toBytes(await fs.readFile(file.path)); // the second half, read again
        yield again.subarray(half);
      })();
    },
    async write(file: TempFile, data: AsyncIterable<Uint8Array>) {
      const parts: Uint8Array[] = [];
      let written = false;
      for await (const c of data) {
        parts.push(c.slice());
        if (!written && parts.reduce((n, p) => n + p.length, 0) > 1024) {
          await fs.writeFile(file.path, toText(concat(parts)), 'replace');
          written = true;
        }
      }
      const bytes = concat(parts);
      await fs.writeFile(file.path, toText(bytes), 'replace');
      return { digest: sha(bytes), size: bytes.length };
    },
  };
}

interface Spec {
  /** Content per layer: a real tar (`files` entries), not a tar, or a repeat of an earlier layer. */
  readonly layers: ReadonlyArray<{ readonly kind: 'tar'; readonly files: number } | { readonly kind: 'garbage' } | { readonly kind: 'repeat'; readonly of: number }>;
  readonly parallelism: number;
  readonly bufferDepth: number;
  readonly filters: ReadonlyArray<'normalize' | 'exclude'>;
  readonly output: { readonly kind: 'check'; readonly order: 'manifest' | 'completion'; readonly failOnLayer: number | undefined } | { readonly kind: 'peek'; readonly stopAfter: number; readonly via: 'break' | 'return' };
  readonly faults: ReadonlyArray<{ readonly op: 'read' | 'write' | 'createExclusive'; readonly skip: number }>;
  readonly abort: boolean;
  readonly sameDevice: boolean;
}

function contentOf(spec: Spec, i: number): Uint8Array {
  const l = spec.layers[i];
  if (!l) throw new Error(`no layer ${i}`);
  if (l.kind === 'tar') return layerTar(i, l.files);
  if (l.kind === 'garbage') return new TextEncoder().encode(`not a tar ${i} `.repeat(100));
  return contentOf(spec, l.of);
}

/** The twin a repeated layer's data goes with (the first layer of the same content). */
function twinOf(spec: Spec, i: number): number | undefined {
  const l = spec.layers[i];
  return l?.kind === 'repeat' ? l.of : undefined;
}

function configFor(spec: Spec): ConfigElement {
  const layers: LayerDescriptor[] = spec.layers.map((_, index) => ({ index, sourceId: `src${index}`, diffId: sha(contentOf(spec, index)), mediaType: 'application/vnd.oci.image.layer.v1.tar' }));
  const raw = new TextEncoder().encode(JSON.stringify({ rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) }, history: [] }));
  return { _tag: 'Config', image: { name: 'prop/image', tag: 'v1' }, digest: sha(raw), raw, config: { rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }, layers };
}

/** Config first, then every layer: a repeat is `Skipped: duplicate` (delivered whenever its fetch ends). */
function tarInput(fs: MemoryFs, spec: Spec): ImageInput {
  return {
    description: 'prop tar input',
    async *elements(ctx: InputContext) {
      const { effects, owner, signal } = ctx;
      throwIfAborted(signal);
      const config = configFor(spec);
      yield config;
      const fetch = async (d: LayerDescriptor, sig: AbortSignal): Promise<LayerElement> => {
        throwIfAborted(sig);
        if (twinOf(spec, d.index) !== undefined) return { _tag: 'Layer', layer: d, payload: { _tag: 'Skipped', reason: 'duplicate' } };
        assert.ok((await ctx.wants(d)).tar, 'a content filter must want every layer');
        const file = await effects.perform({ _tag: 'CreateTemp', owner, purpose: `layer ${d.index}` });
        try {
          const bytes = contentOf(spec, d.index);
          await fs.writeFile(file.path, toText(bytes));
          throwIfAborted(sig);
          return { _tag: 'Layer', layer: d, payload: { _tag: 'Tar', tar: { file, size: bytes.length } } };
        } catch (e) {
          await effects.perform({ _tag: 'Release', file, owner }).catch(() => undefined);
          throw e;
        }
      };
      async function* descriptors() {
        yield* config.layers;
      }
      yield* parallelMap(fetch, { concurrency: ctx.parallelism, order: 'completion', dispose: releaseElement(effects, owner), signal })(descriptors());
    },
  };
}

/** Reads and hashes every layer it gets, releases it, and checks the config that comes after. */
function checkOutput(fs: MemoryFs, spec: Extract<Spec['output'], { kind: 'check' }>, problems: string[]): ImageOutput {
  return {
    description: 'check output',
    order: spec.order,
    wants: async () => Forms.none, // it "has" everything: content filters must want layers anyway
    async consume(elements, ctx): Promise<OutputSummary> {
      let config: ConfigElement | undefined;
      const seen = new Map<number, Digest>();
      let skipped = 0;
      let bytes = 0;
      let held: TempFile | undefined;
      try {
        for await (const e of elements) {
          if (e._tag === 'Config') {
            config = e;
            continue;
          }
          if (spec.order === 'manifest' && !config) problems.push(`manifest order: layer ${e.layer.index} before the config`);
          if (seen.has(e.layer.index)) problems.push(`layer ${e.layer.index} twice`);
          seen.set(e.layer.index, e.layer.diffId);
          if (e.payload._tag === 'Skipped') {
            skipped++;
            continue;
          }
          held = tarOf(e.payload)!.file;
          if (spec.failOnLayer === e.layer.index) throw new InjectedError(`check output failed at layer ${e.layer.index}`);
          const content = toBytes(await fs.readFile(held.path));
          if (sha(content) !== e.layer.diffId) problems.push(`layer ${e.layer.index}: content hashes to ${sha(content)}, descriptor says ${e.layer.diffId}`);
          for await (const entry of readTar((async function* () { yield content; })())) {
            if (entry.header.uid === 3_000_000 && entry.header.pax?.['SCHILY.xattr.user.n'] === undefined) problems.push('an xattr was lost');
          }
          bytes += content.length;
          const done = held;
          held = undefined;
          await ctx.effects.perform({ _tag: 'Release', file: done, owner: ctx.owner });
        }
        if (!config) throw new Error('protocol: no config');
        if (seen.size !== config.layers.length) throw new Error(`protocol: ${seen.size} of ${config.layers.length} layers`);
        config.config.rootfs.diff_ids.forEach((d, i) => {
          if (seen.get(i) !== d) problems.push(`config diff_id ${i} is ${d}, the layer was ${seen.get(i)}`);
        });
        return { destination: 'check', layers: seen.size - skipped, layersSkipped: skipped, bytes, copiedAcrossDevices: 0 };
      } catch (error) {
        if (held) await ctx.effects.perform({ _tag: 'Release', file: held, owner: ctx.owner }).catch((e: unknown) => problems.push(`check output: ${String(e)}`));
        throw error;
      }
    },
  };
}

// ----- the property ------------------------------------------------------------------------

const specArb: fc.Arbitrary<Spec> = fc.integer({ min: 0, max: 5 }).chain((n) =>
  fc.record({
    layers: fc
      .array(
        fc.oneof(
          { arbitrary: fc.record({ kind: fc.constant('tar' as const), files: fc.integer({ min: 0, max: 4 }) }), weight: 6 },
          { arbitrary: fc.constant({ kind: 'garbage' as const }), weight: 1 },
          { arbitrary: fc.record({ kind: fc.constant('repeat' as const), of: fc.nat() }), weight: 2 },
        ),
        { minLength: n, maxLength: n },
      )
      // A repeat refers to an earlier non-repeat layer, or becomes a tar.
      .map((ls) => ls.map((l, i) => (l.kind === 'repeat' ? (i > 0 && ls[l.of % i]?.kind !== 'repeat' ? { kind: 'repeat' as const, of: l.of % i } : { kind: 'tar' as const, files: 1 }) : l))),
    parallelism: fc.integer({ min: 1, max: 3 }),
    bufferDepth: fc.integer({ min: 1, max: 3 }),
    filters: fc.array(fc.constantFrom('normalize' as const, 'exclude' as const), { minLength: 1, maxLength: 2 }),
    output: fc.oneof(
      fc.record({
        kind: fc.constant('check' as const),
        order: fc.constantFrom('manifest' as const, 'completion' as const),
        failOnLayer: fc.oneof({ arbitrary: fc.constant(undefined), weight: 5 }, { arbitrary: fc.nat({ max: Math.max(0, n - 1) }), weight: 1 }),
      }),
      fc.record({ kind: fc.constant('peek' as const), stopAfter: fc.nat({ max: n + 1 }), via: fc.constantFrom('break' as const, 'return' as const) }),
    ),
    faults: fc.oneof(
      { arbitrary: fc.constant([]), weight: 3 },
      { arbitrary: fc.array(fc.record({ op: fc.constantFrom('read' as const, 'write' as const, 'createExclusive' as const), skip: fc.nat({ max: 6 }) }), { minLength: 1, maxLength: 2 }), weight: 2 },
    ),
    abort: fc.oneof({ arbitrary: fc.constant(false), weight: 4 }, { arbitrary: fc.constant(true), weight: 1 }),
    sameDevice: fc.boolean(),
  }),
);

function filterFor(kind: 'normalize' | 'exclude', files: LayerFiles): ImageFilter {
  return kind === 'normalize' ? new NormalizeTimestampsFilter({ timestamp: 0, files }) : new ExcludeFilter({ patterns: ['*.pyc'], files });
}

test('content filters release every file they replace: success, failure mid-layer, failing output, early stop, abort', async () => {
  const stats = { ok: 0, failed: 0, rewrittenAndReleased: 0 };
  await fc.assert(
    fc.asyncProperty(specArb, fc.scheduler(), async (spec, s) => {
      const fs = new MemoryFs({ dirs: ['/tmp', '/out'], scheduler: s });
      const problems: string[] = [];
      const ctx = () => `spec: ${JSON.stringify(spec)}\nfs log:\n${fs.log.map((e) => `  #${e.seq} ${e.op}(${e.args.join(', ')}) ${e.outcome}`).join('\n')}`;
      const scope = await withDeadline(s.waitFor(realScope(fs, spec.sameDevice ? '/out/.work' : '/tmp')), 5000, 'scope open', ctx);
      for (const f of spec.faults) fs.failNext(f.op, 'EIO', { skip: f.skip });
      const outer = new AbortController();
      if (spec.abort) void s.schedule(Promise.resolve(), 'abort').then(() => outer.abort(new InjectedError('aborted')));
      const files = memoryLayerFiles(fs);
      const output = spec.output.kind === 'check' ? checkOutput(fs, spec.output, problems) : peekOutput({ fs, problems }, spec.output);
      const run = runPipeline({
        input: tarInput(fs, spec),
        filters: spec.filters.map((k) => filterFor(k, files)),
        output,
        effects: scope,
        signal: outer.signal,
        parallelism: spec.parallelism,
        bufferDepth: spec.bufferDepth,
      });
      const outcome = await withDeadline(
        s.waitFor(run).then(
          (value) => ({ ok: true as const, value }),
          (error: unknown) => ({ ok: false as const, error }),
        ),
        5000,
        'runPipeline',
        ctx,
      );
      await withDeadline(s.waitIdle(), 5000, 'idle after the run', ctx);
      const violations = problems.map((p) => `stage problem: ${p}`);
      violations.push(...releasedFilesAreGone(scope, fs));
      const unclaimed = scope.ledger.all().filter((e) => e.state._tag === 'Live' || e.state._tag === 'Moving');
      if (unclaimed.length > 0) violations.push(`still owned after the run returned: ${unclaimed.map((e) => `#${e.id} ${e.purpose} ${JSON.stringify(e.state)}`).join(', ')}`);
      const report = await withDeadline(s.waitFor(scope.close()), 5000, 'scope.close()', ctx);
      await withDeadline(s.waitIdle(), 5000, 'idle after close', ctx);
      violations.push(...invariantAfterClose(scope, fs, report));
      if (report.released !== 0) violations.push(`scope.close() had to release ${report.released} file(s)`);
      if (fs.filesUnder('/tmp').length > 0 || fs.filesUnder('/out').length > 0) violations.push(`files left: ${[...fs.filesUnder('/tmp'), ...fs.filesUnder('/out')].join(', ')}`);
      const hasGarbage = spec.layers.some((l) => l.kind === 'garbage');
      if (outcome.ok) {
        stats.ok++;
        if (hasGarbage && spec.output.kind === 'check') violations.push('a layer that is not a tar was rewritten without error');
      } else {
        stats.failed++;
        const e = outcome.error;
        const acceptable =
          isInjected(e) ||
          (spec.abort && OccystrapError.is(e) && e.code === 'EABORT') ||
          (hasGarbage && OccystrapError.is(e) && e.code === 'EINPUT' && /is not a tar we can rewrite/.test(e.message));
        if (!acceptable) violations.push(`the run failed with an error nobody injected: ${(e as Error)?.stack ?? String(e)}`);
      }
      // Files the filters created and released (their replacements were delivered or dropped).
      stats.rewrittenAndReleased += scope.ledger.all().filter((e) => /layer-\d+$/.test(e.purpose) && e.state._tag === 'Released' && e.state.by !== 'scope').length;
      assertNoViolations(violations, ctx);
    }),
    { numRuns: 250 },
  );
  assert.ok(stats.ok > 20 && stats.failed > 20, `runs: ${JSON.stringify(stats)}`);
  assert.ok(stats.rewrittenAndReleased > 50, `filters' own files released: ${stats.rewrittenAndReleased}`);
});
