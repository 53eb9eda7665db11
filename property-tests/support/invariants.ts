/**
 * The ownership invariant, checked against a ledger and a memory fs's operation log.
 * Each check returns a list of violations (empty = holds), so a property can report all
 * of them at once.
 *
 * @module
 */
import type { LedgerEntry } from '../../src/core/ownership.js';
import type { CloseReport } from '../../src/shell/scope.js';
import type { FsLogEntry, MemoryFs } from './memory-fs.js';
import type { ScopeUnderTest } from './scopes.js';

function describe(e: LedgerEntry): string {
  return `#${e.id} ${e.purpose} (${e.path}) ${JSON.stringify(e.state)}`;
}

/**
 * The scope removes its staging copy when a cross-device copy fails (it may be partial).
 * When the copy failed before creating anything, that unlink finds nothing; if an earlier
 * attempt had already used and removed the same staging path, the memory fs sees a second
 * unlink of it. That is a best-effort "remove if present", not a double release.
 */
function isCleanupOfFailedCopy(fs: MemoryFs, u: FsLogEntry): boolean {
  const p = u.args[0];
  const previous = fs.log.filter((e) => e.seq < u.seq && e.args.includes(p as string)).at(-1);
  return previous !== undefined && previous.op === 'copyFile' && previous.args[1] === p && previous.outcome !== 'ok';
}

/** Every file the ledger says was released is gone from the fs (checked before close too). */
export function releasedFilesAreGone(scope: ScopeUnderTest, fs: MemoryFs): string[] {
  const out: string[] = [];
  for (const e of scope.ledger.all()) {
    if (e.state._tag === 'Released' && fs.exists(e.path)) out.push(`released but still on disk: ${describe(e)}`);
  }
  return out;
}

/**
 * After `close()`:
 * - every ledger entry is final (Moved or Released);
 * - a Released file was unlinked exactly once and never renamed; a Moved file left its
 *   temp path exactly once (one rename away, or one copy + one unlink); neither is on disk;
 * - no path was unlinked after it had already been unlinked or renamed away;
 * - the run dir and everything under it are gone;
 * - close reported no problems, and `released` counts exactly the files it released.
 */
export function invariantAfterClose(scope: ScopeUnderTest, fs: MemoryFs, report: CloseReport): string[] {
  const out: string[] = [];
  const entries = scope.ledger.all();
  for (const e of entries) {
    const s = e.state;
    if (s._tag !== 'Moved' && s._tag !== 'Released') {
      out.push(`not final after close: ${describe(e)}`);
      continue;
    }
    const unlinks = fs.opsOn('unlink', e.path, { outcome: 'ok' }).length;
    const renames = fs.opsOn('rename', e.path, { outcome: 'ok' }).length;
    if (s._tag === 'Released') {
      if (unlinks !== 1 || renames !== 0) out.push(`released file left its path ${unlinks} time(s) by unlink and ${renames} by rename: ${describe(e)}`);
    } else if (unlinks + renames !== 1) {
      out.push(`moved file left its path ${unlinks} time(s) by unlink and ${renames} by rename: ${describe(e)}`);
    }
    if (fs.exists(e.path)) out.push(`still on disk after close: ${describe(e)}`);
  }
  for (const u of fs.staleUnlinks.filter((u) => !isCleanupOfFailedCopy(fs, u))) out.push(`path unlinked again after it was already unlinked or moved: ${u.args[0]} (op #${u.seq}, ${u.outcome})`);
  if (fs.exists(scope.runDir)) out.push(`run dir ${scope.runDir} still exists`);
  const under = [...fs.filesUnder(scope.runDir), ...fs.dirsUnder(scope.runDir)];
  if (under.length > 0) out.push(`left under the run dir: ${under.join(', ')}`);
  if (report.problems.length > 0) out.push(`close reported problems: ${report.problems.join('; ')}`);
  const byScope = entries.filter((e) => e.state._tag === 'Released' && e.state.by === 'scope').length;
  if (report.released !== byScope) out.push(`close says it released ${report.released}, the ledger says ${byScope}`);
  return out;
}

/** Throws an AssertionError-like error listing the violations, with context. */
export function assertNoViolations(violations: readonly string[], context: () => string): void {
  if (violations.length === 0) return;
  throw new Error(`ownership invariant violated:\n  - ${violations.join('\n  - ')}\n${context()}`);
}

/** Reject `p` if it has not settled after `ms` (a deadlock must fail the property, not hang it). */
export async function withDeadline<T>(p: Promise<T>, ms: number, what: string, context: () => string = () => ''): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`deadlock: ${what} did not settle within ${ms} ms\n${context()}`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a run under the scheduler ended with. */
export type RunOutcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/**
 * Let the scheduler drive `run` to its end (5 s at most: a deadlock fails the property),
 * calling `settled` as soon as it has, then wait until the scheduler is idle.
 */
export async function settleScheduled<T>(
  s: { waitFor<U>(p: Promise<U>): Promise<U>; waitIdle(): Promise<void> },
  run: Promise<T>,
  settled: () => void,
  context: () => string,
): Promise<RunOutcome<T>> {
  const outcome = await withDeadline(
    s
      .waitFor(run)
      .then(
        (value): RunOutcome<T> => ({ ok: true, value }),
        (error: unknown): RunOutcome<T> => ({ ok: false, error }),
      )
      .finally(settled),
    5000,
    'runPipeline',
    context,
  );
  await withDeadline(s.waitIdle(), 5000, 'idle after the run', context);
  return outcome;
}
