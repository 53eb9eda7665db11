// Behaviour of hoistGlobalOptions (src/shell/cli/options.ts): global options written
// before the command move to after it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hoistGlobalOptions } from '../../src/shell/cli/options.js';
import { OccystrapError } from '../../src/core/errors.js';

const hoist = (s: string) => hoistGlobalOptions(s === '' ? [] : s.split(' '));

test('-j 8 before the command moves after it', () => {
  assert.deepEqual(hoist('-j 8 process a b'), ['process', '-j', '8', 'a', 'b']);
});

test('--parallel=8 and --parallel 8', () => {
  assert.deepEqual(hoist('--parallel=8 process a b'), ['process', '--parallel=8', 'a', 'b']);
  assert.deepEqual(hoist('--parallel 8 process a b'), ['process', '--parallel', '8', 'a', 'b']);
});

test('-j8 is split into -j 8', () => {
  assert.deepEqual(hoist('-j8 process a b'), ['process', '-j', '8', 'a', 'b']);
  assert.deepEqual(hoist('-j16 process'), ['process', '-j', '16']);
});

test('flags --verbose --debug', () => {
  assert.deepEqual(hoist('--verbose --debug process a b'), ['process', '--verbose', '--debug', 'a', 'b']);
});

test('-O json and --output-format=json, --temp-dir', () => {
  assert.deepEqual(hoist('-O json process a b'), ['process', '-O', 'json', 'a', 'b']);
  assert.deepEqual(hoist('--output-format=json info x'), ['info', '--output-format=json', 'x']);
  assert.deepEqual(hoist('--temp-dir /var/tmp process a b'), ['process', '--temp-dir', '/var/tmp', 'a', 'b']);
});

test('several leading options keep their order', () => {
  assert.deepEqual(hoist('--verbose -j 2 -O json --temp-dir /t process a b'), [
    'process',
    '--verbose',
    '-j',
    '2',
    '-O',
    'json',
    '--temp-dir',
    '/t',
    'a',
    'b',
  ]);
});

test('nothing to hoist returns the argv unchanged (a copy)', () => {
  const argv = ['process', '-j', '8', 'a', 'b'];
  const out = hoistGlobalOptions(argv);
  assert.deepEqual(out, argv);
  assert.notEqual(out, argv);
  assert.deepEqual(hoist(''), []);
  assert.deepEqual(hoist('--help'), ['--help']);
  assert.deepEqual(hoist('--version'), ['--version']);
  // An unknown leading option stops hoisting.
  assert.deepEqual(hoist('--bogus -j 8 process'), ['--bogus', '-j', '8', 'process']);
});

test('options only, with no command, are left as they are', () => {
  assert.deepEqual(hoist('-j 8'), ['-j', '8']);
  assert.deepEqual(hoist('--verbose'), ['--verbose']);
});

test('a value option at the end without a value is a usage error', () => {
  for (const argv of [['-j'], ['--parallel'], ['--verbose', '-O'], ['--temp-dir']]) {
    assert.throws(
      () => hoistGlobalOptions(argv),
      (e: unknown) => {
        assert.ok(OccystrapError.is(e));
        assert.equal(e.code, 'EUSAGE');
        assert.equal(e.message, `${argv[argv.length - 1]} needs a value`);
        return true;
      },
    );
  }
});

test('-j with a non-numeric glued value is not hoisted', () => {
  assert.deepEqual(hoist('-jx process'), ['-jx', 'process']);
});
