// Help reads at 80 columns, and a mistyped command or a missing argument gets one line
// that says what is wrong and gives the usage of the command meant.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { occystrap } from './cli-helpers.js';
import { TRANSPORTS } from '../../src/shell/transports/index.js';

const HELPS = [['--help'], ['-h'], [], ['process', '--help'], ['info', '--help'], ['search', '--help'], ['check', '-h']];

describe('help', () => {
  for (const argv of HELPS) {
    test(`occystrap ${argv.join(' ') || '(no arguments)'}: every line fits 80 columns, no parser placeholders`, async () => {
      const r = await occystrap(argv);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const lines = r.stdout.split('\n');
      assert.ok(lines.length > 5, r.stdout);
      for (const line of lines) assert.ok([...line].length <= 80, `${[...line].length} columns: ${line}`);
      assert.doesNotMatch(r.stdout, /#0|<SOURCE>|<DESTINATION>/, 'no clipanion placeholders');
      for (const line of lines) assert.doesNotMatch(line, /\s$/, `no trailing blanks: ${JSON.stringify(line)}`);
    });
  }

  test('--help lists every command with its usage and the global options once', async () => {
    const r = await occystrap(['--help']);
    for (const usage of ['occystrap [OPTIONS] process SOURCE DESTINATION [-f FILTER]...', 'occystrap [OPTIONS] info SOURCE', 'occystrap [OPTIONS] search SOURCE PATTERN [--regex] [--script-friendly]', 'occystrap [OPTIONS] check SOURCE [--fast]']) {
      assert.ok(r.stdout.split('\n').some((l) => l.trim() === usage), `${usage} on a line of its own:\n${r.stdout}`);
    }
    for (const option of ['-j, --parallel N', '--temp-dir DIR', '-O, --output-format FORMAT', '--insecure', '--compression ALGORITHM']) {
      assert.equal(r.stdout.split(option).length - 1, 1, `${option} listed once`);
    }
  });

  test('a command help shows its own options, not the global ones, and every URI grammar whole', async () => {
    const r = await occystrap(['process', '--help']);
    assert.match(r.stdout, /^Usage: occystrap \[OPTIONS\] process SOURCE DESTINATION \[-f FILTER\]\.\.\.$/m);
    assert.match(r.stdout, /^ {2}-f, --filter FILTER +A filter/m);
    assert.doesNotMatch(r.stdout, /--parallel N/);
    for (const t of TRANSPORTS) {
      for (const role of [t.source, t.destination]) {
        if (role && 'usage' in role) assert.ok(r.stdout.includes(`- ${role.usage}: `), `${role.usage} whole`);
      }
    }
  });
});

describe('mistakes on the command line', () => {
  test('a typo names the command meant and its usage, in one line', async () => {
    const r = await occystrap(['proces', 'tar://a.tar', 'dir://b']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.deepEqual(r.stderr.trimEnd().split('\n'), ['occystrap: usage error: unknown command "proces"; did you mean "process"? usage: occystrap [OPTIONS] process SOURCE DESTINATION [-f FILTER]...']);
  });

  test('a word that is no command lists the commands; never every command\'s usage', async () => {
    const r = await occystrap(['frobnicate']);
    assert.equal(r.code, 2);
    assert.deepEqual(r.stderr.trimEnd().split('\n'), ['occystrap: usage error: unknown command "frobnicate"; the commands are process, info, search, check; see "occystrap --help"']);
  });

  for (const [argv, what, usage] of [
    [['process', 'tar://a.tar'], 'process: missing DESTINATION', 'process SOURCE DESTINATION [-f FILTER]...'],
    [['-j', '2', 'process', '-f', 'normalize-timestamps'], 'process: missing SOURCE and DESTINATION', 'process SOURCE DESTINATION [-f FILTER]...'],
    [['search', '--regex', 'tar://a.tar'], 'search: missing PATTERN', 'search SOURCE PATTERN [--regex] [--script-friendly]'],
    [['info'], 'info: missing SOURCE', 'info SOURCE'],
    [['check', '--quick', 'tar://a.tar'], 'check: unknown option "--quick"', 'check SOURCE [--fast]'],
    [['info', 'tar://a.tar', 'tar://b.tar'], 'info: unexpected argument "tar://b.tar"; info takes SOURCE', 'info SOURCE'],
  ] as const) {
    test(`${argv.join(' ')}: "${what}" and that command's usage only`, async () => {
      const r = await occystrap(argv);
      assert.equal(r.code, 2, r.stderr);
      assert.deepEqual(r.stderr.trimEnd().split('\n'), [`occystrap: usage error: ${what}; usage: occystrap [OPTIONS] ${usage}`]);
    });
  }
});
