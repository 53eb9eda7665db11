/**
 * Errors the core raises, with stable codes the CLI maps to exit statuses.
 *
 * - `EUSAGE`   the command line or a URI is wrong (exit 2)
 * - `EINPUT`   the source is missing or malformed (exit 1, or 2 when found before the run)
 * - `EDIGEST`  content does not match its digest (exit 1)
 * - `EOUTPUT`  the destination could not be written (exit 1)
 * - `EABORT`   the run was cancelled (signal exit codes)
 *
 * @module
 */

export type ErrorCode = 'EUSAGE' | 'EINPUT' | 'EDIGEST' | 'EOUTPUT' | 'EABORT' | 'EOWNERSHIP' | 'EINTERNAL';

const brand = Symbol.for('occystrap.error');

export class OccystrapError extends Error {
  readonly [brand] = true;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'OccystrapError';
  }

  static is(e: unknown): e is OccystrapError {
    return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[brand] === true;
  }
}

export const usageError = (message: string) => new OccystrapError('EUSAGE', message);
export const inputError = (message: string, cause?: unknown) => new OccystrapError('EINPUT', message, { cause });
export const digestError = (message: string) => new OccystrapError('EDIGEST', message);
export const outputError = (message: string, cause?: unknown) => new OccystrapError('EOUTPUT', message, { cause });

/** The error a cancelled stage throws; `reason` is the AbortSignal's reason when set. */
export class AbortError extends OccystrapError {
  constructor(readonly reason?: unknown) {
    super('EABORT', reason instanceof Error ? `cancelled: ${reason.message}` : 'cancelled');
    this.name = 'AbortError';
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError(signal.reason);
}
