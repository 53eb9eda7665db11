/**
 * What every command that runs a pipeline shares: a temp-file scope under `--temp-dir`,
 * SIGINT/SIGTERM handling ({@link withSignals}), and with `--debug` a log line per
 * ownership effect.
 *
 * @module
 */
import { OccystrapError } from '../../core/errors.js';
import type { Effects, OwnershipEffect, ReplyOf } from '../../core/ownership.js';
import { describeSystemError, findSystemError } from '../system-errors.js';
import type { Reporter } from '../log.js';
import { TempScope } from '../scope.js';
import type { GlobalSettings } from './options.js';
import { withSignals } from './signals.js';

export interface ScopedRun {
  /** The scope, or a logging wrapper of it with `--debug`. */
  readonly effects: Effects;
  /** Aborted by the first SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
  readonly scope: TempScope;
}

/**
 * Open a scope under the settings' temp dir and run `job` under signal handling. The
 * scope is closed on every path; an interrupted run raises an `InterruptedError`.
 */
export function runInScope<T>(settings: Pick<GlobalSettings, 'tempDir' | 'logLevel'>, reporter: Reporter, job: (run: ScopedRun) => Promise<T>): Promise<T> {
  const openScope = async () => {
    try {
      return await TempScope.open({
        parent: settings.tempDir,
        onCrossDeviceCopy: (from, to) =>
          reporter.verbose(`copied ${from} to ${to}: the temp dir is on another filesystem (use --temp-dir on the destination's filesystem to move instead)`),
      });
    } catch (e) {
      throw runDirError(settings.tempDir, e);
    }
  };
  return withSignals(openScope, reporter, async (signal, scope) => {
    reporter.verbose(`temp files in ${scope.runDir}`);
    const effects: Effects =
      settings.logLevel === 'debug'
        ? {
            perform: <E extends OwnershipEffect>(e: E): Promise<ReplyOf<E>> => {
              reporter.debug(describeEffect(e));
              return scope.perform(e);
            },
          }
        : scope;
    return job({ effects, signal, scope });
  });
}

/** The run directory could not be made: a usage error when the temp dir itself is unusable. */
export function runDirError(tempDir: string, e: unknown): OccystrapError {
  const system = findSystemError(e);
  if (!system) return new OccystrapError('EOUTPUT', `temp dir ${tempDir}: cannot create the run directory: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  const unusable = ['ENOTDIR', 'EEXIST', 'ENAMETOOLONG', 'ELOOP', 'EACCES', 'EPERM', 'EROFS', 'ENOENT'].includes(system.code);
  return new OccystrapError(unusable ? 'EUSAGE' : 'EOUTPUT', `temp dir ${tempDir}: ${describeSystemError(system, 'temp')}`, { cause: e });
}

/** One line per ownership effect, for `--debug`. */
export function describeEffect(e: OwnershipEffect): string {
  switch (e._tag) {
    case 'CreateTemp':
      return `create temp (${e.purpose}) for ${e.owner}`;
    case 'HandOver':
      return `hand over #${e.file.id} ${e.from} -> ${e.to}`;
    case 'MoveIntoPlace':
      return `move #${e.file.id} into ${e.destination} (${e.owner})`;
    case 'Release':
      return `release #${e.file.id} (${e.owner})`;
    case 'Inflate':
      return `inflate #${e.source.id} (${e.compression}) into a new temp file for ${e.owner}`;
    case 'Compress':
      return `compress #${e.source.id} with ${e.compression} into a new temp file for ${e.owner}`;
  }
}
