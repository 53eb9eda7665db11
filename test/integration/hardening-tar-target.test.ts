// tar:// destinations that are not regular files (issue 8, item 1): refused before
// anything is written, and left as they were. Device nodes are made in the test's dir.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, tmpDir } from './fixtures.js';
import { errorLines, occystrap, runDirs, strayTempFiles } from './cli-helpers.js';
import { assertCleanFailure, escapeRe, goodArchive, mknod } from './hardening-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});

describe('tar:// output refuses a destination that is not a regular file', { concurrency: 2 }, () => {
  for (const [what, make] of [
    ['a character device', (p: string) => mknod(p, 'c')],
    ['a FIFO', (p: string) => mknod(p, 'p')],
    ['a symbolic link to a character device', (p: string) => {
      mknod(`${p}.dev`, 'c');
      symlinkSync(path.basename(`${p}.dev`), p);
    }],
    ['a directory', (p: string) => mkdirSync(p)],
  ] as const) {
    test(`${what}: exit 1, one line, left as it was`, async () => {
      const base = await tmpDir('tar-target');
      const archive = goodArchive(base);
      const target = path.join(base, 'target.tar');
      make(target);
      const before = lstatSync(target);
      const kindBefore = statSync(target);
      const r = await occystrap(['--temp-dir', path.join(base, 'tmp'), 'process', `tar://${archive}`, `tar://${target}`]);
      assertCleanFailure(r.stderr, r.code);
      assert.match(errorLines(r.stderr)[0] as string, new RegExp(`^occystrap: error: tar://${escapeRe(target)}: .*(not a regular file|is a directory)`));
      const after = lstatSync(target);
      assert.equal(after.ino, before.ino, 'the same inode is still there');
      assert.equal(statSync(target).mode, kindBefore.mode, 'still the same kind of file');
      assert.deepEqual(strayTempFiles(base), []);
      assert.deepEqual(runDirs(path.join(base, 'tmp')), []);
    });
  }

  test('a symbolic link to a regular file: the link is replaced by the archive, the file it named is left alone', async () => {
    const base = await tmpDir('tar-target-link');
    const archive = goodArchive(base);
    const real = path.join(base, 'real.tar');
    writeFileSync(real, 'old contents');
    const link = path.join(base, 'link.tar');
    symlinkSync('real.tar', link);
    const r = await occystrap(['process', `tar://${archive}`, `tar://${link}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!lstatSync(link).isSymbolicLink(), 'the link is now the archive');
    assert.ok(readFileSync(link).includes(Buffer.from('manifest.json')), 'the link path holds the archive');
    assert.equal(readFileSync(real, 'utf8'), 'old contents', 'the file the link named is untouched');
    assert.deepEqual(strayTempFiles(base), []);
  });

  test('a dangling symbolic link is replaced by the archive', async () => {
    const base = await tmpDir('tar-target-dangling');
    const archive = goodArchive(base);
    const link = path.join(base, 'out.tar');
    symlinkSync('nowhere.tar', link);
    const r = await occystrap(['process', `tar://${archive}`, `tar://${link}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(lstatSync(link).isFile(), 'the link is now the archive');
    assert.ok(readFileSync(link).includes(Buffer.from('manifest.json')));
    assert.ok(!existsSync(path.join(base, 'nowhere.tar')), 'nothing written through the link');
  });
});

