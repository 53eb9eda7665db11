/**
 * Run a job under stop handling: SIGINT, SIGTERM, or a closed stdout/stderr pipe (EPIPE,
 * treated as SIGPIPE) aborts the run; whatever happens, the temp-file scope is closed
 * before the command returns, and a stopped run exits 130 (SIGINT), 143 (SIGTERM) or
 * 141 (SIGPIPE). An error nobody awaited (a stray stream 'error' event, an unhandled
 * rejection) during the run fails it cleanly instead of crashing the process.
 *
 * @module
 */
import { isExplained, OccystrapError } from '../../core/errors.js';
import type { Reporter } from '../log.js';
import type { TempScope } from '../scope.js';
import { rollBackPartialOutputs } from '../partial-outputs.js';

/** What stops a run from outside: a signal, or a reader that closed our pipe. */
export type StopCause = 'SIGINT' | 'SIGTERM' | 'SIGPIPE';

const EXIT_STATUS: Record<StopCause, number> = { SIGINT: 130, SIGTERM: 143, SIGPIPE: 141 };

function stopMessage(cause: StopCause): string {
  return cause === 'SIGPIPE'
    ? 'stopped: the output pipe was closed (EPIPE); partial output and temp files removed'
    : `interrupted by ${cause}; partial output and temp files removed`;
}

export class InterruptedError extends OccystrapError {
  constructor(readonly signalName: StopCause) {
    super('EABORT', stopMessage(signalName));
  }
  get exitCode(): number {
    return EXIT_STATUS[this.signalName];
  }
}

/** How long a stopped run may take to unwind before the scope is closed under it. */
const UNWIND_MS = 5000;

interface ActiveRun {
  stop(cause: StopCause): void;
  crash(error: unknown): void;
}

/** The runs under way (innermost last); process-level events go to the innermost. */
const active: ActiveRun[] = [];
let pipeClosed = false;

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const onStray = (error: unknown) => {
  const run = active.at(-1);
  if (run) return run.crash(error);
  // Outside a run nothing is left to clean up: one line, exit 1.
  process.stderr.write(`occystrap: error: unexpected failure: ${errorMessage(error).replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
};
let strayGuardInstalled = 0;

const watched = new WeakSet<NodeJS.EventEmitter>();

/**
 * Turn an EPIPE on stdout or stderr into a stop (SIGPIPE: exit 141) instead of an
 * unhandled 'error' event. Other errors on these streams fail the run like a stray error.
 */
export function watchOutputStream(stream: NodeJS.WritableStream): void {
  const emitter = stream as unknown as NodeJS.EventEmitter;
  if (typeof emitter.on !== 'function' || watched.has(emitter)) return;
  watched.add(emitter);
  emitter.on('error', (e: NodeJS.ErrnoException) => {
    if (e?.code !== 'EPIPE') return onStray(e);
    pipeClosed = true;
    const run = active.at(-1);
    if (run) run.stop('SIGPIPE');
    // After the command returned (a report cut off by `| head`): the conventional status.
    else if (stream === process.stdout || stream === process.stderr) process.exitCode = EXIT_STATUS.SIGPIPE;
  });
}

/** True once a watched stream reported EPIPE. */
export function outputPipeClosed(): boolean {
  return pipeClosed;
}

/**
 * Install the handlers, open the scope with `open`, run `job`, and close the scope on
 * every path. Handlers come first so a stop during start-up is handled too. A second
 * stop (or a run that does not unwind within UNWIND_MS) stops waiting: partial outputs
 * still registered are rolled back, the scope is closed, and the process exits.
 */
export async function withSignals<T>(
  open: () => Promise<TempScope>,
  reporter: Reporter,
  job: (signal: AbortSignal, scope: TempScope) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  let received: StopCause | undefined;
  let crashed: { error: unknown } | undefined;
  let forced: NodeJS.Timeout | undefined;
  let scope: TempScope | undefined;
  let exiting = false;
  const exitNow = (status: number, line: string) => {
    if (exiting) return;
    exiting = true;
    void (async () => {
      await rollBackPartialOutputs();
      await scope?.close();
      reporter.line(line);
      process.exit(status);
    })();
  };
  const exitStopped = (cause: StopCause) => exitNow(EXIT_STATUS[cause], `occystrap: ${stopMessage(cause)}`);
  const exitCrashed = (error: unknown) => exitNow(1, `occystrap: error: unexpected failure: ${errorMessage(error).replace(/\s*\n\s*/g, ' ')}`);
  const startUnwindTimer = (onTimeout: () => void) => {
    forced = setTimeout(onTimeout, UNWIND_MS);
    forced.unref();
  };
  const run: ActiveRun = {
    stop(cause) {
      if (received) return exitStopped(received);
      if (crashed) return exitCrashed(crashed.error);
      received = cause;
      reporter.clearProgress();
      controller.abort(new Error(cause === 'SIGPIPE' ? 'the output pipe was closed' : `received ${cause}`));
      startUnwindTimer(() => exitStopped(cause));
    },
    crash(error) {
      if (received || crashed) return; // already stopping; the first cause decides
      crashed = { error };
      controller.abort(error instanceof Error ? error : new Error(String(error)));
      startUnwindTimer(() => exitCrashed(error));
    },
  };
  const sigint = () => run.stop('SIGINT');
  const sigterm = () => run.stop('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);
  if (strayGuardInstalled++ === 0) {
    process.on('uncaughtException', onStray);
    process.on('unhandledRejection', onStray);
  }
  active.push(run);
  if (pipeClosed) run.stop('SIGPIPE');
  try {
    scope = await open();
    if (received) throw new InterruptedError(received);
    const result = await job(controller.signal, scope);
    if (received) throw new InterruptedError(received);
    if (crashed) throw unexpected(crashed.error);
    return result;
  } catch (e) {
    if (received) throw new InterruptedError(received);
    // The run's own error, unless it only reports the abort the stray error caused.
    if (crashed && (controller.signal.aborted && (!isExplained(e) || e.code === 'EABORT'))) throw unexpected(crashed.error);
    throw e;
  } finally {
    const report = await scope?.close();
    if (forced) clearTimeout(forced);
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
    active.splice(active.indexOf(run), 1);
    if (--strayGuardInstalled === 0) {
      process.off('uncaughtException', onStray);
      process.off('unhandledRejection', onStray);
    }
    if (report && report.released > 0) reporter.verbose(`removed ${report.released} unclaimed temp file(s)`);
    for (const problem of report?.problems ?? []) reporter.line(`occystrap: warning: ${problem}`);
  }
}

function unexpected(error: unknown): OccystrapError {
  return new OccystrapError('EINTERNAL', `unexpected failure: ${errorMessage(error)}`, { cause: error });
}
