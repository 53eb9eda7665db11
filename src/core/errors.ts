/**
 * Errors the core raises. Every one is an {@link OccystrapError} with a stable `code`;
 * the CLI maps codes to exit statuses.
 *
 * Outcome codes (the message is a finished sentence for the user: what failed, what to do):
 *
 * - `EUSAGE`      the command line or a URI is wrong (exit 2)
 * - `EINPUT`      the source is missing or malformed (exit 1, or 2 when found before the run)
 * - `EDIGEST`     content does not match its digest (exit 1)
 * - `EOUTPUT`     the destination could not be written (exit 1)
 * - `EABORT`      the run was cancelled (signal exit codes)
 *
 * Raw codes (raised for the caller to put in context, e.g. which layer of which source):
 *
 * - `ETAR`        a tar stream cannot be read ({@link TarReadError} in tar/reader.ts)
 * - `ETRANSFORM`  a filter's transform refused an entry (`TransformError`)
 * - `EOWNERSHIP`  a stage broke the temp-file ownership rules (`OwnershipError`)
 * - `EINTERNAL`   a bug: a core function was called with a value it refuses, or a stage
 *                 broke the element protocol ({@link InternalError})
 *
 * @module
 */

export type OutcomeCode = 'EUSAGE' | 'EINPUT' | 'EDIGEST' | 'EOUTPUT' | 'EABORT';
export type RawCode = 'ETAR' | 'ETRANSFORM' | 'EOWNERSHIP' | 'EINTERNAL';
export type ErrorCode = OutcomeCode | RawCode;

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

const OUTCOME_CODES: ReadonlySet<string> = new Set<OutcomeCode>(['EUSAGE', 'EINPUT', 'EDIGEST', 'EOUTPUT', 'EABORT']);

/**
 * An error whose message is ready for the user (an outcome code): callers pass it on as
 * it is. A raw-coded error (`ETAR`, `ETRANSFORM`, `EOWNERSHIP`, `EINTERNAL`) or a foreign
 * one is the caller's to put in context.
 */
export function isExplained(e: unknown): e is OccystrapError & { readonly code: OutcomeCode } {
  return OccystrapError.is(e) && OUTCOME_CODES.has(e.code);
}

/** True when `e` is an {@link OccystrapError} with this code. */
export function hasCode(e: unknown, code: ErrorCode): e is OccystrapError {
  return OccystrapError.is(e) && e.code === code;
}

export const usageError = (message: string) => new OccystrapError('EUSAGE', message);
export const inputError = (message: string, cause?: unknown) => new OccystrapError('EINPUT', message, { cause });
export const digestError = (message: string) => new OccystrapError('EDIGEST', message);
export const outputError = (message: string, cause?: unknown) => new OccystrapError('EOUTPUT', message, { cause });

/** A bug, not a property of the input: a value a core function refuses, or a broken protocol. */
export class InternalError extends OccystrapError {
  constructor(message: string) {
    super('EINTERNAL', message);
    this.name = 'InternalError';
  }
}

/**
 * The error a cancelled stage throws; `reason` is the AbortSignal's reason when set. A
 * reason that is itself an AbortError keeps its message (no "cancelled: cancelled: …").
 */
export class AbortError extends OccystrapError {
  constructor(readonly reason?: unknown) {
    super('EABORT', reason instanceof AbortError ? reason.message : reason instanceof Error ? `cancelled: ${reason.message}` : 'cancelled');
    this.name = 'AbortError';
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError(signal.reason);
}
