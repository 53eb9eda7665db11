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
import { rollBackPartialOutputs } from '../partial-outputs.js';

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

/**
 * Install the handlers, open the scope with `open`, run `job`, and close the scope on
 * every path. Handlers come first so a signal during start-up is handled too. A second
 * signal (or a run that does not unwind within UNWIND_MS) stops waiting: partial outputs
 * still registered are rolled back, the scope is closed, and the process exits.
 */
export async function withSignals<T>(
  open: () => Promise<TempScope>,
  reporter: Reporter,
  job: (signal: AbortSignal, scope: TempScope) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  let received: 'SIGINT' | 'SIGTERM' | undefined;
  let forced: NodeJS.Timeout | undefined;
  let scope: TempScope | undefined;
  const exitNow = (name: 'SIGINT' | 'SIGTERM') => {
    void (async () => {
      await rollBackPartialOutputs();
      await scope?.close();
      reporter.line(`occystrap: interrupted by ${name}; partial output and temp files removed`);
      process.exit(name === 'SIGINT' ? 130 : 143);
    })();
  };
  const onSignal = (name: 'SIGINT' | 'SIGTERM') => {
    if (received) return exitNow(received);
    received = name;
    reporter.clearProgress();
    controller.abort(new Error(`received ${name}`));
    forced = setTimeout(() => exitNow(name), UNWIND_MS);
    forced.unref();
  };
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);
  try {
    scope = await open();
    if (received) throw new InterruptedError(received);
    const result = await job(controller.signal, scope);
    if (received) throw new InterruptedError(received);
    return result;
  } catch (e) {
    if (received) throw new InterruptedError(received);
    throw e;
  } finally {
    const report = await scope?.close();
    if (forced) clearTimeout(forced);
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
    if (report && report.released > 0) reporter.verbose(`removed ${report.released} unclaimed temp file(s)`);
    for (const problem of report?.problems ?? []) reporter.line(`occystrap: warning: ${problem}`);
  }
}
