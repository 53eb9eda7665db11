/**
 * The CLI entry point: parse, run, map errors to one line and an exit status.
 *
 * Exit statuses: 0 success; 1 the run failed; 2 bad command line, bad URI or missing
 * input; 130 SIGINT; 143 SIGTERM; 141 stdout or stderr closed by its reader (EPIPE).
 *
 * @module
 */
import { Builtins, Cli, UsageError } from 'clipanion';
import { OccystrapError } from '../../core/errors.js';
import { printable } from '../../core/printable.js';
import { GlobalCommand, globalOptionArity, hoistGlobalOptions } from './options.js';
import { LEGACY_COMMANDS, refusePlannedOptions, rewriteLegacy } from './legacy.js';
import { commandHelp, globalHelp, POSITIONALS, suggestCommand, SYNOPSES, type UsageTable, usageLine } from './help.js';
import { ProcessCommand } from './process.js';
import { InfoCommand } from './info.js';
import { SearchCommand } from './search.js';
import { CheckCommand } from './check.js';
import { InterruptedError, outputPipeClosed, watchOutputStream } from './signals.js';

export { VERSION } from '../version.js';
import { VERSION } from '../version.js';

export function buildCli(): Cli {
  const cli = new Cli({ binaryLabel: 'occystrap', binaryName: 'occystrap', binaryVersion: VERSION, enableCapture: false, enableColors: process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined });
  cli.register(ProcessCommand);
  cli.register(InfoCommand);
  cli.register(SearchCommand);
  cli.register(CheckCommand);
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  return cli;
}

function debugWanted(argv: readonly string[]): boolean {
  return Boolean(process.env['OCCYSTRAP_DEBUG']) || argv.includes('--debug');
}

function oneLine(message: string): string {
  return printable(message.replace(/\s*\n\s*/g, ' ').trim());
}

const USAGES: UsageTable = { process: ProcessCommand.usage, info: InfoCommand.usage, search: SearchCommand.usage, check: CheckCommand.usage };
const COMMANDS = Object.keys(SYNOPSES);

/** `''` for the global help, a command name for its help, undefined when no help was asked for. */
function helpWanted(args: readonly string[]): string | undefined {
  const end = args.indexOf('--');
  const before = end < 0 ? args : args.slice(0, end);
  if (before.length === 0) return '';
  const asked = before.includes('--help') || before.includes('-h');
  const first = before[0] as string;
  if (COMMANDS.includes(first)) return asked ? first : undefined;
  return asked && (first === '--help' || first === '-h') ? '' : undefined;
}

/** The command's own options and how many arguments each takes up, for counting positionals. */
const OWN_OPTIONS: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  process: { '-f': 2, '--filter': 2 },
  search: { '--regex': 1, '--script-friendly': 1 },
  check: { '--fast': 1 },
  info: {},
};

function positionalCount(command: string, args: readonly string[]): number {
  let n = 0;
  for (let i = 1; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') return n + args.length - i - 1;
    const own = OWN_OPTIONS[command]?.[arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg];
    const skip = own !== undefined ? (arg.includes('=') ? 1 : own) : globalOptionArity(arg);
    if (skip > 0) i += skip - 1;
    else n++;
  }
  return n;
}

/**
 * A parse error as people read it, in one line: what is wrong, then the usage of the
 * command meant (never clipanion's list of every command).
 */
function parseErrorLines(message: string, args: readonly string[]): string {
  const first = args[0] ?? '';
  // One line: what is wrong, then the usage of the command meant.
  const error = (what: string, usage: string) => `occystrap: usage error: ${oneLine(what)}${what.endsWith('?') ? ' ' : '; '}${usage}\n`;
  if (!COMMANDS.includes(first)) {
    if (first.startsWith('-')) return error(`unknown option ${JSON.stringify(first)}`, 'see "occystrap --help"');
    const guess = suggestCommand(first, [...COMMANDS, ...LEGACY_COMMANDS]);
    if (guess === undefined) return error(`unknown command ${JSON.stringify(first)}; the commands are ${COMMANDS.join(', ')}`, 'see "occystrap --help"');
    const usage = COMMANDS.includes(guess) ? `usage: ${usageLine(guess)}` : `see "occystrap --help"`;
    return error(`unknown command ${JSON.stringify(first)}; did you mean ${JSON.stringify(guess)}?`, usage);
  }
  const usage = `usage: ${usageLine(first)}`;
  const names = POSITIONALS[first] ?? [];
  if (/^Not enough positional arguments/.test(message)) {
    const missing = names.slice(positionalCount(first, args));
    return error(`${first}: missing ${missing.length > 0 ? missing.join(' and ') : 'an argument'}`, usage);
  }
  const option = /^Unsupported option name \("(.*?)"\)/.exec(message);
  if (option) return error(`${first}: unknown option ${JSON.stringify(option[1])}`, usage);
  const extra = /^Extraneous positional argument \("(.*?)"\)/.exec(message);
  if (extra) return error(`${first}: unexpected argument ${JSON.stringify(extra[1])}; ${first} takes ${names.join(' ')}`, usage);
  // Any other parser message: its first sentence, without the usage dump clipanion appends.
  return error(`${first}: ${message.split(/\s*\$ occystrap /)[0]?.trim() ?? message}`, usage);
}

/** Run the CLI; returns the exit status (never throws). */
export async function main(argv: readonly string[], io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }): Promise<number> {
  watchOutputStream(io.stdout);
  watchOutputStream(io.stderr);
  const status = await runCli(argv, io);
  return outputPipeClosed() ? 141 : status;
}

async function runCli(argv: readonly string[], io: { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream; stdin: NodeJS.ReadStream }): Promise<number> {
  const cli = buildCli();
  const context = { ...Cli.defaultContext, stdout: io.stdout, stderr: io.stderr, stdin: io.stdin };
  let command;
  let parsed: readonly string[] = argv;
  try {
    let args = hoistGlobalOptions(argv);
    refusePlannedOptions(args);
    const legacy = rewriteLegacy(args, globalOptionArity);
    if (legacy) {
      io.stderr.write(`${legacy.deprecation}\n`);
      args = legacy.argv;
    }
    const help = helpWanted(args);
    if (help !== undefined) {
      io.stdout.write(help === '' ? globalHelp(cli, USAGES, VERSION) : commandHelp(cli, USAGES, help));
      return 0;
    }
    parsed = args;
    command = cli.process(args, context);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (OccystrapError.is(e)) {
      io.stderr.write(`occystrap: usage error: ${oneLine(message)}; see "occystrap --help"\n`);
      return 2;
    }
    io.stderr.write(parseErrorLines(message.replace(/^Usage Error: /, ''), parsed));
    return 2;
  }
  try {
    const code = await cli.run(command, context);
    if (command instanceof GlobalCommand && command.failure !== undefined) throw command.failure;
    return code;
  } catch (e) {
    if (e instanceof InterruptedError) {
      io.stderr.write(`occystrap: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof UsageError) {
      io.stderr.write(`occystrap: usage error: ${oneLine(e.message)}; see "occystrap ${command.path.join(' ')} --help"\n`);
      return 2;
    }
    if (OccystrapError.is(e)) {
      if (e.code === 'EUSAGE') {
        io.stderr.write(`occystrap: usage error: ${oneLine(e.message)}\n`);
        return 2;
      }
      io.stderr.write(`occystrap: error: ${oneLine(e.message)}\n`);
      // An error that wraps an unexpected one (not occystrap's own): its stack, for --debug.
      const inner = e.cause;
      if (debugWanted(argv) && inner instanceof Error && !OccystrapError.is(inner) && inner.stack) io.stderr.write(`${inner.stack}\n`);
      return 1;
    }
    const err = e as Error;
    io.stderr.write(`occystrap: error: ${oneLine(err?.message ?? String(e))}\n`);
    if (debugWanted(argv) && err?.stack) io.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
