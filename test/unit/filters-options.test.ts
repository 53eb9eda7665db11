// The grammar and per-entry semantics of normalize-timestamps and exclude, and how the
// shell builds them from -f specs (src/shell/filters.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import { OccystrapError } from '../../src/core/errors.js';
import { excludeMatchPath, excludeTransform, isExcludeSpec, parseExcludeOptions, parseExcludeSpec } from '../../src/core/filters/exclude.js';
import { TransformError } from '../../src/core/filters/layer-rewrite.js';
import { normalizeTimestamps, parseNormalizeTimestampsOptions } from '../../src/core/filters/normalize-timestamps.js';
import { parseFilterSpec } from '../../src/core/uri.js';
import type { TarHeader } from '../../src/core/tar/header.js';
import { buildFilters } from '../../src/shell/filters.js';

const H = (p: Partial<TarHeader> & Pick<TarHeader, 'name'>): TarHeader => ({ type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, ...p });
const right = <A>(e: E.Either<string, A>): A => {
  if (E.isLeft(e)) assert.fail(`unexpected Left: ${e.left}`);
  return e.right;
};
const left = <A>(e: E.Either<string, A>): string => {
  if (E.isRight(e)) assert.fail(`unexpected Right: ${JSON.stringify(e.right)}`);
  return e.left;
};

// ----------------------------------------------------------- normalize-timestamps

test('normalize-timestamps options: default 0, ts=N or timestamp=N, integers only', () => {
  const parse = (spec: string) => parseNormalizeTimestampsOptions(right(parseFilterSpec(spec)).options);
  assert.deepEqual(right(parse('normalize-timestamps')), { timestamp: 0 });
  assert.deepEqual(right(parse('normalize-timestamps:ts=1700000000')), { timestamp: 1700000000 });
  assert.deepEqual(right(parse('normalize_timestamps:timestamp=5')), { timestamp: 5 });
  assert.deepEqual(right(parse('normalize-timestamps:ts=-1')), { timestamp: -1 });
  assert.match(left(parse('normalize-timestamps:ts=1.5')), /ts= takes whole seconds since the epoch, got "1.5"/);
  assert.match(left(parse('normalize-timestamps:ts=yes')), /got true/);
  assert.match(left(parse('normalize-timestamps:ts=1,timestamp=2')), /not both/);
  assert.match(left(parse('normalize-timestamps:when=1')), /unknown option when; it takes ts=N \(or timestamp=N\)/);
});

test('normalize-timestamps transform: mtime = N for every kind of entry, time records dropped, the rest kept', () => {
  const t = normalizeTimestamps(99);
  const xattr = new Uint8Array([0x80, 0x01]);
  for (const type of ['file', 'directory', 'symlink', 'link', 'character-device', 'block-device', 'fifo'] as const) {
    const h = H({
      name: 'x',
      type,
      mtime: 1.123456789123,
      mtimeText: '1.123456789123',
      uid: 3_000_000,
      pax: { atime: '5', ctime: '6', 'LIBARCHIVE.creationtime': '7', 'SCHILY.xattr.security.capability': xattr },
    });
    const out = t(h);
    assert.ok(out);
    assert.equal(out.mtime, 99);
    assert.equal(out.mtimeText, undefined);
    assert.equal(out.uid, 3_000_000);
    assert.deepEqual(Object.keys(out.pax ?? {}), ['SCHILY.xattr.security.capability']);
    assert.equal(out.pax?.['SCHILY.xattr.security.capability'], xattr);
  }
  assert.equal(t(H({ name: 'y', pax: { atime: '1' } }))?.pax, undefined, 'no empty pax object');
});

// ---------------------------------------------------------------- exclude

test('exclude grammar: repeated keys, occystrap\'s bare continuation, and what is refused', () => {
  const patterns = (spec: string) => right(parseExcludeSpec(spec)).options.pattern;
  assert.deepEqual(patterns('exclude:pattern=*.pyc'), ['*.pyc']);
  assert.deepEqual(patterns('exclude:pattern=**/.git/**,**/__pycache__/**'), ['**/.git/**', '**/__pycache__/**']);
  assert.deepEqual(patterns('exclude:pattern=a,pattern=b,c'), ['a', 'b', 'c']);
  assert.deepEqual(patterns('EXCLUDE:pattern=a,,b'), ['a', 'b'], 'empty items are skipped');
  assert.deepEqual(patterns('exclude:pattern=x=y,*=*'), ['x=y', '*=*'], 'a value may hold "="; a bare item with "=" that is no option name is a pattern');
  assert.deepEqual(patterns('exclude:pattern=1,true, spaced '), ['1', 'true', ' spaced '], 'taken literally: no coercion, spaces kept');
  assert.match(left(parseExcludeSpec('exclude')), /needs at least one pattern/);
  assert.match(left(parseExcludeSpec('exclude:')), /needs at least one pattern/);
  assert.match(left(parseExcludeSpec('exclude:*.pyc')), /"\*\.pyc" comes before any pattern=/);
  assert.match(left(parseExcludeSpec('exclude:pattern=')), /empty pattern/);
  assert.match(left(parseExcludeSpec('exclude:pattern=a,regex=true')), /unknown option "regex"; it takes pattern=GLOB/);
  assert.match(left(parseExcludeSpec('exclude:glob=a')), /unknown option "glob"/);
  assert.ok(isExcludeSpec('Exclude:pattern=a') && !isExcludeSpec('search:pattern=a') && !isExcludeSpec('excluded'));
});

test('exclude options as a factory receives them', () => {
  assert.deepEqual(right(parseExcludeOptions({ pattern: 'a' })), { patterns: ['a'] });
  assert.deepEqual(right(parseExcludeOptions({ pattern: ['a', 'b'] })), { patterns: ['a', 'b'] });
  assert.match(left(parseExcludeOptions({})), /needs at least one pattern/);
  assert.match(left(parseExcludeOptions({ pattern: 3 })), /pattern= takes a glob, got 3/);
  assert.match(left(parseExcludeOptions({ pattern: 'a', x: 1 })), /unknown option x/);
});

test('exclude matching: fnmatch on the path as stored, directories without their trailing slash, no pruning', () => {
  const t = excludeTransform(['**/.git/**', '*.pyc', 'etc/hostname', 'x/.git'])();
  const kept = (name: string, type: TarHeader['type'] = 'file') => t(H({ name, type })) !== null;
  assert.ok(!kept('app/.git/HEAD'));
  assert.ok(kept('app/.git/', 'directory'), '**/.git/** does not match the directory itself');
  assert.ok(!kept('x/.git/', 'directory'), 'a directory matches without its trailing slash');
  assert.ok(!kept('usr/lib/python3/x.pyc'), '* crosses /');
  assert.ok(!kept('etc/hostname'));
  assert.ok(kept('./etc/hostname'), 'no ./ normalisation');
  assert.ok(kept('etc/hostname.bak'));
  assert.equal(excludeMatchPath('a/b//', true), 'a/b');
  assert.equal(excludeMatchPath('/', true), '/');
  assert.equal(excludeMatchPath('a/', false), 'a/');
});

test('exclude refuses to keep a hard link to an excluded entry; each layer starts afresh', () => {
  const make = excludeTransform(['secret']);
  const t = make();
  assert.equal(t(H({ name: 'secret' })), null);
  assert.throws(() => t(H({ name: 'alias', type: 'link', linkname: 'secret' })), (e: unknown) => e instanceof TransformError && /hard link "alias" points at "secret", which is excluded/.test(e.message));
  const symlink = H({ name: 'sym', type: 'symlink', linkname: 'secret' });
  assert.equal(t(symlink), symlink, 'a symlink may dangle');
  const next = make();
  const link = H({ name: 'alias', type: 'link', linkname: 'secret' });
  assert.equal(next(link), link, 'the target may live in another layer');
});

// ------------------------------------------------------------------ shell

test('buildFilters builds both filters from -f specs, in order, with usage errors naming the options', () => {
  const filters = buildFilters(['normalize-timestamps:ts=5', 'exclude:pattern=a,b', 'exclude:pattern=c,pattern=d']);
  assert.deepEqual(filters.map((f) => f.name), ['normalize-timestamps', 'exclude', 'exclude']);
  assert.deepEqual((filters[1] as unknown as { chainEntry: unknown }).chainEntry, { name: 'exclude', options: { patterns: ['a', 'b'] } });
  assert.deepEqual((filters[0] as unknown as { chainEntry: unknown }).chainEntry, { name: 'normalize-timestamps', options: { timestamp: 5 } });
  const usage = (spec: string, message: RegExp) =>
    assert.throws(() => buildFilters([spec]), (e: unknown) => OccystrapError.is(e) && e.code === 'EUSAGE' && message.test(e.message));
  usage('normalize-timestamps:zone=utc', /unknown option zone; it takes ts=N/);
  usage('exclude', /exclude needs at least one pattern/);
  usage('exclude:*.pyc', /comes before any pattern=/);
});
