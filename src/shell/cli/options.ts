/**
 * Global options: accepted before the command (`occystrap -j 8 process …`, as occystrap
 * users type them) and after it, with `OCCYSTRAP_*` environment equivalents. Precedence:
 * command line, then environment, then default.
 *
 * @module
 */
import { statSync } from 'node:fs';
import * as os from 'node:os';
import { Command, Option } from 'clipanion';
import { OccystrapError, usageError } from '../../core/errors.js';
import type { BlobCompression } from '../../core/ownership.js';
import { describeKind, kindOf } from '../fs/store-fs.js';
import type { LogLevel } from '../log.js';
import { wantedGzipEngine } from '../fs/gzip-engine.js';

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
  '--compression',
]);
const FLAG_OPTIONS = new Set(['--verbose', '--debug', '--insecure', '-q', '--quiet']);

/** True for a global option's spelling (`-j`, `--parallel`, `--insecure`, …). */
export function isGlobalOptionName(name: string): boolean {
  return VALUE_OPTIONS.has(name) || FLAG_OPTIONS.has(name);
}

/** How many arguments the global option at `arg` takes up (the option and its value); 0 when it is not one. */
export function globalOptionArity(arg: string): number {
  const name = arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg;
  if (FLAG_OPTIONS.has(arg) || /^-j\d+$/.test(arg)) return 1;
  if (VALUE_OPTIONS.has(name)) return arg.includes('=') ? 1 : 2;
  return 0;
}

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

/** The slowest --rate-limit: one request per 1000 s. */
export const MIN_RATE_LIMIT = 0.001;

/**
 * The temp dir must be a directory, or not exist yet (it is then created): checked before
 * anything is read or written, so a bad one is a usage error.
 */
function checkTempDir({ value, name }: { value: string; name: string }): string {
  if (value === '') throw usageError(`${name} needs a directory path, got ""`);
  try {
    const st = statSync(value);
    if (!st.isDirectory()) throw usageError(`${name} ${value} is ${describeKind(kindOf(st))}, not a directory; give a directory (it is created if missing)`);
  } catch (e) {
    if (OccystrapError.is(e)) throw e;
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT') return value;
    if (code === 'ENOTDIR') throw usageError(`${name} ${value}: a part of the path is a file, not a directory; give a directory`);
    if (code === 'ENAMETOOLONG') throw usageError(`${name} ${value}: the path is too long; give a shorter one`);
    throw usageError(`${name} ${value} cannot be used (${(e as Error).message}); give another directory`);
  }
  return value;
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
  /** How outputs that store blobs compress layers that arrive uncompressed (default gzip). */
  readonly compression: BlobCompression;
  /** Who reads the messages: the CLI's name options (`--insecure`), a library's settings (`insecure: true`). */
  readonly audience: 'cli' | 'api';
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
  quiet = Option.Boolean('-q,--quiet', { description: 'No progress and no summary line; errors and warnings still show (env OCCYSTRAP_QUIET=1)' });
  outputFormat = Option.String('-O,--output-format', { description: 'text or json (env OCCYSTRAP_OUTPUT_FORMAT)' });
  os = Option.String('--os', { description: 'Platform OS picked from a multi-platform index (default linux)' });
  architecture = Option.String('--architecture', { description: 'Platform architecture (default amd64)' });
  variant = Option.String('--variant', { description: "Platform variant, e.g. v8; '' matches only entries without one (default '')" });
  username = Option.String('--username', { description: 'Registry username (env OCCYSTRAP_USERNAME)' });
  password = Option.String('--password', { description: 'Registry password or token (env OCCYSTRAP_PASSWORD)' });
  insecure = Option.Boolean('--insecure', { description: 'Plain HTTP to registries (env OCCYSTRAP_INSECURE=1)' });
  retries = Option.String('--retries', { description: 'Retries for connection errors, 408, 429 and 5xx (default 3; env OCCYSTRAP_RETRIES)' });
  rateLimit = Option.String('--rate-limit', { description: 'Most HTTP requests per second, all workers together (env OCCYSTRAP_RATE_LIMIT)' });
  compression = Option.String('--compression', { description: 'gzip or zstd: how ocidir:// compresses layers it must compress; passed-through blobs stay as they are (default gzip; env OCCYSTRAP_COMPRESSION)' });

  /** Set by {@link catch}: main() maps it to one line and an exit status. */
  failure: unknown = undefined;

  override async catch(error: unknown): Promise<void> {
    this.failure = error;
  }

  settings(env: NodeJS.ProcessEnv = process.env): GlobalSettings {
    // Each value with the name it was given under, so an error names what to fix.
    const pick = (cli: string | undefined, option: string, envKey: string): { value: string; name: string } | undefined => {
      if (cli !== undefined) return { value: cli, name: option };
      const fromEnv = env[envKey];
      return fromEnv !== undefined ? { value: fromEnv, name: envKey } : undefined;
    };
    const parallel = pick(this.parallel, '--parallel', 'OCCYSTRAP_PARALLEL') ?? { value: '4', name: '--parallel' };
    if (!/^\d+$/.test(parallel.value) || Number(parallel.value) < 1 || Number(parallel.value) > 256) {
      throw usageError(`${parallel.name} takes a whole number from 1 to 256, got ${JSON.stringify(parallel.value)}`);
    }
    const formatPick = pick(this.outputFormat, '--output-format', 'OCCYSTRAP_OUTPUT_FORMAT') ?? { value: 'text', name: '--output-format' };
    const format = formatPick.value.toLowerCase();
    if (format !== 'text' && format !== 'json') throw usageError(`${formatPick.name} takes text or json, got ${JSON.stringify(formatPick.value)}`);
    const debug = this.debug ?? envFlag(env, 'OCCYSTRAP_DEBUG');
    const verbose = this.verbose ?? envFlag(env, 'OCCYSTRAP_VERBOSE');
    const quiet = this.quiet ?? envFlag(env, 'OCCYSTRAP_QUIET');
    const retries = pick(this.retries, '--retries', 'OCCYSTRAP_RETRIES') ?? { value: '3', name: '--retries' };
    if (!/^\d+$/.test(retries.value) || Number(retries.value) > 100) throw usageError(`${retries.name} takes a whole number from 0 to 100, got ${JSON.stringify(retries.value)}`);
    const rate = pick(this.rateLimit, '--rate-limit', 'OCCYSTRAP_RATE_LIMIT');
    // Below MIN_RATE_LIMIT the wait between requests would overflow a timer (about 24.8 days).
    if (rate !== undefined && !(Number(rate.value) >= MIN_RATE_LIMIT && Number.isFinite(Number(rate.value)))) {
      throw usageError(`${rate.name} takes a number of requests per second from ${MIN_RATE_LIMIT} (one per ${1 / MIN_RATE_LIMIT} s), got ${JSON.stringify(rate.value)}`);
    }
    const rawRate = rate?.value;
    const rawParallel = parallel.value;
    const rawRetries = retries.value;
    const compressionPick = pick(this.compression, '--compression', 'OCCYSTRAP_COMPRESSION') ?? { value: 'gzip', name: '--compression' };
    const compression = compressionPick.value.toLowerCase();
    if (compression !== 'gzip' && compression !== 'zstd') throw usageError(`${compressionPick.name} takes gzip or zstd, got ${JSON.stringify(compressionPick.value)}`);
    wantedGzipEngine(env);
    const tempDir = checkTempDir(pick(this.tempDir, '--temp-dir', 'OCCYSTRAP_TEMP_DIR') ?? { value: os.tmpdir(), name: 'the system temp dir' });
    return {
      platform: { os: this.os ?? 'linux', architecture: this.architecture ?? 'amd64', variant: this.variant ?? '' },
      username: this.username,
      password: this.password,
      insecure: this.insecure ?? envFlag(env, 'OCCYSTRAP_INSECURE'),
      retries: Number(rawRetries),
      rateLimit: rawRate === undefined ? undefined : Number(rawRate),
      parallel: Number(rawParallel),
      tempDir,
      logLevel: debug ? 'debug' : verbose ? 'verbose' : quiet ? 'quiet' : 'normal',
      outputFormat: format,
      compression,
      audience: 'cli',
    };
  }
}
