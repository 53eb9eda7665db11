/**
 * Property bodies for the element model with both forms: random pipelines of the forms
 * stages (./forms-pipeline.ts) into the real copy loop, with `Inflate`/`Compress`
 * performed by the real scope through memory codecs, under a scheduler-controlled memory
 * fs, with faults (fs operations, codecs, stages), early stops and aborts.
 *
 * @module
 */
import * as fc from 'fast-check';
import type { Digest } from '../../src/core/digest.js';
import { type ConfigElement, releaseElement } from '../../src/core/element.js';
import { OccystrapError } from '../../src/core/errors.js';
import type { SearchReport } from '../../src/core/filters/search.js';
import type { Compression } from '../../src/core/media-types.js';
import { type Effects, OwnershipError, type OwnershipEffect, type ReplyOf } from '../../src/core/ownership.js';
import { Owners, runPipeline } from '../../src/core/pipeline/compose.js';
import type { CloseReport } from '../../src/shell/scope.js';
import type { OutputSummary } from '../../src/core/pipeline/types.js';
import { abandoningOutput, closeAbandoned } from './abandoning-output.js';
import { assertNoViolations, invariantAfterClose, releasedFilesAreGone, settleScheduled, withDeadline } from './invariants.js';
import { compressedContent, type CodecFaultPoint, type CodecOp, MemoryCodecs, shaOf } from './memory-codecs.js';
import { type FsOpName, isInjected, MemoryFs } from './memory-fs.js';
import { excludeChanges, predictLayer, storedCompression } from './forms-model.js';
import {
  DEST,
  type FormsDestination,
  type FormsDestSpec,
  type FormsFilterSpec,
  formsDescriptors,
  formsInput,
  type FormsInputSpec,
  type FormsLayerSpec,
  type FormsOutputSpec,
  type FormsWorld,
  layerPath,
  makeFormsFilter,
  makeFormsOutput,
  sourceBlob,
  tarContent,
} from './forms-pipeline.js';
import { InjectedError } from './model-pipeline.js';
import type { ScopeFactory } from './scopes.js';

export interface FormsRunSpec {
  readonly input: FormsInputSpec;
  readonly filters: readonly FormsFilterSpec[];
  readonly output: FormsOutputSpec;
  readonly parallelism: number;
  readonly bufferDepth: number;
  /** Run dir on the output's device (`/out/.work`) or on another one (`/tmp`: moves copy). */
  readonly sameDevice: boolean;
  readonly fsFaults: ReadonlyArray<{ readonly op: FsOpName; readonly code: string; readonly skip: number }>;
  readonly codecFaults: ReadonlyArray<{ readonly op: CodecOp; readonly point: CodecFaultPoint; readonly skip: number }>;
  readonly abort: boolean;
  /** In the close-during-run mode: scheduler steps before close() starts. */
  readonly closeAfter: number;
}

/** Usually nothing, sometimes a layer index. */
const maybeIndex = (layers: number, weight = 7): fc.Arbitrary<number | undefined> =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight }, { arbitrary: fc.nat({ max: Math.max(0, layers - 1) }), weight: 1 });

const formNameArb = fc.constantFrom('tar' as const, 'blob' as const, 'both' as const);

const layersArb = (n: number): fc.Arbitrary<FormsLayerSpec[]> =>
  fc
    .array(
      fc.record({
        files: fc.integer({ min: 0, max: 4 }),
        repeat: fc.oneof({ arbitrary: fc.constant(undefined), weight: 5 }, { arbitrary: fc.nat(), weight: 1 }),
        compression: fc.constantFrom<Compression>('gzip', 'gzip', 'zstd', 'none'),
        randomForm: formNameArb,
        badBlob: fc.oneof({ arbitrary: fc.constant(false), weight: 5 }, { arbitrary: fc.constant(true), weight: 1 }),
      }),
      { minLength: n, maxLength: n },
    )
    // A repeat refers to an earlier layer that is not itself a repeat.
    .map((ls) =>
      ls.map((l, i, all): FormsLayerSpec => {
        const of = l.repeat === undefined || i === 0 ? undefined : l.repeat % i;
        const ok = of !== undefined && all[of]?.repeat === undefined;
        return { files: l.files, repeatOf: ok ? of : undefined, compression: l.compression, randomForm: l.randomForm, badBlob: l.badBlob };
      }),
    );

const filterArb = (n: number): fc.Arbitrary<FormsFilterSpec> =>
  fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('keepOne' as const), keep: fc.constantFrom('tar' as const, 'blob' as const), throwAtLayer: maybeIndex(n, 9) }), weight: 3 },
    { arbitrary: fc.record({ kind: fc.constant('readTar' as const), asks: fc.boolean(), keepBlob: fc.boolean(), throwAtLayer: maybeIndex(n, 9) }), weight: 3 },
    { arbitrary: fc.record({ kind: fc.constant('trim' as const), throwAtLayer: maybeIndex(n, 9) }), weight: 2 },
    { arbitrary: fc.constant({ kind: 'search' as const }), weight: 1 },
    { arbitrary: fc.constant({ kind: 'exclude' as const }), weight: 2 },
  );

const destArb = (n: number): fc.Arbitrary<FormsDestSpec> =>
  fc.record({
    kind: fc.constant('dest' as const),
    needs: fc.constantFrom('tar' as const, 'gzip' as const, 'zstd' as const),
    order: fc.constantFrom('manifest' as const, 'completion' as const),
    concurrency: fc.integer({ min: 1, max: 3 }),
    present: fc.subarray(Array.from({ length: n }, (_, i) => i)),
    store: fc.constantFrom('move' as const, 'copy' as const),
    offers: fc.boolean(),
    consumes: fc.boolean(),
    failAt: fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 6 },
      { arbitrary: fc.record({ op: fc.constantFrom('begin' as const, 'putLayer' as const, 'putLayer' as const, 'putConfig' as const, 'commit' as const), layer: fc.nat({ max: Math.max(0, n - 1) }) }), weight: 1 },
    ),
  })
  // A destination offers places or consumers, not both (consumers would take every layer).
  .map((d) => (d.offers ? { ...d, consumes: false } : d));

const fsFaultArb = fc
  .record({
    op: fc.constantFrom<FsOpName>('write', 'write', 'read', 'createExclusive', 'rename', 'copyFile'),
    code: fc.constantFrom('EIO', 'EXDEV'),
    skip: fc.nat({ max: 10 }),
  })
  .map((f) => (f.op === 'rename' ? f : { ...f, code: 'EIO' }));

const codecFaultArb = fc.record({
  op: fc.constantFrom<CodecOp>('inflate', 'compress'),
  point: fc.constantFrom<CodecFaultPoint>('start', 'midway', 'afterWrite'),
  skip: fc.nat({ max: 3 }),
});

/** Random forms pipelines: 0–5 layers (some repeated), 0–2 filters, a destination or an early stop. */
export const formsRunSpecArb: fc.Arbitrary<FormsRunSpec> = fc.integer({ min: 0, max: 5 }).chain((n) =>
  fc.record({
    input: fc.record({ kind: fc.constantFrom('asked' as const, 'tars' as const, 'random' as const), layers: layersArb(n), throwAtLayer: maybeIndex(n, 12) }),
    filters: fc.array(filterArb(n), { maxLength: 2 }),
    output: fc.oneof(
      { arbitrary: destArb(n), weight: 5 },
      { arbitrary: fc.record({ kind: fc.constant('peek' as const), wants: formNameArb, stopAfter: fc.nat({ max: n + 1 }), via: fc.constantFrom('break' as const, 'return' as const) }), weight: 1 },
    ),
    parallelism: fc.integer({ min: 1, max: 3 }),
    bufferDepth: fc.integer({ min: 1, max: 3 }),
    sameDevice: fc.boolean(),
    fsFaults: fc.oneof({ arbitrary: fc.constant([]), weight: 4 }, { arbitrary: fc.array(fsFaultArb, { minLength: 1, maxLength: 2 }), weight: 1 }),
    codecFaults: fc.oneof({ arbitrary: fc.constant([]), weight: 2 }, { arbitrary: fc.array(codecFaultArb, { minLength: 1, maxLength: 2 }), weight: 1 }),
    abort: fc.oneof({ arbitrary: fc.constant(false), weight: 5 }, { arbitrary: fc.constant(true), weight: 1 }),
    closeAfter: fc.nat({ max: 40 }),
  }),
);

/** Transcodes in every run, and codec faults among them: the random input, one or two codec faults. */
export const transcodeFaultSpecArb: fc.Arbitrary<FormsRunSpec> = formsRunSpecArb.filter((spec) => spec.input.layers.length > 0 && spec.output.kind === 'dest').chain((spec) =>
  fc
    .array(codecFaultArb.map((f) => ({ ...f, skip: f.skip % 2 })), { minLength: 1, maxLength: 2 })
    .map((codecFaults): FormsRunSpec => ({ ...spec, input: { ...spec.input, kind: 'random' }, codecFaults, fsFaults: [], abort: false })),
);

function isFaultFree(spec: FormsRunSpec): boolean {
  return (
    spec.input.throwAtLayer === undefined &&
    spec.filters.every((f) => !('throwAtLayer' in f) || f.throwAtLayer === undefined) &&
    (spec.output.kind === 'peek' || spec.output.failAt === undefined) &&
    spec.fsFaults.length === 0 &&
    spec.codecFaults.length === 0 &&
    !spec.abort
  );
}

/** Every `Inflate`/`Compress` effect performed, by whom, and how it ended. */
export interface TranscodeRecord {
  readonly tag: 'Inflate' | 'Compress';
  readonly owner: string;
  readonly purpose: string;
  ok: boolean | undefined;
}

/** The handler as the stages see it: forwards every effect, logging the transcodes. */
class LoggingEffects implements Effects {
  readonly transcodes: TranscodeRecord[] = [];
  constructor(private readonly inner: Effects) {}
  perform<E extends OwnershipEffect>(effect: E): Promise<ReplyOf<E>> {
    const p = this.inner.perform(effect);
    if (effect._tag === 'Inflate' || effect._tag === 'Compress') {
      const r: TranscodeRecord = { tag: effect._tag, owner: effect.owner, purpose: effect.purpose, ok: undefined };
      this.transcodes.push(r);
      p.then(
        () => (r.ok = true),
        () => (r.ok = false),
      );
    }
    return p;
  }
}

export interface FormsStats {
  /** Layers a destination received `Placed` (written into the place it offered). */
  placed: number;
  /** Layers a destination received `Consumed` (streamed into the consumer it offered). */
  consumed: number;
  ok: number;
  failed: number;
  inflates: number;
  compresses: number;
  /** Successful runs into a blob destination that stored source blobs only, with no transcode at all. */
  passthrough: number;
  /** Layers a filter changed (exclude) that reached a destination. */
  rewritten: number;
  /** Runs where a codec fault fired. */
  codecFaultsFired: number;
  /** Runs that failed because a bad blob was inflated (EDIGEST). */
  digestErrors: number;
  /** Files a close during the run released. */
  releasedByClose: number;
}

export function emptyFormsStats(): FormsStats {
  return { placed: 0, consumed: 0, ok: 0, failed: 0, inflates: 0, compresses: 0, passthrough: 0, rewritten: 0, codecFaultsFired: 0, releasedByClose: 0, digestErrors: 0 };
}

/** BROKEN variants of the stages (test-of-tests). */
export interface FormsMode {
  readonly leakyInput?: boolean;
  /** keepOne filters drop the other form without releasing it. */
  readonly filterLeaksDropped?: boolean;
  readonly destForgetsUnstored?: boolean;
  readonly destReleasesTwice?: boolean;
  /** readTar filters inflate a layer that already came with its tar. */
  readonly wastefulInflate?: boolean;
  /**
   * Not broken: `scope.close()` at a scheduler-chosen moment while the run is in flight
   * (a signal handler), possibly while an Inflate or Compress is writing.
   */
  readonly closeDuringRun?: boolean;
}

function dumpFs(fs: MemoryFs): string {
  return `fs log:\n${fs.log.map((e) => `  #${e.seq} ${e.op}(${e.args.join(', ')}) ${e.outcome}${e.injected ? ' [injected]' : ''}`).join('\n')}`;
}

/** What a checked run did (after every check passed). */
export interface FormsRunResult {
  readonly ok: boolean;
  readonly inflates: number;
  readonly compresses: number;
}

export async function checkFormsRun(spec: FormsRunSpec, s: fc.Scheduler, factory: ScopeFactory, mode: FormsMode = {}, stats?: FormsStats): Promise<FormsRunResult> {
  const fs = new MemoryFs({ dirs: ['/tmp', '/out'], scheduler: s });
  const codecs = new MemoryCodecs(fs);
  const world: FormsWorld = { fs, problems: [] };
  const ctx = () =>
    `spec: ${JSON.stringify(spec)}\ncodec calls: ${JSON.stringify(codecs.calls)}\n${dumpFs(fs)}\nscheduler:\n${s
      .report()
      .map((t) => `  ${t.status} ${t.label}`)
      .join('\n')}`;
  const scope = await withDeadline(s.waitFor(factory(fs, spec.sameDevice ? '/out/.work' : '/tmp', codecs)), 5000, 'scope open', ctx);
  for (const f of spec.fsFaults) fs.failNext(f.op, f.code, { skip: f.skip });
  for (const f of spec.codecFaults) codecs.failNext(f.op, f.point, f.skip);
  const effects = new LoggingEffects(scope);
  const outer = new AbortController();
  if (spec.abort) void s.schedule(Promise.resolve(), 'abort').then(() => outer.abort(new InjectedError('aborted by the user')));

  const reports: SearchReport[] = [];
  const broken = (f: FormsFilterSpec): FormsFilterSpec =>
    f.kind === 'keepOne' && mode.filterLeaksDropped ? { ...f, leakDropped: true } : f.kind === 'readTar' && mode.wastefulInflate ? { ...f, wasteful: true } : f;
  const filters = spec.filters.map((f) => makeFormsFilter(world, broken(f), reports));
  const outputSpec: FormsOutputSpec =
    spec.output.kind === 'dest' ? { ...spec.output, forgetUnstored: mode.destForgetsUnstored ?? false, releaseTwice: mode.destReleasesTwice ?? false } : spec.output;
  const { output, destination } = makeFormsOutput(world, outputSpec, spec.input.layers);
  let closing: Promise<CloseReport> | undefined;
  let runSettled = false;
  let closedEarly = false;
  if (mode.closeDuringRun) {
    closing = (async () => {
      for (let n = 0; n < spec.closeAfter && !runSettled; n++) await s.schedule(Promise.resolve(), 'tick');
      await s.schedule(Promise.resolve(), 'close during run');
      closedEarly = !runSettled;
      return scope.close();
    })();
  }
  const run = runPipeline({
    input: formsInput(world, { ...spec.input, leakOnThrow: mode.leakyInput ?? false }),
    filters,
    output,
    effects,
    signal: outer.signal,
    parallelism: spec.parallelism,
    bufferDepth: spec.bufferDepth,
  });
  const outcome = await settleScheduled(s, run, () => (runSettled = true), ctx);

  // Once close has taken the files, stages meet refused releases: expected then.
  const violations = closedEarly ? [] : world.problems.map((p) => `stage problem: ${p}`);
  violations.push(...releasedFilesAreGone(scope, fs));
  const unclaimed = scope.ledger.all().filter((e) => e.state._tag === 'Live' || e.state._tag === 'Moving');
  if (unclaimed.length > 0 && !closedEarly) violations.push(`still owned after the run returned: ${unclaimed.map((e) => `#${e.id} ${e.purpose} ${JSON.stringify(e.state)}`).join(', ')}`);
  const report = await withDeadline(s.waitFor(closing ?? scope.close()), 5000, 'scope.close()', ctx);
  await withDeadline(s.waitIdle(), 5000, 'idle after close', ctx);
  violations.push(...invariantAfterClose(scope, fs, report));
  if (report.released !== 0 && !closedEarly) violations.push(`scope.close() had to release ${report.released} file(s)`);
  if (stats && closedEarly) stats.releasedByClose += report.released;
  if (fs.filesUnder('/tmp').length > 0) violations.push(`files left under /tmp: ${fs.filesUnder('/tmp').join(', ')}`);
  // The effect log and the codecs agree: every transcode went through the scope.
  const okTranscodes = effects.transcodes.filter((t) => t.ok === true);
  const codecDone = codecs.done('inflate').length + codecs.done('compress').length;
  if (codecDone < okTranscodes.length) violations.push(`${okTranscodes.length} transcodes succeeded but the codecs completed only ${codecDone}`);

  // A bad blob that some stage inflates must fail the run with EDIGEST (any other way is wrong).
  const badBlobInflated =
    spec.output.kind === 'dest' ? spec.input.layers.some((l, i) => l.badBlob && predictLayer(spec.input, spec.filters, spec.output as FormsDestSpec, i, (j) => excludeChanges(spec.input, j)).inflates > 0) : undefined;
  const isDigestError = (e: unknown) => OccystrapError.is(e) && e.code === 'EDIGEST' && /uncompresses to .*but the config's diff_id is/.test(e.message);
  if (outcome.ok) {
    if (badBlobInflated) violations.push('a blob that does not uncompress to its diff_id was inflated, and the run succeeded');
    // A run that won its race with close must still be exactly right.
    if (destination) violations.push(...checkSuccess(spec, spec.output as FormsDestSpec, destination, outcome.value, effects.transcodes, fs, stats));
  } else {
    const e = outcome.error;
    const acceptable =
      isInjected(e) ||
      (spec.abort && OccystrapError.is(e) && e.code === 'EABORT') ||
      ((badBlobInflated ?? spec.input.layers.some((l) => l.badBlob)) && isDigestError(e)) ||
      // Closed under the run's feet: refused effects, or a stage touching a file close removed.
      // (an Inflate/Compress under way is stopped by close with "the run is shutting down").
      (closedEarly && (e instanceof OwnershipError || (e as { code?: string }).code === 'ENOENT' || /the run is shutting down/.test(String((e as Error)?.message))));
    if (!acceptable) violations.push(`the run failed with an error nobody injected: ${(e as Error)?.stack ?? String(e)}`);
    if (isFaultFree(spec) && !closedEarly && !badBlobInflated && !isDigestError(e)) violations.push(`a fault-free run failed: ${String(e)}`);
    if (fs.filesUnder('/out').length > 0) violations.push(`partial output left after failure: ${fs.filesUnder('/out').join(', ')}`);
    if (fs.isDir(DEST)) violations.push(`partial output dir ${DEST} left after failure`);
    if (destination) {
      const begun = destination.events.some((ev) => ev.op === 'begin');
      const aborts = destination.events.filter((ev) => ev.op === 'abort').length;
      if (aborts !== (begun ? 1 : 0)) violations.push(`the copy loop called abort() ${aborts} time(s) after a failed run (begin ${begun ? 'was' : 'was not'} called)`);
    }
  }
  if (stats) {
    if (outcome.ok) stats.ok++;
    else stats.failed++;
    stats.inflates += okTranscodes.filter((t) => t.tag === 'Inflate').length;
    stats.compresses += okTranscodes.filter((t) => t.tag === 'Compress').length;
    if (codecs.calls.some((c) => /injected/.test(c.outcome))) stats.codecFaultsFired++;
    if (!outcome.ok && isDigestError(outcome.error)) stats.digestErrors++;
  }
  assertNoViolations(violations, ctx);
  return { ok: outcome.ok, inflates: okTranscodes.filter((t) => t.tag === 'Inflate').length, compresses: okTranscodes.filter((t) => t.tag === 'Compress').length };
}

/** The config rule, the records, the files and the transcode counts of a successful run. */
function checkSuccess(
  spec: FormsRunSpec,
  dest: FormsDestSpec,
  destination: FormsDestination,
  summary: OutputSummary,
  transcodes: readonly TranscodeRecord[],
  fs: MemoryFs,
  stats: FormsStats | undefined,
): string[] {
  const out: string[] = [];
  const { events } = destination;
  const layers = spec.input.layers;
  const original = formsDescriptors(layers);
  const contentFilter = spec.filters.some((f) => f.kind === 'exclude');
  // ----- the config rule, as the destination received it
  const ops = events.map((e) => e.op).join(',');
  const begin = events[0];
  const putConfigs = events.filter((e): e is Extract<typeof e, { op: 'putConfig' }> => e.op === 'putConfig');
  const commit = events.at(-1);
  if (begin?.op !== 'begin' || commit?.op !== 'commit' || putConfigs.length !== 1 || events.some((e) => e.op === 'abort')) {
    return [`destination calls out of order: ${ops}`];
  }
  const final = (putConfigs[0] as { config: ConfigElement }).config;
  if ((begin.config.provisional === true) !== contentFilter) out.push(`first config provisional=${String(begin.config.provisional)} with${contentFilter ? '' : 'out'} a content filter`);
  if (final.provisional) out.push('the final config is provisional');
  const putConfigAt = events.indexOf(putConfigs[0]!);
  if (contentFilter) {
    if (events.slice(putConfigAt).some((e) => e.op === 'putLayer')) out.push(`putConfig came before a layer after a provisional config: ${ops}`);
  } else if (putConfigAt !== 1 || final !== begin.config) out.push(`the source's final config was not put right after begin: ${ops}`);
  if (commit.image.config !== final) out.push('commit got another config than putConfig');
  const finalIds = final.layers.map((d) => d.diffId);
  if (JSON.stringify(final.config.rootfs.diff_ids) !== JSON.stringify(finalIds)) out.push(`final config lists ${JSON.stringify(final.config.rootfs.diff_ids)} but its layers are ${JSON.stringify(finalIds)}`);
  if (final.layers.length !== layers.length) return [...out, `final config has ${final.layers.length} layers, the image ${layers.length}`];
  const changed = (i: number) => finalIds[i] !== original[i]?.diffId;
  layers.forEach((_, i) => {
    if (changed(i) !== (contentFilter && excludeChanges(spec.input, i))) out.push(`layer ${i} ${changed(i) ? 'changed' : 'did not change'} (exclude ${contentFilter ? 'ran' : 'did not run'}; it has ${layers[i]?.files} files)`);
  });

  // ----- records, files and counts, per layer, against the model
  const expected = new Map<string, (content: string) => string | undefined>();
  const exact = (want: string) => (got: string) => (got === want ? undefined : `content ${JSON.stringify(got.slice(0, 40))}…, expected ${JSON.stringify(want.slice(0, 40))}…`);
  expected.set(`${DEST}/config.json`, exact(Buffer.from(final.raw).toString('latin1')));
  expected.set(`${DEST}/manifest`, () => undefined);
  let loopInflates = 0;
  let loopCompresses = 0;
  let storedSourceBlobs = 0;
  let storedOther = 0;
  layers.forEach((_, i) => {
    const p = predictLayer(spec.input, spec.filters, dest, i, changed);
    loopInflates += p.loopInflates;
    loopCompresses += p.loopCompresses;
    const record = commit.image.layers[i];
    const ok = (t: TranscodeRecord) => t.ok === true;
    const inflates = transcodes.filter((t) => ok(t) && t.tag === 'Inflate' && t.purpose === `layer-${i}-tar`).length;
    const compresses = transcodes.filter((t) => ok(t) && t.tag === 'Compress' && new RegExp(`^layer-${i}-(gzip|zstd)$`).test(t.purpose)).length;
    if (inflates !== p.inflates || compresses !== p.compresses) out.push(`layer ${i}: ${inflates} inflate(s) and ${compresses} compress(es), the model says ${p.inflates} and ${p.compresses}`);
    if (!record) return void out.push(`no record for layer ${i}`);
    const o = p.outcome;
    if (record._tag !== o.record) return void out.push(`layer ${i}: record ${record._tag}, the model says ${JSON.stringify(o)}`);
    if (o.record === 'Duplicate' && record._tag === 'Duplicate' && record.of !== o.of) out.push(`layer ${i}: duplicate of ${record.of}, expected ${o.of}`);
    if (o.record !== 'Stored' || record._tag !== 'Stored') return;
    if (o.kept !== (record.stored.path === undefined)) return void out.push(`layer ${i}: stored at ${String(record.stored.path)}, the model says kept=${o.kept}`);
    if (o.kept) return;
    if (changed(i)) stats && stats.rewritten++;
    const diffId = finalIds[i] as Digest;
    if (o.form === 'tar') {
      storedOther++;
      expected.set(layerPath(i, 'tar'), changed(i) ? (got) => (shaOf(got) === diffId ? undefined : `tar hashes to ${shaOf(got)}, not ${diffId}`) : exact(tarContent(layers, i)));
      return;
    }
    const compression = storedCompression(spec.input, dest, i, o.form);
    if (o.form === 'sourceBlob') {
      storedSourceBlobs++;
      expected.set(layerPath(i, compression), exact(sourceBlob(layers, i)));
      return;
    }
    storedOther++;
    expected.set(
      layerPath(i, compression),
      changed(i)
        ? (got) => {
            const prefix = `${compression}:`;
            if (!got.startsWith(prefix)) return `not a ${compression} blob`;
            const tar = [...got.slice(prefix.length)].reverse().join('');
            return shaOf(tar) === diffId ? undefined : `blob inflates to ${shaOf(tar)}, not ${diffId}`;
          }
        : exact(compressedContent(tarContent(layers, i), compression as 'gzip' | 'zstd')),
    );
  });
  const area = fs.filesUnder('/out');
  for (const path of area) {
    const check = expected.get(path);
    if (!check) out.push(`unexpected file in the destination: ${path}`);
    else {
      const problem = check(fs.contentOf(path) ?? '');
      if (problem) out.push(`${path}: ${problem}`);
    }
  }
  for (const path of expected.keys()) if (!area.includes(path)) out.push(`missing from the destination: ${path}`);
  if ((summary.inflated ?? 0) !== loopInflates || (summary.compressed ?? 0) !== loopCompresses) {
    out.push(`summary says ${summary.inflated} inflated / ${summary.compressed} compressed by the copy loop, the model ${loopInflates} / ${loopCompresses}`);
  }
  if (stats) stats.placed += events.filter((e) => e.op === 'putLayer' && e.form === 'Placed').length;
  if (stats) stats.consumed += events.filter((e) => e.op === 'putLayer' && e.form === 'Consumed').length;
  if (stats && dest.needs !== 'tar' && storedSourceBlobs > 0 && storedOther === 0 && transcodes.length === 0) stats.passthrough++;
  return out;
}

export function formsOwnershipProperty(factory: ScopeFactory, mode: FormsMode = {}, stats?: FormsStats, specs: fc.Arbitrary<FormsRunSpec> = formsRunSpecArb) {
  return fc.asyncProperty(specs, fc.scheduler(), async (spec, s) => void (await checkFormsRun(spec, s, factory, mode, stats)));
}

/**
 * The counts, stated plainly (not through the model): fault-free runs without filters into
 * a blob destination. Fed blobs (the input makes what was asked), the run performs no
 * Inflate and no Compress; fed tars only, exactly one Compress per distinct layer it
 * stores (repeats and layers it holds are not compressed), and no Inflate.
 */
export function transcodeCountProperty(factory: ScopeFactory) {
  const specs = formsRunSpecArb
    .map((spec): FormsRunSpec => ({ ...spec, filters: [], fsFaults: [], codecFaults: [], abort: false, input: { ...spec.input, throwAtLayer: undefined } }))
    .chain((spec) =>
      fc.record({
        spec: fc.constant(spec),
        needs: fc.constantFrom('gzip' as const, 'zstd' as const),
        fedTars: fc.boolean(),
        present: fc.subarray(spec.input.layers.map((_, i) => i)),
      }),
    )
    .map(({ spec, needs, fedTars, present }): FormsRunSpec => {
      const output: FormsDestSpec = { kind: 'dest', needs, order: 'completion', concurrency: 2, present, store: 'move', failAt: undefined, ...(spec.output.kind === 'dest' ? { order: spec.output.order, concurrency: spec.output.concurrency, store: spec.output.store } : {}) };
      return { ...spec, output, input: { kind: fedTars ? 'tars' : 'asked', layers: spec.input.layers, throwAtLayer: undefined } };
    });
  return fc.asyncProperty(specs, fc.scheduler(), async (spec, s) => {
    const r = await checkFormsRun(spec, s, factory);
    const layers = spec.input.layers;
    const carrier = (i: number): number => layers[i]?.repeatOf ?? i;
    const held = new Set((spec.output as FormsDestSpec).present.map(carrier));
    const stored = layers.filter((l, i) => l.repeatOf === undefined && !held.has(i)).length;
    const expected = spec.input.kind === 'tars' ? { inflates: 0, compresses: stored } : { inflates: 0, compresses: 0 };
    if (!r.ok || r.inflates !== expected.inflates || r.compresses !== expected.compresses) {
      throw new Error(`fed ${spec.input.kind === 'tars' ? 'tars' : 'blobs'}: ok=${r.ok}, ${r.inflates} inflate(s), ${r.compresses} compress(es); expected ${JSON.stringify(expected)}\nspec: ${JSON.stringify(spec)}`);
    }
  });
}

// ----- the abandoned consumer ------------------------------------------------------------------

/**
 * runPipeline over the forms stages into an output that pulls a few times (each
 * element's files released, both forms) and then drops the iterator without `return()`: the stages
 * (and any Inflate under way) never release what they hold. Only the scope can; after
 * close the invariant must hold all the same.
 */
export function formsAbandonedProperty(factory: ScopeFactory, stats?: { releasedByScope: number[] }) {
  const specs = fc.record({
    spec: transcodeFaultSpecArb.map((s): FormsRunSpec => ({ ...s, codecFaults: [] })),
    pulls: fc.nat({ max: 6 }),
    settleFirst: fc.boolean(),
  });
  return fc.asyncProperty(specs, fc.scheduler(), async ({ spec, pulls, settleFirst }, s) => {
    const fs = new MemoryFs({ dirs: ['/tmp', '/out'], scheduler: s });
    const codecs = new MemoryCodecs(fs);
    const world: FormsWorld = { fs, problems: [] };
    const ctx = () => `spec: ${JSON.stringify({ spec, pulls, settleFirst })}\n${dumpFs(fs)}`;
    const scope = await withDeadline(s.waitFor(factory(fs, spec.sameDevice ? '/out/.work' : '/tmp', codecs)), 5000, 'open', ctx);
    const filters = spec.filters.map((f) => makeFormsFilter(world, f, []));
    const { output, pulled } = abandoningOutput(makeFormsOutput(world, spec.output, spec.input.layers).output, pulls, (e) => releaseElement(scope, Owners.output)(e));
    // The real runPipeline; its output drops the iterator, so the run never settles.
    void runPipeline({ input: formsInput(world, spec.input), filters, output, effects: scope, parallelism: spec.parallelism, bufferDepth: spec.bufferDepth });
    const report = await closeAbandoned(s, scope, fs, { pulled, settleFirst, ctx });
    stats?.releasedByScope.push(report.released);
  });
}
