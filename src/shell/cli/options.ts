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
const VALUE_OPTIONS = new Set([
  '-j',
  '--parallel',
  '--temp-dir',
  '-O',
  '--output-format',
  '--os',
  '--architecture',
  '--variant',
  '--username',
  '--password',
  '--retries',
  '--rate-limit',
]);
const FLAG_OPTIONS = new Set(['--verbose', '--debug', '--insecure']);

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
  readonly platform: { readonly os: string; readonly architecture: string; readonly variant: string };
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly insecure: boolean;
  readonly retries: number;
  /** Requests per second across all workers; undefined = unlimited. */
  readonly rateLimit: number | undefined;
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
  os = Option.String('--os', { description: 'Platform OS picked from a multi-platform index (default linux)' });
  architecture = Option.String('--architecture', { description: 'Platform architecture (default amd64)' });
  variant = Option.String('--variant', { description: "Platform variant, e.g. v8; '' matches only entries without one (default '')" });
  username = Option.String('--username', { description: 'Registry username (env OCCYSTRAP_USERNAME)' });
  password = Option.String('--password', { description: 'Registry password or token (env OCCYSTRAP_PASSWORD)' });
  insecure = Option.Boolean('--insecure', { description: 'Plain HTTP to registries (env OCCYSTRAP_INSECURE=1)' });
  retries = Option.String('--retries', { description: 'Retries for connection errors, 408, 429 and 5xx (default 3; env OCCYSTRAP_RETRIES)' });
  rateLimit = Option.String('--rate-limit', { description: 'Most HTTP requests per second, all workers together (env OCCYSTRAP_RATE_LIMIT)' });

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
    const rawRetries = this.retries ?? env['OCCYSTRAP_RETRIES'] ?? '3';
    if (!/^\d+$/.test(rawRetries) || Number(rawRetries) > 100) throw usageError(`--retries takes a whole number from 0 to 100, got ${JSON.stringify(rawRetries)}`);
    const rawRate = this.rateLimit ?? env['OCCYSTRAP_RATE_LIMIT'];
    if (rawRate !== undefined && !(Number(rawRate) > 0 && Number.isFinite(Number(rawRate)))) {
      throw usageError(`--rate-limit takes a positive number of requests per second, got ${JSON.stringify(rawRate)}`);
    }
    return {
      platform: { os: this.os ?? 'linux', architecture: this.architecture ?? 'amd64', variant: this.variant ?? '' },
      username: this.username,
      password: this.password,
      insecure: this.insecure ?? envFlag(env, 'OCCYSTRAP_INSECURE'),
      retries: Number(rawRetries),
      rateLimit: rawRate === undefined ? undefined : Number(rawRate),
      parallel: Number(rawParallel),
      tempDir: this.tempDir ?? env['OCCYSTRAP_TEMP_DIR'] ?? os.tmpdir(),
      logLevel: debug ? 'debug' : verbose ? 'verbose' : 'normal',
      outputFormat: format,
    };
  }
}
