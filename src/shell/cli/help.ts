/**
 * Help that reads at 80 columns: `occystrap --help` lists each command's one-line usage
 * and the global options once; `occystrap COMMAND --help` shows that command's usage, its
 * own options, its details (the URI grammars as a list) and examples. Text wraps between
 * words, never inside an option, a URI grammar or a placeholder. Also the one-line usage
 * that usage errors end with, and the "did you mean" suggestion for an unknown command.
 *
 * @module
 */
import type { Cli } from 'clipanion';
import { isGlobalOptionName } from './options.js';

/** Help is wrapped to this width whatever the terminal (80 is the width every terminal has). */
export const HELP_WIDTH = 80;

/** The commands as people type them: positional arguments and the command's own options. */
export const SYNOPSES: Readonly<Record<string, string>> = {
  process: 'process SOURCE DESTINATION [-f FILTER]...',
  info: 'info SOURCE',
  search: 'search SOURCE PATTERN [--regex] [--script-friendly]',
  check: 'check SOURCE [--fast]',
};

/** The positional arguments each command needs, in order (for "missing argument" errors). */
export const POSITIONALS: Readonly<Record<string, readonly string[]>> = {
  process: ['SOURCE', 'DESTINATION'],
  info: ['SOURCE'],
  search: ['SOURCE', 'PATTERN'],
  check: ['SOURCE'],
};

/** What each option's value is, for `-j N` instead of clipanion's `-j #0`. */
const METAVARS: Readonly<Record<string, string>> = {
  '--parallel': 'N',
  '--temp-dir': 'DIR',
  '--output-format': 'FORMAT',
  '--os': 'OS',
  '--architecture': 'ARCH',
  '--variant': 'VARIANT',
  '--username': 'USER',
  '--password': 'PASSWORD',
  '--retries': 'N',
  '--rate-limit': 'N',
  '--compression': 'ALGORITHM',
  '--filter': 'FILTER',
};

export function usageLine(command: string): string {
  return `occystrap [OPTIONS] ${SYNOPSES[command] ?? command}`;
}

/**
 * Wrap one paragraph to `width`, with `indent` before the first line and `hang` before the
 * others. Words are never split: a word longer than the line stands on a line of its own.
 */
export function wrap(text: string, width = HELP_WIDTH, indent = '', hang = indent): string[] {
  const words = text.split(/\s+/).filter((w) => w !== '');
  const lines: string[] = [];
  let line = indent;
  let empty = true;
  for (const word of words) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line);
      line = hang + word;
    } else line = empty ? line + word : `${line} ${word}`;
    empty = false;
  }
  if (!empty) lines.push(line);
  return lines;
}

/** Paragraphs split on blank lines; a paragraph starting with `- ` is a list item with a hanging indent. */
function wrapDetails(details: string): string[] {
  const out: string[] = [];
  for (const paragraph of details.split(/\n\s*\n/)) {
    const text = paragraph.trim();
    if (text === '') continue;
    if (out.length > 0) out.push('');
    if (text.startsWith('- ')) out.push(...wrap(text.slice(2), HELP_WIDTH, '  - ', '    '));
    else out.push(...wrap(text, HELP_WIDTH, '  ', '  '));
  }
  return out;
}

interface OptionDefinition {
  readonly definition: string;
  readonly description?: string;
}

/** `-j,--parallel #0` → `-j, --parallel N`. */
function optionLabel(definition: string): { label: string; names: string[] } {
  const [spellings = '', value] = definition.split(' ');
  const names = spellings.split(',');
  const long = names.find((n) => n.startsWith('--')) ?? names[0] ?? '';
  const metavar = value === undefined ? '' : ` ${METAVARS[long] ?? 'VALUE'}`;
  return { label: `${names.join(', ')}${metavar}`, names };
}

/** An option table: labels in a column, descriptions wrapped beside them (or below, when the label is long). */
function optionTable(options: readonly OptionDefinition[]): string[] {
  const labels = options.map((o) => optionLabel(o.definition).label);
  const column = Math.min(Math.max(...labels.map((l) => l.length)) + 4, 28);
  const out: string[] = [];
  options.forEach((o, i) => {
    const label = `  ${labels[i]}`;
    const description = o.description ?? '';
    if (label.length + 2 <= column) out.push(...wrap(description, HELP_WIDTH, label.padEnd(column), ' '.repeat(column)));
    else out.push(label, ...wrap(description, HELP_WIDTH, ' '.repeat(column)));
  });
  return out;
}

interface CommandUsage {
  readonly description?: string;
  readonly details?: string;
  readonly examples?: readonly (readonly [string, string])[];
}

/** The help texts, by command name, from each command class's clipanion `usage`. */
export type UsageTable = Readonly<Record<string, CommandUsage | undefined>>;

function definitionsOf(cli: Cli): { name: string; options: OptionDefinition[] }[] {
  return cli.definitions().map((d) => ({ name: d.path.replace(/^occystrap /, ''), options: d.options }));
}

function isGlobal(o: OptionDefinition): boolean {
  return optionLabel(o.definition).names.some(isGlobalOptionName);
}

/** A `$ occystrap …` example, broken with ` \` between words when it is wider than the page. */
function exampleLines(command: string): string[] {
  const lines = wrap(command.replace(/^\$0 /, 'occystrap '), HELP_WIDTH - 2, '    $ ', '        ');
  return lines.map((l, i) => (i < lines.length - 1 ? `${l} \\` : l));
}

export function globalHelp(cli: Cli, usages: UsageTable, version: string): string {
  const defs = definitionsOf(cli);
  const lines: string[] = [...wrap(`occystrap ${version}: moves container images from a source, through filters, to a destination`, HELP_WIDTH), '', 'Usage:'];
  for (const { name } of defs) {
    lines.push(...wrap(usageLine(name), HELP_WIDTH, '  ', '      '));
    lines.push(...wrap(usages[name]?.description ?? '', HELP_WIDTH, '      '));
  }
  const globals = defs[0]?.options.filter(isGlobal) ?? [];
  lines.push('', 'Options (before or after the command; every command takes them):', ...optionTable(globals));
  lines.push('', ...wrap('Run "occystrap COMMAND --help" for a command\'s own options, the URIs it accepts and examples. Python occystrap\'s legacy commands (fetch-to-tarfile, search-layers, ...) still run, as deprecated aliases: see docs/cli.md.', HELP_WIDTH));
  return `${lines.join('\n')}\n`;
}

export function commandHelp(cli: Cli, usages: UsageTable, name: string): string {
  const def = definitionsOf(cli).find((d) => d.name === name);
  const usage = usages[name];
  const lines: string[] = [...wrap(usageLine(name), HELP_WIDTH, 'Usage: ', '         ')];
  if (usage?.description) lines.push('', ...wrap(usage.description, HELP_WIDTH));
  const own = def?.options.filter((o) => !isGlobal(o)) ?? [];
  if (own.length > 0) lines.push('', 'Options:', ...optionTable(own));
  lines.push('', ...wrap('Global options (-j, --temp-dir, -O, --insecure, ...): see "occystrap --help".', HELP_WIDTH));
  if (usage?.details) lines.push('', 'Details:', ...wrapDetails(usage.details));
  if (usage?.examples && usage.examples.length > 0) {
    lines.push('', 'Examples:');
    for (const [what, command] of usage.examples) lines.push(...wrap(what, HELP_WIDTH, '  ', '  '), ...exampleLines(command));
  }
  return `${lines.join('\n')}\n`;
}

/** Edit distance, for suggestions. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const here = row[j] as number;
      row[j] = Math.min(here + 1, (row[j - 1] as number) + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = here;
    }
  }
  return row[b.length] as number;
}

/** The closest known command, when it is close enough to be a typo. */
export function suggestCommand(typed: string, known: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const name of known) {
    const d = name.startsWith(typed) && typed.length >= 3 ? 0 : distance(typed, name);
    if (best === undefined || d < best.d) best = { name, d };
  }
  return best !== undefined && best.d <= Math.max(2, Math.floor(best.name.length / 3)) ? best.name : undefined;
}
