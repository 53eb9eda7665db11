/**
 * Run a job under SIGINT/SIGTERM handling: a signal aborts the run; whatever happens,
 * the temp-file scope is closed before the command returns, and an interrupted run
 * exits 130 (SIGINT) or 143 (SIGTERM).
 *
 * @module
 */
import { OccystrapError } from '../../core/errors.js';
import type { Reporter } from '../log.js';
import type { TempScope } from '../scope.js';

export class InterruptedError extends OccystrapError {
  constructor(readonly signalName: 'SIGINT' | 'SIGTERM') {
    super('EABORT', `interrupted by ${signalName}; partial output and temp files removed`);
  }
  get exitCode(): number {
    return this.signalName === 'SIGINT' ? 130 : 143;
  }
}

/** How long a signalled run may take to unwind before the scope is closed under it. */
const UNWIND_MS = 5000;

export async function withSignals<T>(scope: TempScope, reporter: Reporter, job: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let received: 'SIGINT' | 'SIGTERM' | undefined;
  let forced: NodeJS.Timeout | undefined;
  const onSignal = (name: 'SIGINT' | 'SIGTERM') => {
    if (received) {
      // A second signal: stop waiting for the stages.
      void scope.close().finally(() => process.exit(name === 'SIGINT' ? 130 : 143));
      return;
    }
    received = name;
    reporter.clearProgress();
    controller.abort(new Error(`received ${name}`));
    forced = setTimeout(() => {
      void scope.close().finally(() => process.exit(name === 'SIGINT' ? 130 : 143));
    }, UNWIND_MS);
    forced.unref();
  };
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);
  try {
    const result = await job(controller.signal);
    if (received) throw new InterruptedError(received);
    return result;
  } catch (e) {
    if (received) throw new InterruptedError(received);
    throw e;
  } finally {
    const report = await scope.close();
    if (forced) clearTimeout(forced);
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
    if (report.released > 0) reporter.verbose(`removed ${report.released} unclaimed temp file(s)`);
    for (const problem of report.problems) reporter.line(`occystrap: warning: ${problem}`);
  }
}
