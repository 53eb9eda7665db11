// Behaviour of src/core/uri.ts: source/destination URIs, registry references, filter specs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import {
  booleanOption,
  checkKnownOptions,
  coerceValue,
  type FilterSpec,
  type ParsedUri,
  parseFilterSpec,
  parseQuery,
  parseRegistryReference,
  parseUri,
  type RegistryReference,
} from '../../src/core/uri.js';

function ok<A>(r: E.Either<string, A>): A {
  if (E.isLeft(r)) assert.fail(`expected success, got: ${r.left}`);
  return r.right;
}
function err<A>(r: E.Either<string, A>): string {
  if (E.isRight(r)) assert.fail(`expected an error, got ${JSON.stringify(r.right)}`);
  return r.left;
}

const ALIASES = { file: 'tar', directory: 'dir' };
const uri = (s: string): ParsedUri => ok(parseUri(s, ALIASES));
const ref = (s: string): RegistryReference => ok(parseRegistryReference(s));
const filter = (s: string): FilterSpec => ok(parseFilterSpec(s));
const hex = 'e'.repeat(64);

// ---- parseUri --------------------------------------------------------------------------

test('tar:foo.tar is the same as tar://foo.tar', () => {
  assert.deepEqual(uri('tar:foo.tar'), uri('tar://foo.tar'));
  assert.deepEqual(uri('tar:foo.tar'), { scheme: 'tar', body: 'foo.tar', options: {} });
});

test('file:// is tar and directory:// is dir; schemes are case-insensitive', () => {
  assert.equal(uri('file://x.tar').scheme, 'tar');
  assert.equal(uri('file:x.tar').scheme, 'tar');
  assert.equal(uri('directory://out').scheme, 'dir');
  assert.equal(uri('DIR://out').scheme, 'dir');
  assert.equal(uri('Directory://out').scheme, 'dir');
  assert.equal(uri('TAR://x').scheme, 'tar');
  assert.equal(uri('registry://docker.io/library/busybox').scheme, 'registry');
});

test('only the given aliases apply, and never an inherited key', () => {
  assert.equal(ok(parseUri('file://x.tar', {})).scheme, 'file');
  assert.equal(ok(parseUri('constructor://x', ALIASES)).scheme, 'constructor');
  assert.equal(ok(parseUri('toString://x', ALIASES)).scheme, 'tostring');
});

test('file-like bodies are verbatim between // and ?', () => {
  assert.equal(uri('tar:///abs/x.tar').body, '/abs/x.tar');
  assert.equal(uri('tar://localhost/p').body, 'localhost/p');
  assert.equal(uri('tar://a.tar').body, 'a.tar');
  assert.equal(uri('tar:/abs.tar').body, '/abs.tar');
  assert.equal(uri('dir://out/sub?unique_names=true').body, 'out/sub');
  assert.equal(uri('tar://').body, '');
});

test('input without a scheme is an error that shows an example', () => {
  const e = err(parseUri('foo.tar', ALIASES));
  assert.match(e, /"foo.tar" has no scheme/);
  assert.match(e, /tar:\/\/FILE/);
  err(parseUri('/abs/foo.tar', ALIASES));
  err(parseUri('1tar://x', ALIASES));
  err(parseUri('', ALIASES));
});

test('query values are coerced: integers, booleans, strings', () => {
  assert.deepEqual(uri('tar://x?index=1').options, { index: 1 });
  assert.deepEqual(uri('tar://x?a=true&b=yes&c=false&d=no&e=TRUE&f=No').options, {
    a: true,
    b: true,
    c: false,
    d: false,
    e: true,
    f: false,
  });
  assert.deepEqual(uri('tar://x?s=hello&n=-3&z=0').options, { s: 'hello', n: -3, z: 0 });
  // Not an integer: stays a string.
  assert.deepEqual(uri('tar://x?v=1.5&w=1e3&x=0x10').options, { v: '1.5', w: '1e3', x: '0x10' });
  // Too many digits to be a safe number: stays a string.
  assert.deepEqual(uri('tar://x?big=1234567890123456').options, { big: '1234567890123456' });
  // A key without '=' is true.
  assert.deepEqual(uri('tar://x?flag').options, { flag: true });
  // Empty pairs are ignored; an empty value is the empty string.
  assert.deepEqual(uri('tar://x?&a=&').options, { a: '' });
});

test('a repeated key gives a list', () => {
  assert.deepEqual(uri('tar://x?tag=a&tag=b').options, { tag: ['a', 'b'] });
  assert.deepEqual(uri('tar://x?tag=a&tag=2&tag=yes').options, { tag: ['a', 2, true] });
});

test('percent-escapes are decoded in keys and values, + is a space; bad escapes are errors', () => {
  assert.deepEqual(uri('tar://x?name=a%2Fb%3Ac&sp=a+b&k%20ey=v').options, { name: 'a/b:c', sp: 'a b', 'k ey': 'v' });
  assert.deepEqual(uri('tar://x?i=%31').options, { i: 1 });
  const e = err(parseUri('tar://x?a=%zz', ALIASES));
  assert.match(e, /bad percent-escape/);
  assert.match(e, /^tar:\/\/x\?a=%zz: /);
});

test('the body is not percent-decoded', () => {
  assert.equal(uri('tar://a%20b.tar').body, 'a%20b.tar');
});

test('coerceValue and parseQuery agree', () => {
  assert.equal(coerceValue('YES'), true);
  assert.equal(coerceValue('007'), 7);
  assert.equal(coerceValue(''), '');
  assert.deepEqual(ok(parseQuery('')), {});
});

test('property: an integer query value round-trips as a number', () => {
  fc.assert(
    fc.property(fc.integer({ min: -1e9, max: 1e9 }), (n) => {
      assert.deepEqual(uri(`tar://x?n=${n}`).options, { n });
    }),
  );
});

// ---- parseRegistryReference --------------------------------------------------------------

test('host, name and tag; the tag defaults to latest', () => {
  assert.deepEqual(ref('docker.io/library/busybox:1.36'), { host: 'docker.io', name: 'library/busybox', tag: '1.36' });
  assert.deepEqual(ref('docker.io/library/busybox'), { host: 'docker.io', name: 'library/busybox', tag: 'latest' });
});

test('host:port stays in the host; the tag follows the last colon after the last slash', () => {
  assert.deepEqual(ref('localhost:5000/team/app:v1'), { host: 'localhost:5000', name: 'team/app', tag: 'v1' });
  assert.deepEqual(ref('127.0.0.1:5000/app'), { host: '127.0.0.1:5000', name: 'app', tag: 'latest' });
  assert.deepEqual(ref('[::1]:5000/app:x'), { host: '[::1]:5000', name: 'app', tag: 'x' });
});

test('the last colon splits the tag; a colon before it makes the name invalid', () => {
  const e = err(parseRegistryReference('h/a:b:c'));
  assert.match(e, /"a:b" is not a valid repository name/);
});

test('name@sha256:<64hex> is a digest reference with the digest as its tag', () => {
  assert.deepEqual(ref(`ghcr.io/a/b@sha256:${hex}`), {
    host: 'ghcr.io',
    name: 'a/b',
    tag: `sha256:${hex}`,
    digest: `sha256:${hex}`,
  });
});

test('name:tag@sha256:… keeps both the tag and the digest', () => {
  assert.deepEqual(ref(`localhost:5000/a/b:v2@sha256:${hex}`), {
    host: 'localhost:5000',
    name: 'a/b',
    tag: 'v2',
    digest: `sha256:${hex}`,
  });
});

test('an invalid digest is rejected with the digest reason', () => {
  const e = err(parseRegistryReference('h/a@sha256:abc'));
  assert.match(e, /invalid digest "sha256:abc" at the image reference/);
  assert.match(err(parseRegistryReference('h/a@sha256:../../x')), /lowercase hexadecimal/);
  assert.match(err(parseRegistryReference(`h/a@md5:${hex}`)), /unsupported algorithm/);
});

test('userinfo in the host is rejected', () => {
  const e = err(parseRegistryReference('user:pass@registry.example.com/a/b:t'));
  assert.match(e, /credentials in the URI host are not accepted/);
  assert.match(e, /--username/);
});

test('an uppercase repository is rejected; an uppercase tag is fine', () => {
  assert.match(err(parseRegistryReference('docker.io/Library/busybox')), /not a valid repository name/);
  assert.deepEqual(ref('docker.io/library/busybox:V1.0_rc-2'), { host: 'docker.io', name: 'library/busybox', tag: 'V1.0_rc-2' });
});

test('bad repository names and tags are rejected', () => {
  assert.match(err(parseRegistryReference('busybox')), /needs HOST\/NAME/);
  assert.match(err(parseRegistryReference('/busybox')), /needs HOST\/NAME/);
  err(parseRegistryReference('h/'));
  err(parseRegistryReference('h/a//b'));
  err(parseRegistryReference('h/-a'));
  err(parseRegistryReference('h/a/../b'));
  assert.match(err(parseRegistryReference('h/a:')), /"" is not a valid tag/);
  assert.match(err(parseRegistryReference('h/a:.x')), /is not a valid tag/);
  assert.match(err(parseRegistryReference(`h/a:${'t'.repeat(129)}`)), /is not a valid tag/);
  ref(`h/a:${'t'.repeat(128)}`);
  ref('h/a__b.c-d---e/f');
});

// ---- parseFilterSpec ------------------------------------------------------------------

test('a bare filter name', () => {
  assert.deepEqual(filter('normalize-timestamps'), { name: 'normalize-timestamps', options: {} });
});

test('name:k=v,k2=v2 with coerced values', () => {
  assert.deepEqual(filter('normalize-timestamps:timestamp=0,keep=yes,label=x'), {
    name: 'normalize-timestamps',
    options: { timestamp: 0, keep: true, label: 'x' },
  });
});

test('filter names are lowercased and _ becomes -', () => {
  assert.equal(filter('Normalize_Timestamps').name, 'normalize-timestamps');
  assert.equal(filter('  exclude_ :a=b').name, 'exclude-');
});

test('repeated filter keys give a list; empty pairs are skipped; values may contain =', () => {
  assert.deepEqual(filter('exclude:pattern=a,pattern=b,pattern=c').options, { pattern: ['a', 'b', 'c'] });
  assert.deepEqual(filter('x:a=1,,b=2,').options, { a: 1, b: 2 });
  assert.deepEqual(filter('x:a=b=c').options, { a: 'b=c' });
});

test('a pair without = (or with an empty key) is an error naming the pair', () => {
  assert.equal(err(parseFilterSpec('exclude:pattern')), 'filter exclude: "pattern" is not key=value');
  assert.match(err(parseFilterSpec('exclude:=v')), /"=v" is not key=value/);
});

test('a filter without a valid name is an error', () => {
  assert.match(err(parseFilterSpec('')), /has no valid name/);
  assert.match(err(parseFilterSpec(':a=b')), /has no valid name/);
  assert.match(err(parseFilterSpec('1abc')), /has no valid name/);
  assert.match(err(parseFilterSpec('a b')), /has no valid name/);
});

// ---- booleanOption / checkKnownOptions ---------------------------------------------------

test('booleanOption: fallback, booleans, 1/0, and an error for anything else', () => {
  assert.equal(ok(booleanOption({}, 'x', true)), true);
  assert.equal(ok(booleanOption({}, 'x', false)), false);
  assert.equal(ok(booleanOption({ x: false }, 'x', true)), false);
  assert.equal(ok(booleanOption({ x: 1 }, 'x', false)), true);
  assert.equal(ok(booleanOption({ x: 0 }, 'x', true)), false);
  assert.equal(ok(booleanOption(uri('dir://o?unique_names=yes').options, 'unique_names', false)), true);
  assert.equal(err(booleanOption({ x: 'maybe' }, 'x', false)), '?x= takes true or false, got "maybe"');
  assert.equal(err(booleanOption({ x: 2 }, 'x', false)), '?x= takes true or false, got 2');
  assert.equal(err(booleanOption({ x: [true, false] }, 'x', false)), '?x= takes true or false, got [true,false]');
});

test('checkKnownOptions: accepts known keys, lists unknown and known ones', () => {
  assert.equal(ok(checkKnownOptions('dir', { unique_names: true }, ['unique_names', 'expand'])), undefined);
  assert.equal(
    err(checkKnownOptions('dir', { bogus: 1, other: 'x' }, ['unique_names', 'expand'])),
    'dir:// does not take ?bogus, ?other (it takes ?unique_names, ?expand)',
  );
  assert.equal(err(checkKnownOptions('tar', { x: true }, [])), 'tar:// does not take ?x (it takes no options)');
  assert.equal(ok(checkKnownOptions('tar', {}, [])), undefined);
});

// ---- prototype-named options and images stay plain keys ----

test(
  'a ?__proto__= option is reported as unknown, not swallowed',
  () => {
    const options = uri('dir://out?__proto__=1&unique_names=true').options;
    assert.equal(Object.getPrototypeOf(options), Object.prototype);
    assert.ok(E.isLeft(checkKnownOptions('dir', options, ['unique_names'])));
  },
);

test(
  'an option named like an Object.prototype member is a plain value',
  () => {
    assert.deepEqual(uri('dir://out?toString=1').options, { toString: 1 });
    assert.deepEqual(filter('x:constructor=a').options, { constructor: 'a' });
  },
);
