// Behaviour of src/core/reference.ts (the image reference grammar) and src/core/printable.ts
// (escaping input-derived text for the terminal).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { checkImageReference, checkRegistryHost } from '../../src/core/reference.js';
import { printable, printableJson, printableLines } from '../../src/core/printable.js';
import { parseRegistryReference } from '../../src/core/uri.js';

const hex = 'a'.repeat(64);

test('valid RepoTags pass the reference grammar', () => {
  for (const r of [
    'busybox:latest',
    'library/busybox:1.36',
    'docker.io/library/busybox:1.36',
    '127.0.0.1:5000/team/app:v1.2_rc-3',
    'localhost/a__b/c-d.e:T',
    '[::1]:5000/app:x',
    'Registry.Example.COM/app:1',
    `app@sha256:${hex}`,
    `ghcr.io/a/b:v1@sha256:${hex}`,
    'a--b:x',
  ]) {
    assert.ok(E.isRight(checkImageReference(r)), r);
  }
});

test('RepoTags with control characters, spaces, uppercase names or bad tags are refused, and the reason is printable', () => {
  for (const r of [
    'evil:1\n',
    'evil\n:1',
    'evil:\x1b[31mred',
    '\x1b[2Jclear:1',
    'evil:1\u009b31m',
    'evil:\u202egnp',
    'with space:1',
    'team/Upper:1',
    'UPPER:1',
    'a:.hidden',
    'a:-x',
    `a:${'t'.repeat(129)}`,
    'a/:1',
    '/a:1',
    'a//b:1',
    'a_-b:1',
    'a:',
    '',
    'host:99999/app:1',
    `${'a'.repeat(256)}:1`,
    'app@sha256:XYZ',
  ]) {
    const e = checkImageReference(r);
    assert.ok(E.isLeft(e), JSON.stringify(r));
    assert.equal(printable(e.left), e.left, `unprintable reason for ${JSON.stringify(r)}: ${JSON.stringify(e.left)}`);
    assert.match(e.left, /is not a valid image reference/);
  }
});

test('registry hosts: ports must be 1-65535, addresses must be real IPv4/IPv6 addresses', () => {
  for (const h of ['localhost', 'localhost:5000', '127.0.0.1:65535', '10.0.0.1', '[::1]', '[::1]:1', 'a-b.example.com:443', 'registry-1.docker.io']) {
    assert.ok(E.isRight(checkRegistryHost(h)), h);
  }
  const bad: [string, RegExp][] = [
    ['127.0.0.1:99999', /port 99999 is outside 1-65535/],
    ['127.0.0.1:0', /port 0 is outside/],
    ['host:65536', /outside/],
    ['host:', /not a number/],
    ['host:12a', /not a number/],
    ['999.1.1.1', /IPv4/],
    ['1.2.3', /IPv4/],
    ['0x7f.1', /IPv4/],
    ['1.2.3.04', /IPv4/],
    ['[::1::2]', /IPv6/],
    ['[zz]', /not a valid registry host/],
    ['-h', /not a valid registry host/],
    ['a_b', /not a valid registry host/],
    ['a b', /not a valid registry host/],
  ];
  for (const [h, why] of bad) {
    const e = checkRegistryHost(h);
    assert.ok(E.isLeft(e), h);
    assert.match(e.left, why);
  }
});

test('parseRegistryReference refuses a bad port or address as a usage error (Left), before any request', () => {
  assert.match((parseRegistryReference('127.0.0.1:99999/a/b:1') as E.Left<string>).left, /port 99999 is outside 1-65535/);
  assert.match((parseRegistryReference('999.1.1.1/a') as E.Left<string>).left, /IPv4/);
  assert.match((parseRegistryReference(`h/${'a'.repeat(260)}`) as E.Left<string>).left, /over 255 characters/);
  assert.ok(E.isRight(parseRegistryReference('127.0.0.1:5000/a/b:1')));
});

test('printable escapes C0, DEL, C1, separators and bidi controls, and nothing else', () => {
  assert.equal(printable('a\nb\rc\td\x1b[31me\x7f\x9b\u0085\u2028\u202e\0'), 'a\\nb\\rc\\td\\x1b[31me\\x7f\\x9b\\x85\\u{2028}\\u{202e}\\x00');
  assert.equal(printable('plain ascii é ü 日本 / : @'), 'plain ascii é ü 日本 / : @');
  assert.equal(printableLines('one\x1b]0;title\x07\ntwo\r'), 'one\\x1b]0;title\\x07\ntwo\\r');
  assert.equal(printableJson(JSON.stringify({ k: 'a\x1b\x9b\u202e' })), '{"k":"a\\u001b\\u009b\\u202e"}');
  assert.deepEqual(JSON.parse(printableJson(JSON.stringify({ k: 'a\x9b\u2028' }))), { k: 'a\x9b\u2028' });
});

test('property: printable output never holds a control character', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (s) => {
      const out = printable(s);
      assert.equal(printable(out), out, "printable output is printed as it is");
      assert.ok(!/[\u0000-\u001f\u007f-\u009f]/.test(out));
      assert.ok(!/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(printableLines(s)));
    }),
  );
});

test('the progress reporter never writes a control character from a message raw', async () => {
  const { Reporter } = await import('../../src/shell/log.js');
  const { RunProgress } = await import('../../src/shell/progress.js');
  for (const isTTY of [true, false]) {
    let written = '';
    const stream = { isTTY, columns: 100, write: (s: string) => ((written += s), true) } as unknown as NodeJS.WriteStream;
    const reporter = new Reporter('normal', stream);
    const progress = new RunProgress(reporter, { mode: isTTY ? 'live' : 'lines' });
    const config = { _tag: 'Config', image: { name: 'evil\n:\x1b[31mred\u009b', tag: 't' }, digest: `sha256:${'a'.repeat(64)}`, layers: [] } as never;
    progress.config(config);
    reporter.redraw();
    reporter.line('warning \x1b]0;title\x07');
    progress.stop();
    // What the reporter itself writes: moving up over its block and clearing below.
    const visible = written.replace(/\r\x1b\[\d+A\x1b\[J/g, '');
    assert.doesNotMatch(visible, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    assert.match(visible, /evil\\n:\\x1b\[31mred\\x9b/);
  }
});
