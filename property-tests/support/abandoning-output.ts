/**
 * An output that abandons the run: it pulls a few elements (handing each to `take`), then
 * drops the iterator without `return()` and never settles. `runPipeline` awaits the
 * output's `consume`, so its `finally` (the chain's `return()`) never runs either: the
 * stages never release what they hold, and only the scope can.
 *
 * @module
 */
import type * as fc from 'fast-check';
import type { ImageElement } from '../../src/core/element.js';
import type { ImageOutput, StageContext } from '../../src/core/pipeline/types.js';
import type { CloseReport } from '../../src/shell/scope.js';
import { assertNoViolations, invariantAfterClose, releasedFilesAreGone, withDeadline } from './invariants.js';
import type { MemoryFs } from './memory-fs.js';
import type { ScopeUnderTest } from './scopes.js';

export interface Abandoning {
  readonly output: ImageOutput;
  /** Settles once the pulls are done (or the stream ended or failed early). */
  readonly pulled: Promise<void>;
}

export function abandoningOutput(inner: ImageOutput, pulls: number, take: (e: ImageElement, ctx: StageContext) => Promise<void>): Abandoning {
  let done!: () => void;
  const pulled = new Promise<void>((resolve) => (done = resolve));
  const output: ImageOutput = {
    description: `abandoning ${inner.description}`,
    order: inner.order,
    wants: inner.wants,
    consume: (elements, ctx) => {
      const it = elements[Symbol.asyncIterator]();
      void (async () => {
        for (let n = 0; n < pulls; n++) {
          const r = await it.next();
          if (r.done) return;
          await take(r.value, ctx);
        }
      })()
        .catch(() => undefined) // faults may end the stream early: irrelevant here
        .finally(done);
      // Dropped: no it.return(), and no settling, so runPipeline's own clean-up never runs.
      return new Promise(() => undefined);
    },
  };
  return { output, pulled };
}

/**
 * The abandoned run's end: wait for the pulls, optionally let every stage settle, close the
 * scope, let the stages still running finish, and check that close left nothing: every
 * released file gone, the invariant after close, no file under /tmp or /out.
 */
export async function closeAbandoned(
  s: fc.Scheduler,
  scope: ScopeUnderTest,
  fs: MemoryFs,
  { pulled, settleFirst, ctx }: { pulled: Promise<void>; settleFirst: boolean; ctx: () => string },
): Promise<CloseReport> {
  await withDeadline(s.waitFor(pulled), 5000, 'pulls', ctx);
  // Dropped: no it.return(). Whatever the stages hold now is only reachable by the scope.
  if (settleFirst) await withDeadline(s.waitIdle(), 5000, 'settle', ctx);
  const report = await withDeadline(s.waitFor(scope.close()), 5000, 'close', ctx);
  // Stages still running see their files taken (OwnershipErrors, ENOENT): let them finish.
  await withDeadline(s.waitIdle(), 5000, 'idle after close', ctx);
  const violations = [...releasedFilesAreGone(scope, fs), ...invariantAfterClose(scope, fs, report)];
  for (const dir of ['/tmp', '/out']) {
    const left = fs.filesUnder(dir);
    if (left.length > 0) violations.push(`files left under ${dir}: ${left.join(', ')}`);
  }
  assertNoViolations(violations, ctx);
  return report;
}
