/**
 * Property bodies over whole pipelines: the real `runPipeline` (for the abandoned
 * consumer, into an output that drops the iterator) with synthetic stages over a
 * scheduler-controlled memory fs.
 *
 * @module
 */
import * as fc from 'fast-check';
import { tarOf } from '../../src/core/element.js';
import { OccystrapError } from '../../src/core/errors.js';
import { OwnershipError } from '../../src/core/ownership.js';
import { Owners, runPipeline } from '../../src/core/pipeline/compose.js';
import type { OutputSummary } from '../../src/core/pipeline/types.js';
import type { CloseReport } from '../../src/shell/scope.js';
import { abandoningOutput, closeAbandoned } from './abandoning-output.js';
import { assertNoViolations, invariantAfterClose, releasedFilesAreGone, settleScheduled, withDeadline } from './invariants.js';
import { type FsOpName, isInjected, MemoryFs } from './memory-fs.js';
import {
  expectedOutputFiles,
  expectedSkipped,
  type FilterSpec,
  InjectedError,
  makeOutput,
  type OutputSpec,
  syntheticFilter,
  syntheticInput,
  type World,
} from './model-pipeline.js';
import type { ScopeFactory, ScopeUnderTest } from './scopes.js';

export const OUT_DIR = '/out/image';
export const OUT_TAR = '/out/image.tar';

export interface PipelineSpec {
  readonly layers: number;
  readonly parallelism: number;
  readonly bufferDepth: number;
  /** Run dir on the output's device (`/out/.work`) or on another one (`/tmp`, so moves copy). */
  readonly sameDevice: boolean;
  readonly chunks: number;
  readonly inputThrowsAt: number | undefined;
  readonly filters: readonly FilterSpec[];
  readonly output: OutputSpec;
  readonly faults: ReadonlyArray<{ readonly op: FsOpName; readonly code: string; readonly skip: number }>;
  /** Abort through the outer signal at a scheduler-chosen moment. */
  readonly abort: boolean;
}

/** Usually nothing (so most runs get far), sometimes a layer index. */
const maybeIndex = (layers: number): fc.Arbitrary<number | undefined> =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: 7 }, { arbitrary: fc.nat({ max: Math.max(0, layers - 1) }), weight: 1 });
const subset = (layers: number) => fc.subarray(Array.from({ length: layers }, (_, i) => i));

const faultArb = fc.record({
  op: fc.constantFrom<FsOpName>('rename', 'rename', 'write', 'createExclusive', 'copyFile', 'read'),
  code: fc.constantFrom('EIO', 'EXDEV'),
  skip: fc.nat({ max: 8 }),
}).map((f) => (f.op === 'rename' ? f : { ...f, code: 'EIO' }));

/** Random pipelines: 0–8 layers, parallelism 1–4, buffer 1–4, 0–2 filters, faults, stops, aborts. */
export const pipelineSpecArb: fc.Arbitrary<PipelineSpec> = fc.integer({ min: 0, max: 8 }).chain((layers) =>
  fc.record({
    layers: fc.constant(layers),
    parallelism: fc.integer({ min: 1, max: 4 }),
    bufferDepth: fc.integer({ min: 1, max: 4 }),
    sameDevice: fc.boolean(),
    chunks: fc.integer({ min: 1, max: 2 }),
    inputThrowsAt: maybeIndex(layers),
    filters: fc.array(
      fc.record({ replace: subset(layers), throwAtLayer: maybeIndex(layers) }),
      { maxLength: 2 },
    ).map((fs) => fs.map((f, i): FilterSpec => ({ name: `f${i}`, replace: f.replace, throwAtLayer: f.throwAtLayer }))),
    output: fc.oneof(
      fc.record({ kind: fc.constant('dir' as const), dest: fc.constant(OUT_DIR), present: subset(layers), failOnLayer: maybeIndex(layers) }),
      fc.record({ kind: fc.constant('tar' as const), target: fc.constant(OUT_TAR), present: subset(layers), failOnLayer: maybeIndex(layers) }),
      fc.record({ kind: fc.constant('peek' as const), stopAfter: fc.nat({ max: layers + 1 }), via: fc.constantFrom('break' as const, 'return' as const) }),
    ),
    faults: fc.oneof({ arbitrary: fc.constant([]), weight: 3 }, { arbitrary: fc.array(faultArb, { minLength: 1, maxLength: 2 }), weight: 2 }),
    abort: fc.oneof({ arbitrary: fc.constant(false), weight: 3 }, { arbitrary: fc.constant(true), weight: 1 }),
  }),
);

/** A spec with nothing that can make the run fail. */
export function isFaultFree(spec: PipelineSpec): boolean {
  return (
    spec.inputThrowsAt === undefined &&
    spec.filters.every((f) => f.throwAtLayer === undefined) &&
    (spec.output.kind === 'peek' || spec.output.failOnLayer === undefined) &&
    spec.faults.length === 0 &&
    !spec.abort
  );
}

function dumpFs(fs: MemoryFs): string {
  return `fs log:\n${fs.log.map((e) => `  #${e.seq} ${e.op}(${e.args.join(', ')}) ${e.outcome}${e.injected ? ' [injected]' : ''}`).join('\n')}`;
}

function dumpScheduler(s: fc.Scheduler): string {
  return `scheduler (${s.report().length} tasks):\n${s
    .report()
    .map((t) => `  ${t.status} ${t.label}`)
    .join('\n')}`;
}

/** Files in the output area (everything under /out except the run dir's parent, which is empty after close). */
function outputArea(fs: MemoryFs): string[] {
  return fs.filesUnder('/out');
}

export interface RunResult {
  readonly outcome: { ok: true; value: OutputSummary } | { ok: false; error: unknown };
  readonly released: number;
}

/**
 * One run of `runPipeline` under the scheduler, then `scope.close()`, then every check.
 * Returns the result so callers can collect statistics.
 */
export interface RunMode {
  /**
   * Call `scope.close()` at a scheduler-chosen moment while the run is in flight (what a
   * SIGINT handler does). Stages then meet refused effects, so the run may fail with an
   * OwnershipError and close may release files; the invariant must hold all the same.
   */
  readonly closeDuringRun?: boolean;
  /** BROKEN on purpose (test-of-tests): the input keeps the file of a layer it fails in. */
  readonly leakyInput?: boolean;
  /** BROKEN on purpose (test-of-tests): a failing dir output leaves its partial output. */
  readonly outputSkipsRollback?: boolean;
}

export async function checkPipelineRun(spec: PipelineSpec, s: fc.Scheduler, factory: ScopeFactory, mode: RunMode = {}): Promise<RunResult> {
  const fs = new MemoryFs({ dirs: ['/tmp', '/out'], scheduler: s });
  const world: World = { fs, problems: [] };
  const ctx = () => `spec: ${JSON.stringify(spec)}\n${dumpFs(fs)}\n${dumpScheduler(s)}`;
  const parent = spec.sameDevice ? '/out/.work' : '/tmp';
  const scope = await withDeadline(s.waitFor(factory(fs, parent)), 5000, 'scope open', ctx);
  for (const f of spec.faults) fs.failNext(f.op, f.code, { skip: f.skip });

  const outer = new AbortController();
  if (spec.abort) {
    void s.schedule(Promise.resolve(), 'abort').then(() => outer.abort(new InjectedError('aborted by the user')));
  }
  let closing: Promise<CloseReport> | undefined;
  let runSettled = false;
  let closedEarly = false;
  if (mode.closeDuringRun) {
    closing = s.schedule(Promise.resolve(), 'close during run').then(() => {
      closedEarly = !runSettled;
      return scope.close();
    });
  }
  const run = runPipeline({
    input: syntheticInput(world, { layers: spec.layers, throwAtLayer: spec.inputThrowsAt, chunks: spec.chunks, leakOnThrow: mode.leakyInput ?? false }),
    filters: spec.filters.map((f) => syntheticFilter(world, f)),
    output: makeOutput(world, spec.output.kind === 'dir' && mode.outputSkipsRollback ? { ...spec.output, skipRollback: true } : spec.output),
    effects: scope,
    signal: outer.signal,
    parallelism: spec.parallelism,
    bufferDepth: spec.bufferDepth,
  });
  const outcome = await settleScheduled(s, run, () => (runSettled = true), ctx);

  const violations: string[] = [];
  // Once close has taken the files, stages meet refused releases: those are expected then.
  if (!closedEarly) violations.push(...world.problems.map((p) => `stage problem: ${p}`));
  // Before close: the combinators and stages must already have released what they released.
  violations.push(...releasedFilesAreGone(scope, fs));
  const unclaimed = scope.ledger.all().filter((e) => e.state._tag === 'Live' || e.state._tag === 'Moving');
  if (unclaimed.length > 0 && !closedEarly) {
    violations.push(`still owned after the run returned: ${unclaimed.map((e) => `#${e.id} ${e.purpose} ${JSON.stringify(e.state)}`).join(', ')}`);
  }

  const report = await withDeadline(s.waitFor(closing ?? scope.close()), 5000, 'scope.close()', ctx);
  await withDeadline(s.waitIdle(), 5000, 'idle after close', ctx);
  violations.push(...invariantAfterClose(scope, fs, report));
  // Well-behaved stages: the combinators released everything, the safety net had nothing to do.
  if (report.released !== 0 && !closedEarly) violations.push(`scope.close() had to release ${report.released} file(s)`);

  const area = outputArea(fs);
  if (outcome.ok) {
    const expected = expectedOutputFiles(spec.layers, spec.filters, spec.output);
    const got = new Map(area.map((p) => [p, fs.contentOf(p) ?? '']));
    if (JSON.stringify([...got].sort()) !== JSON.stringify([...expected].sort())) {
      violations.push(`output after success: got ${JSON.stringify([...got])}, expected ${JSON.stringify([...expected])}`);
    }
    if (spec.output.kind !== 'peek') {
      const summary = outcome.value;
      const skipped = expectedSkipped(spec.layers, spec.filters, spec.output);
      if (summary.layers !== spec.layers - skipped || summary.layersSkipped !== skipped) violations.push(`summary ${JSON.stringify(summary)} disagrees (skipped ${skipped})`);
      // Nothing that fails a run can have fired (an EXDEV on rename is recovered by copying).
      const fired = fs.firedFaults().filter((e) => !(e.op === 'rename' && e.outcome === 'EXDEV'));
      if (fired.length > 0 && !outer.signal.aborted) violations.push(`the run succeeded although injected faults fired: ${fired.map((e) => `${e.op}(${e.args[0]}) ${e.outcome}`).join(', ')}`);
    }
  } else {
    const e = outcome.error;
    const acceptable =
      isInjected(e) ||
      (spec.abort && OccystrapError.is(e) && e.code === 'EABORT') ||
      // Closed under the run's feet: refused effects, or a stage touching a file close removed.
      (closedEarly && (e instanceof OwnershipError || (e as { code?: string }).code === 'ENOENT'));
    if (!acceptable) violations.push(`the run failed with an error nobody injected: ${(e as Error)?.stack ?? String(e)}`);
    if (isFaultFree(spec) && !closedEarly) violations.push(`a fault-free run failed: ${String(e)}`);
    if (area.length > 0) violations.push(`partial output left after failure: ${area.join(', ')}`);
    if (fs.isDir(OUT_DIR)) violations.push(`partial output dir ${OUT_DIR} left after failure`);
  }
  if (fs.filesUnder('/tmp').length > 0) violations.push(`files left under /tmp: ${fs.filesUnder('/tmp').join(', ')}`);
  assertNoViolations(violations, ctx);
  return { outcome, released: report.released };
}

export function pipelineOwnershipProperty(factory: ScopeFactory, stats?: { ok: number; failed: number }, mode: RunMode = {}) {
  return fc.asyncProperty(pipelineSpecArb, fc.scheduler(), async (spec, s) => {
    const r = await checkPipelineRun(spec, s, factory, mode);
    if (stats) r.outcome.ok ? stats.ok++ : stats.failed++;
  });
}

/** `scope.close()` racing the run, as a signal handler would call it. */
export function closeDuringRunProperty(factory: ScopeFactory, stats?: { releasedByScope: number[] }) {
  return fc.asyncProperty(pipelineSpecArb, fc.scheduler(), async (spec, s) => {
    const r = await checkPipelineRun(spec, s, factory, { closeDuringRun: true });
    stats?.releasedByScope.push(r.released);
  });
}

// ----- the abandoned consumer ---------------------------------------------------------------

export const abandonedSpecArb = fc.record({
  pipeline: pipelineSpecArb.filter((p) => p.output.kind !== 'peek'),
  /** Elements pulled before the consumer drops the iterator (without return()). */
  pulls: fc.nat({ max: 6 }),
  /** Let every stage settle before closing (else close races with the stages still running). */
  settleFirst: fc.boolean(),
});

/**
 * runPipeline into an output that pulls a few times and then drops the iterator without
 * `return()`: no `finally` runs, so the stages never release what they hold. Only the
 * scope can; afterwards the invariant must hold all the same.
 */
export function abandonedConsumerProperty(factory: ScopeFactory, stats?: { releasedByScope: number[] }) {
  return fc.asyncProperty(abandonedSpecArb, fc.scheduler(), async ({ pipeline: spec, pulls, settleFirst }, s) => {
    const fs = new MemoryFs({ dirs: ['/tmp', '/out'], scheduler: s });
    const world: World = { fs, problems: [] };
    const ctx = () => `spec: ${JSON.stringify({ spec, pulls, settleFirst })}\n${dumpFs(fs)}\n${dumpScheduler(s)}`;
    const scope: ScopeUnderTest = await withDeadline(s.waitFor(factory(fs, spec.sameDevice ? '/out/.work' : '/tmp')), 5000, 'open', ctx);
    for (const f of spec.faults) fs.failNext(f.op, f.code, { skip: f.skip });
    const filters = spec.filters.map((f) => syntheticFilter(world, f));
    const effects = scope;
    const { output, pulled } = abandoningOutput(makeOutput(world, spec.output), pulls, async (e) => {
      for (const file of e._tag === 'Layer' && e.payload._tag === 'Tar' ? [tarOf(e.payload)!.file] : []) {
        await effects.perform({ _tag: 'Release', file, owner: Owners.output });
      }
    });
    // The real runPipeline; its output drops the iterator, so the run never settles.
    void runPipeline({
      input: syntheticInput(world, { layers: spec.layers, throwAtLayer: spec.inputThrowsAt, chunks: spec.chunks }),
      filters,
      output,
      effects,
      parallelism: spec.parallelism,
      bufferDepth: spec.bufferDepth,
    });
    const report = await closeAbandoned(s, scope, fs, { pulled, settleFirst, ctx });
    stats?.releasedByScope.push(report.released);
  });
}
