/**
 * Global options: accepted before the command (`occystrap -j 8 process …`, as occystrap
 * users type them) and after it, with `OCCYSTRAP_*` environment equivalents. Precedence:
 * command line, then environment, then default.
 *
 * @module
 */
import * as os from 'node:os';
import { Command, Option } from 'clipanion';
import { usageError } from '../../core/errors.js';
import type { LogLevel } from '../log.js';

/** Global options that take a value, by every spelling. */
const VALUE_OPTIONS = new Set(['-j', '--parallel', '--temp-dir', '-O', '--output-format']);
const FLAG_OPTIONS = new Set(['--verbose', '--debug']);

/**
 * Move global options written before the command name to after it, so clipanion (which
 * parses options per command) sees them. `--help`/`--version` stay where they are.
 */
export function hoistGlobalOptions(rawArgv: readonly string[]): string[] {
  // clipanion does not read `-j8`: spell it `-j 8` wherever it stands.
  const argv = rawArgv.flatMap((a) => (/^-j\d+$/.test(a) ? ['-j', a.slice(2)] : [a]));
  const leading: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i] as string;
    const name = arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg;
    if (FLAG_OPTIONS.has(arg)) {
      leading.push(arg);
      i++;
    } else if (VALUE_OPTIONS.has(name)) {
      if (arg.includes('=')) {
        leading.push(arg);
        i++;
      } else {
        if (i + 1 >= argv.length) throw usageError(`${arg} needs a value`);
        leading.push(arg, argv[i + 1] as string);
        i += 2;
      }
    } else if (/^-j\d+$/.test(arg)) {
      leading.push('-j', arg.slice(2));
      i++;
    } else break;
  }
  if (leading.length === 0 || i >= argv.length) return [...argv];
  return [argv[i] as string, ...leading, ...argv.slice(i + 1)];
}

export interface GlobalSettings {
  readonly parallel: number;
  readonly tempDir: string;
  readonly logLevel: LogLevel;
  readonly outputFormat: 'text' | 'json';
}

function envFlag(env: NodeJS.ProcessEnv, key: string): boolean {
  const v = env[key]?.toLowerCase();
  return v === '1' || v === 'true' || v === 'yes';
}

export abstract class GlobalCommand extends Command {
  parallel = Option.String('-j,--parallel', { description: 'Parallel layer fetches for inputs that download; the input may run 2×N elements ahead of the output (default 4; env OCCYSTRAP_PARALLEL)' });
  tempDir = Option.String('--temp-dir', { description: 'Where temp files go (default: system temp dir; env OCCYSTRAP_TEMP_DIR)' });
  verbose = Option.Boolean('--verbose', { description: 'Say what each stage does (env OCCYSTRAP_VERBOSE=1)' });
  debug = Option.Boolean('--debug', { description: 'Also log every ownership effect (env OCCYSTRAP_DEBUG=1)' });
  outputFormat = Option.String('-O,--output-format', { description: 'text or json (env OCCYSTRAP_OUTPUT_FORMAT)' });

  /** Set by {@link catch}: main() maps it to one line and an exit status. */
  failure: unknown = undefined;

  override async catch(error: unknown): Promise<void> {
    this.failure = error;
  }

  settings(env: NodeJS.ProcessEnv = process.env): GlobalSettings {
    const rawParallel = this.parallel ?? env['OCCYSTRAP_PARALLEL'] ?? '4';
    if (!/^\d+$/.test(rawParallel) || Number(rawParallel) < 1 || Number(rawParallel) > 256) {
      throw usageError(`--parallel takes a whole number from 1 to 256, got ${JSON.stringify(rawParallel)}`);
    }
    const format = (this.outputFormat ?? env['OCCYSTRAP_OUTPUT_FORMAT'] ?? 'text').toLowerCase();
    if (format !== 'text' && format !== 'json') throw usageError(`--output-format takes text or json, got ${JSON.stringify(format)}`);
    const debug = this.debug ?? envFlag(env, 'OCCYSTRAP_DEBUG');
    const verbose = this.verbose ?? envFlag(env, 'OCCYSTRAP_VERBOSE');
    return {
      parallel: Number(rawParallel),
      tempDir: this.tempDir ?? env['OCCYSTRAP_TEMP_DIR'] ?? os.tmpdir(),
      logLevel: debug ? 'debug' : verbose ? 'verbose' : 'normal',
      outputFormat: format,
    };
  }
}
