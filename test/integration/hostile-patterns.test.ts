// Patterns that made 0.1.0 backtrack for minutes (issue 8, item 6), run through the real
// CLI on layers built here: `exclude` and `search` globs on a 20 KB path and a 2 KB name,
// and `search --regex '(a+)+$'` on a×40+'!'. Each run must finish (the child has a
// generous timeout: a hang fails the test) with the right answer.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { cleanupTmpDirs, tmpDir } from './fixtures.js';
import { readdirSync, statSync } from 'node:fs';
import { errorLines, listDir, occystrap, runDirs, startOccystrap, waitFor } from './cli-helpers.js';
import { type ArchiveEntry, tarBytes, writeOneLayerImage } from './archive-builder.js';
import { layerNames, readSaved } from './filters-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});

/** A docker-save archive of one image with one layer holding `entries`. */
async function imageWithLayer(file: string, entries: readonly ArchiveEntry[]): Promise<void> {
  await writeOneLayerImage(file, await tarBytes(entries), 'hostile:v1');
}

// Generous: the patterns below took 1 min 49 s to 9 min (or forever) in 0.1.0.
const GENEROUS = { timeoutMs: 90_000 };

const deepPath = `${'d/'.repeat(10_000)}x.py`; // 20 KB, no match for */*/*.pyc
const longName = `${'a'.repeat(2048)}`; // no match for *a*a*a*b
const regexBait = `${'a'.repeat(40)}!`; // (a+)+$ backtracks exponentially in a backtracking engine

describe('hostile patterns finish', () => {
  let archive = '';
  let work = '';

  test('exclude with */*/*.pyc and *a*a*a*b on a 20 KB path and a 2 KB name: done, nothing wrongly dropped', async () => {
    work = await tmpDir('hostile');
    archive = path.join(work, 'in.tar');
    await imageWithLayer(archive, [
      { name: deepPath, data: Buffer.from('deep\n') },
      { name: longName, data: Buffer.from('long\n') },
      { name: regexBait, data: Buffer.from('bait\n') },
      { name: 'p/q/r.pyc', data: Buffer.from('pyc\n') },
      { name: 'x-aaab', data: Buffer.from('x\n') },
    ]);
    const temp = path.join(work, 'tmp');
    const out = path.join(work, 'out.tar');
    const r = await occystrap(['--temp-dir', temp, 'process', `tar://${archive}`, `tar://${out}`, '-f', 'exclude:pattern=*/*/*.pyc,*a*a*a*b'], GENEROUS);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(errorLines(r.stderr), []);
    assert.deepEqual(listDir(temp), []);
    const names = await layerNames((await readSaved(out)).layers[0] as Buffer);
    const kept = [...names].sort();
    assert.ok(kept.length === 3 && kept.includes(deepPath) && kept.includes(longName) && kept.includes(regexBait), `only p/q/r.pyc and x-aaab are dropped; kept ${kept.length}: ${kept.map((n) => n.slice(0, 20)).join(', ')}`);
  });

  test('search globs on the same layer: done, the right matches', async () => {
    assert.notEqual(archive, '', 'needs the first test');
    const r = await occystrap(['search', '--script-friendly', `tar://${archive}`, '*/*/*.pyc'], GENEROUS);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\n').filter(Boolean).map((l) => l.split(':').pop()), ['p/q/r.pyc']);
    const r3 = await occystrap(['search', '--script-friendly', `tar://${archive}`, '*a*a*a*b'], GENEROUS);
    assert.equal(r3.code, 0, r3.stderr);
    assert.deepEqual(r3.stdout.split('\n').filter(Boolean).map((l) => l.split(':').pop()), ['x-aaab']);
  });

  test("search --regex '(a+)+$' on a×40+'!': done, no match but the anchored ones", async () => {
    assert.notEqual(archive, '', 'needs the first test');
    const r = await occystrap(['search', '--regex', '--script-friendly', `tar://${archive}`, '(a+)+$'], GENEROUS);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\n').filter(Boolean).map((l) => l.split(':').pop()?.length), [longName.length], 'only the all-a name matches');
    const temp = path.join(work, 'tmp2');
    const out = path.join(work, 'out2.tar');
    const r2 = await occystrap(['--temp-dir', temp, 'process', `tar://${archive}`, `tar://${out}`, '-f', 'search:pattern=(a+)+$,regex=true,script_friendly=true'], GENEROUS);
    assert.equal(r2.code, 0, r2.stderr);
    assert.deepEqual(r2.stdout.split('\n').filter(Boolean).map((l) => l.split(':').pop()?.length), [longName.length], 'only the all-a name matches');
  });
});

describe('regex constructs RE2 does not have', () => {
  for (const pattern of ['(?=a)', '(a)\\1']) {
    test(`search --regex ${JSON.stringify(pattern)}: one usage error naming the dialect, exit 2`, async () => {
      const work = await tmpDir('re2-usage');
      const archive = path.join(work, 'in.tar');
      await imageWithLayer(archive, [{ name: 'a', data: Buffer.from('a\n') }]);
      for (const args of [
        ['search', '--regex', `tar://${archive}`, pattern],
        ['process', `tar://${archive}`, `tar://${path.join(work, 'out.tar')}`, '-f', `search:pattern=${pattern},regex=true`],
      ]) {
        const r = await occystrap(args);
        assert.equal(r.code, 2, r.stderr);
        const lines = r.stderr.split('\n').filter(Boolean);
        assert.equal(lines.length, 1, r.stderr);
        assert.match(lines[0] as string, /^occystrap: usage error: (search: )?invalid regular expression .*no lookahead, lookbehind or backreferences\)$/);
        assert.deepEqual(listDir(work), ['in.tar'], 'no output written');
      }
    });
  }
});

describe('a signal stops a run that is busy filtering', () => {
  test('SIGTERM while chained excludes rewrite a layer of long paths -> exit 143, nothing left', async () => {
    const work = await tmpDir('hostile-sigterm');
    const archive = path.join(work, 'in.tar');
    // 300 entries with 20 KB paths (~7 MB layer), rewritten by 30 filters: seconds of work
    // after the fix, so the signal lands while a filter is busy.
    await imageWithLayer(
      archive,
      Array.from({ length: 300 }, (_, i) => ({ name: `${'d/'.repeat(10_000)}${i}.py`, data: Buffer.from(`${i}\n`) })),
    );
    const temp = path.join(work, 'tmp');
    const out = path.join(work, 'out.tar');
    const filters = Array.from({ length: 30 }, () => ['-f', 'exclude:pattern=*/*/*.pyc,*a*a*a*b']).flat();
    const started = startOccystrap(['--temp-dir', temp, 'process', `tar://${archive}`, `tar://${out}`, ...filters]);
    // A filter's output layer with over 1 MB in it: the filter is past its first entries
    // (a matcher stuck on the first long path never gets there).
    const filtering = () => {
      for (const rd of runDirs(temp)) {
        try {
          const dir = path.join(temp, rd);
          if (readdirSync(dir).some((n) => n.includes('exclude-layer') && statSync(path.join(dir, n)).size > 1 << 20)) return true;
        } catch {
          // removed meanwhile
        }
      }
      return undefined;
    };
    try {
      await Promise.race([
        waitFor('a filter to be half-way through the layer', filtering, 60_000),
        started.exited.then((r) => {
          throw new Error(`the run ended before it could be interrupted (exit ${String(r.code)}): ${r.stderr}`);
        }),
      ]);
      started.child.kill('SIGTERM');
    } catch (e) {
      started.child.kill('SIGKILL');
      throw e;
    }
    // Generous: a run that ignores the signal (as 0.1.0 did for minutes) fails here.
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      started.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          started.child.kill('SIGKILL');
          reject(new Error('the run did not stop within 30 s of SIGTERM'));
        }, 30_000);
      }),
    ]).finally(() => clearTimeout(timer));
    assert.equal(r.signal, null, r.stderr);
    assert.equal(r.code, 143, r.stderr);
    assert.ok(r.stderr.split('\n').includes('occystrap: interrupted by SIGTERM; partial output and temp files removed'), r.stderr);
    assert.deepEqual(listDir(temp), [], 'temp dir empty');
    assert.deepEqual(listDir(work), ['in.tar', 'tmp'], 'no output');
  });
});
