/**
 * The Python occystrap's deprecated commands (`fetch-to-tarfile`, `search-layers`, …) and
 * its global options this version does not have yet. A legacy command is rewritten into
 * the `process` / `search` command it stands for, with one deprecation line naming that
 * command; an alias whose URI scheme is planned fails as the URI would.
 *
 * @module
 */
import { usageError } from '../../core/errors.js';

/** Occystrap's global options that are planned here, with what they will do. */
const PLANNED_GLOBAL_OPTIONS: ReadonlyMap<string, string> = new Map([
  ['-J', 'images processed at once in multi-image runs'],
  ['--image-parallel', 'images processed at once in multi-image runs'],
  ['--layer-cache', 'the cross-run layer cache'],
  ['--verify', 'verification after process'],
  ['--no-verify', 'verification after process'],
  ['--verify-full', 'verification after process'],
]);

/**
 * Refuse a planned occystrap option in one line, instead of the parser's list of every
 * command. Only whole arguments are matched (`--layer-cache`, `--layer-cache=F`), and only
 * before a `--`.
 */
export function refusePlannedOptions(argv: readonly string[]): void {
  for (const arg of argv) {
    if (arg === '--') return;
    const name = arg.startsWith('--') && arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : /^-J\d+$/.test(arg) ? '-J' : arg;
    const what = PLANNED_GLOBAL_OPTIONS.get(name);
    if (what !== undefined) throw usageError(`${name} (occystrap's option for ${what}) is not available yet; run without it`);
  }
}

interface LegacyCommand {
  /** The positional arguments, by name, in order. */
  readonly args: readonly string[];
  /** The command's own options: flags, and those that take a value. */
  readonly flags?: readonly string[];
  readonly values?: readonly string[];
  /** The modern argv for the parsed arguments. */
  build(a: Readonly<Record<string, string>>, o: Options): string[];
}

interface Options {
  readonly flags: ReadonlySet<string>;
  readonly values: ReadonlyMap<string, string>;
}

const registry = (a: Readonly<Record<string, string>>) => `registry://${a['REGISTRY']}/${a['IMAGE']}:${a['TAG']}`;
const docker = (a: Readonly<Record<string, string>>, o: Options) => `docker://${a['IMAGE']}:${a['TAG']}${o.values.has('--socket') ? `?socket=${o.values.get('--socket')}` : ''}`;

/** `-f normalize-timestamps[:ts=N]` for the fetch-to-tarfile family's `--normalize-timestamps [--timestamp N]`. */
function normalize(o: Options): string[] {
  if (!o.flags.has('--normalize-timestamps')) return [];
  const ts = o.values.get('--timestamp');
  return ['-f', ts === undefined ? 'normalize-timestamps' : `normalize-timestamps:ts=${ts}`];
}

/** `dir://DIR[?unique_names=true][&expand=true]` for `--use-unique-names` / `--expand`. */
function dirUri(dir: string, o: Options): string {
  const query = [o.flags.has('--use-unique-names') ? 'unique_names=true' : '', o.flags.has('--expand') ? 'expand=true' : ''].filter((q) => q !== '');
  return `dir://${dir}${query.length > 0 ? `?${query.join('&')}` : ''}`;
}

const searchFlags = (o: Options) => [...(o.flags.has('--regex') ? ['--regex'] : []), ...(o.flags.has('--script-friendly') ? ['--script-friendly'] : [])];

const TIMESTAMPS = { flags: ['--normalize-timestamps'], values: ['--timestamp'] } as const;
const EXTRACTED = { flags: ['--use-unique-names', '--expand'] } as const;
const SEARCH = { flags: ['--regex', '--script-friendly'] } as const;

/** occystrap-features.md §1.2: each legacy command and the command it stands for. */
const LEGACY: ReadonlyMap<string, LegacyCommand> = new Map<string, LegacyCommand>([
  ['fetch-to-tarfile', { args: ['REGISTRY', 'IMAGE', 'TAG', 'FILE'], ...TIMESTAMPS, build: (a, o) => ['process', registry(a), `tar://${a['FILE']}`, ...normalize(o)] }],
  ['fetch-to-extracted', { args: ['REGISTRY', 'IMAGE', 'TAG', 'DIR'], ...EXTRACTED, build: (a, o) => ['process', registry(a), dirUri(a['DIR'] as string, o)] }],
  ['fetch-to-oci', { args: ['REGISTRY', 'IMAGE', 'TAG', 'DIR'], build: (a) => ['process', registry(a), `oci://${a['DIR']}`] }],
  ['fetch-to-mounts', { args: ['REGISTRY', 'IMAGE', 'TAG', 'DIR'], build: (a) => ['process', registry(a), `mounts://${a['DIR']}`] }],
  ['tarfile-to-extracted', { args: ['FILE', 'DIR'], ...EXTRACTED, build: (a, o) => ['process', `tar://${a['FILE']}`, dirUri(a['DIR'] as string, o)] }],
  ['docker-to-tarfile', { args: ['IMAGE', 'TAG', 'FILE'], flags: TIMESTAMPS.flags, values: ['--socket', ...TIMESTAMPS.values], build: (a, o) => ['process', docker(a, o), `tar://${a['FILE']}`, ...normalize(o)] }],
  ['docker-to-extracted', { args: ['IMAGE', 'TAG', 'DIR'], ...EXTRACTED, values: ['--socket'], build: (a, o) => ['process', docker(a, o), dirUri(a['DIR'] as string, o)] }],
  ['docker-to-oci', { args: ['IMAGE', 'TAG', 'DIR'], values: ['--socket'], build: (a, o) => ['process', docker(a, o), `oci://${a['DIR']}`] }],
  ['search-layers', { args: ['REGISTRY', 'IMAGE', 'TAG', 'PATTERN'], ...SEARCH, build: (a, o) => ['search', ...searchFlags(o), registry(a), a['PATTERN'] as string] }],
  ['search-layers-tarfile', { args: ['FILE', 'PATTERN'], ...SEARCH, build: (a, o) => ['search', ...searchFlags(o), `tar://${a['FILE']}`, a['PATTERN'] as string] }],
  ['search-layers-docker', { args: ['IMAGE', 'TAG', 'PATTERN'], ...SEARCH, values: ['--socket'], build: (a, o) => ['search', ...searchFlags(o), docker(a, o), a['PATTERN'] as string] }],
  [
    'recreate-image',
    {
      args: ['DIR', 'IMAGE', 'TAG', 'FILE'],
      ...TIMESTAMPS,
      build: (a, o) => ['process', `dir://${a['DIR']}?image=${a['IMAGE']}&tag=${a['TAG']}`, `tar://${a['FILE']}?name=${a['IMAGE']}:${a['TAG']}`, ...normalize(o)],
    },
  ],
]);

export const LEGACY_COMMANDS: readonly string[] = [...LEGACY.keys()];

/** Quote an argument for the deprecation line only when a shell would need it. */
function shellWord(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Rewrite a legacy command (`argv` as hoisting left it: the command first, then global
 * options and the command's arguments in any order) into the modern one. Returns
 * undefined when `argv` is not a legacy command. Global options pass through untouched;
 * `isGlobal` says how many arguments one takes at a position (0 = not a global option).
 */
export function rewriteLegacy(
  argv: readonly string[],
  globalArity: (arg: string) => number,
): { readonly argv: string[]; readonly deprecation: string } | undefined {
  const name = argv[0];
  const command = name === undefined ? undefined : LEGACY.get(name);
  if (command === undefined || name === undefined) return undefined;
  const globals: string[] = [];
  const positional: string[] = [];
  const flags = new Set<string>();
  const values = new Map<string, string>();
  const usage = `${name} ${command.args.join(' ')}${[...(command.flags ?? []), ...(command.values ?? []).map((v) => `${v} VALUE`)].map((o) => ` [${o}]`).join('')}`;
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const key = eq > 0 ? arg.slice(0, eq) : arg;
    if (command.flags?.includes(arg)) flags.add(arg);
    else if (command.values?.includes(key)) {
      if (eq > 0) values.set(key, arg.slice(eq + 1));
      else {
        const v = argv[i + 1];
        if (v === undefined) throw usageError(`${name}: ${arg} needs a value; usage: occystrap ${usage}`);
        values.set(key, v);
        i++;
      }
    } else if (globalArity(arg) > 0) {
      const n = globalArity(arg);
      globals.push(...argv.slice(i, i + n));
      i += n - 1;
    } else if (arg.startsWith('-') && arg !== '-') throw usageError(`${name}: unknown option ${arg}; usage: occystrap ${usage}`);
    else positional.push(arg);
  }
  if (positional.length !== command.args.length) {
    throw usageError(`${name} takes ${command.args.length} arguments (${command.args.join(' ')}), got ${positional.length}; usage: occystrap ${usage}`);
  }
  const named = Object.fromEntries(command.args.map((a, i) => [a, positional[i] as string]));
  const modern = command.build(named, { flags, values });
  const [verb, ...rest] = modern;
  return {
    argv: [verb as string, ...globals, ...rest],
    deprecation: `occystrap: warning: "${name}" is deprecated; it runs: occystrap ${modern.map(shellWord).join(' ')}`,
  };
}
