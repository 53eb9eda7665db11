// Behaviour of src/core/archive-path.ts: archive paths stay relative and inside the archive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { archiveDirname, normalizeArchivePath, resolveLinkTarget } from '../../src/core/archive-path.js';

function ok(r: E.Either<string, string>): string {
  if (E.isLeft(r)) assert.fail(`expected success, got: ${r.left}`);
  return r.right;
}
function err(r: E.Either<string, string>): string {
  if (E.isRight(r)) assert.fail(`expected an error, got ${JSON.stringify(r.right)}`);
  return r.left;
}

test('normalizeArchivePath strips ./, duplicate slashes and trailing slashes', () => {
  assert.equal(ok(normalizeArchivePath('./a/b')), 'a/b');
  assert.equal(ok(normalizeArchivePath('a//b')), 'a/b');
  assert.equal(ok(normalizeArchivePath('a/./b/.')), 'a/b');
  assert.equal(ok(normalizeArchivePath('./././x.json')), 'x.json');
  assert.equal(ok(normalizeArchivePath('abc/')), 'abc');
  assert.equal(ok(normalizeArchivePath('a/b...c/..d/d..')), 'a/b...c/..d/d..');
  assert.equal(ok(normalizeArchivePath(`${'e'.repeat(64)}/layer.tar`)), `${'e'.repeat(64)}/layer.tar`);
});

test('normalizeArchivePath rejects .. components anywhere', () => {
  for (const p of ['..', '../x', 'a/../b', 'a/..', './..', 'a/b/../../..']) {
    assert.equal(err(normalizeArchivePath(p)), 'has a ".." component', p);
  }
});

test('normalizeArchivePath rejects absolute paths, however many slashes', () => {
  assert.equal(err(normalizeArchivePath('/etc/passwd')), 'is absolute');
  assert.equal(err(normalizeArchivePath('////etc/x')), 'is absolute');
  assert.equal(err(normalizeArchivePath('/')), 'is absolute');
});

test('normalizeArchivePath rejects backslashes and drive letters', () => {
  assert.equal(err(normalizeArchivePath('a\\b')), 'contains a backslash');
  assert.equal(err(normalizeArchivePath('..\\x')), 'contains a backslash');
  assert.equal(err(normalizeArchivePath('C:..\\x')), 'contains a backslash');
  assert.equal(err(normalizeArchivePath('C:x')), 'starts with a drive letter');
  assert.equal(err(normalizeArchivePath('c:/windows')), 'starts with a drive letter');
  // A drive letter hidden behind ./ prefixes that normalisation strips.
  assert.equal(err(normalizeArchivePath('./C:/Windows/x')), 'starts with a drive letter');
  assert.equal(err(normalizeArchivePath('.//./C:')), 'starts with a drive letter');
  // Not at the start: an ordinary name.
  assert.equal(ok(normalizeArchivePath('a/C:')), 'a/C:');
  assert.equal(ok(normalizeArchivePath('.C:')), '.C:');
});

test('normalizeArchivePath rejects NUL and empty paths', () => {
  assert.equal(err(normalizeArchivePath('a\0b')), 'contains a NUL byte');
  assert.equal(err(normalizeArchivePath('')), 'is empty');
  assert.equal(err(normalizeArchivePath('.')), 'is empty');
  assert.equal(err(normalizeArchivePath('./')), 'is empty');
  assert.equal(err(normalizeArchivePath('.//./')), 'is empty');
});

test('archiveDirname', () => {
  assert.equal(archiveDirname('a/b/c'), 'a/b');
  assert.equal(archiveDirname('c'), '');
});

test('resolveLinkTarget resolves relative to the link and stays inside', () => {
  assert.equal(ok(resolveLinkTarget('a/b', '../c')), 'c');
  assert.equal(ok(resolveLinkTarget('a/b', 'c')), 'a/c');
  assert.equal(ok(resolveLinkTarget('a/b/c', '../../d/./e')), 'd/e');
  assert.equal(ok(resolveLinkTarget('x', 'y//z/')), 'y/z');
  assert.equal(ok(resolveLinkTarget('a/b/c', '../../a/x')), 'a/x');
  // Climbing above the root and back down is still leaving the archive.
  assert.ok(E.isLeft(resolveLinkTarget('a/b/c', '../../../a/x')));
});

test('resolveLinkTarget rejects leaving the archive, absolute targets and the root itself', () => {
  assert.match(err(resolveLinkTarget('a', '../x')), /a -> \.\.\/x leaves the archive/);
  assert.match(err(resolveLinkTarget('a/b', '../../x')), /leaves the archive/);
  assert.match(err(resolveLinkTarget('a/b', '/etc/passwd')), /points at an absolute path/);
  assert.match(err(resolveLinkTarget('a/b', '..')), /points at the archive root/);
  assert.match(err(resolveLinkTarget('a', '.')), /points at the archive root/);
});

const segment = fc.oneof(
  fc.constantFrom('', '.', '..', 'a', 'b', '...', '.hidden', 'x..y', 'C:', 'c:'),
  fc.string({ minLength: 1, maxLength: 6 }).filter((s) => !s.includes('/')),
);
const pathArb = fc.array(segment, { maxLength: 8 }).map((parts) => parts.join('/'));

test('property: normalised paths have no .. components, no leading slash, and are idempotent', () => {
  fc.assert(
    fc.property(fc.oneof(pathArb, fc.string({ maxLength: 30 })), (raw) => {
      const r = normalizeArchivePath(raw);
      if (E.isLeft(r)) return;
      const p = r.right;
      assert.ok(!p.startsWith('/'), p);
      assert.ok(!p.split('/').includes('..'), p);
      assert.ok(!p.split('/').includes('.'), p);
      assert.ok(!p.split('/').includes(''), p);
      assert.ok(!p.includes('\\') && !p.includes('\0'), p);
      assert.deepEqual(normalizeArchivePath(p), E.right(p));
    }),
    { numRuns: 2000 },
  );
});

test('property: a resolved link target never escapes and is itself a normalised path', () => {
  fc.assert(
    fc.property(pathArb, pathArb, (link, target) => {
      const l = normalizeArchivePath(link);
      if (E.isLeft(l)) return;
      const r = resolveLinkTarget(l.right, target);
      if (E.isLeft(r)) return;
      const n = normalizeArchivePath(r.right);
      // Targets may carry backslashes or drive-letter-like segments verbatim; otherwise normalised.
      if (E.isRight(n)) assert.equal(n.right, r.right);
      assert.ok(!r.right.startsWith('/'));
      assert.ok(!r.right.split('/').includes('..'));
    }),
    { numRuns: 2000 },
  );
});
