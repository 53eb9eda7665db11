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
import { refusePlannedOptions, rewriteLegacy } from './legacy.js';
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
  try {
    let args = hoistGlobalOptions(argv);
    refusePlannedOptions(args);
    const legacy = rewriteLegacy(args, globalOptionArity);
    if (legacy) {
      io.stderr.write(`${legacy.deprecation}\n`);
      args = legacy.argv;
    }
    command = cli.process(args, context);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    io.stderr.write(`occystrap: usage error: ${oneLine(message.replace(/^Usage Error: /, ''))}; see "occystrap --help"\n`);
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
