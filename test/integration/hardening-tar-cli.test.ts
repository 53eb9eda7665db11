// Crafted bad archives (issue 8, item 17) into tar:// and dir://: whatever fails,
// one error line under the source's URI, no stack, nothing left behind. And an error
// nobody awaited during a run (a stray stream 'error' event) fails it cleanly.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, repoRoot, run, tmpDir } from './fixtures.js';
import { errorLines, listDir, occystrap, runDirs, strayTempFiles } from './cli-helpers.js';
import { CRAFTED_DEFECTS, type CraftedShape } from './crafted-archives.js';
import { assertCleanFailure, escapeRe } from './hardening-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});

describe('crafted bad archives: one clean error into tar:// and dir://, nothing left behind', { concurrency: 4 }, () => {
  for (const [defect, write] of Object.entries(CRAFTED_DEFECTS)) {
    for (const shape of ['first', 'second'] as CraftedShape[]) {
      for (const kind of ['tar', 'dir'] as const) {
        test(`${defect} (${shape} layer) -> ${kind}://`, async () => {
          const base = await tmpDir(`crafted-${defect}-${shape}-${kind}`);
          const archive = path.join(base, 'bad.tar');
          write(archive, shape);
          const temp = path.join(base, 'tmp');
          const dest = path.join(base, kind === 'dir' ? 'store' : 'out.tar');
          const r = await occystrap(['--temp-dir', temp, 'process', `tar://${archive}`, `${kind}://${dest}`]);
          assertCleanFailure(r.stderr, r.code);
          const line = errorLines(r.stderr)[0] as string;
          assert.match(line, new RegExp(`^occystrap: error: tar://${escapeRe(archive)}: `), 'attributed to the source');
          assert.deepEqual(runDirs(temp), [], 'no run directory left');
          assert.ok(!existsSync(dest), `no ${kind}:// output`);
          assert.deepEqual(strayTempFiles(base), [], 'no temp file beside the target');
          assert.deepEqual(listDir(base).sort(), ['bad.tar', 'tmp'], 'nothing else written');
        });
      }
    }
  }
});

/**
 * A script that runs a job under the CLI's real withSignals and TempScope: the job makes
 * a temp file, then a stream nobody listens to emits 'error' (what a stage's stray stream
 * failure looks like). `unwinds` says whether the job stops when the run is aborted.
 */
function strayScript(unwinds: boolean): string {
  const dist = path.join(repoRoot, 'dist', 'src', 'shell');
  return `
import { EventEmitter } from 'node:events';
const { withSignals } = await import(${JSON.stringify(path.join(dist, 'cli', 'signals.js'))});
const { TempScope } = await import(${JSON.stringify(path.join(dist, 'scope.js'))});
const { Reporter } = await import(${JSON.stringify(path.join(dist, 'log.js'))});
try {
  await withSignals(() => TempScope.open({ parent: process.argv[1] }), new Reporter('normal'), async (signal, scope) => {
    await scope.perform({ _tag: 'CreateTemp', owner: 'job', purpose: 'work' });
    setImmediate(() => new EventEmitter().emit('error', new Error('stray stream failure')));
    await new Promise((_, reject) => {
      if (${unwinds}) signal.addEventListener('abort', () => reject(new Error('aborted')));
      setTimeout(() => reject(new Error('never aborted')), 20000).unref();
      setInterval(() => {}, 1000);
    });
  });
} catch (e) {
  process.stderr.write('caught: ' + e.message + '\\n');
  process.exit(3);
}
`;
}

describe('an error nobody awaited during a run fails it cleanly instead of crashing', { concurrency: 2 }, () => {
  test('the run unwinds: its error is the stray one, temp files removed', async () => {
    const base = await tmpDir('stray-unwinds');
    const r = await run(process.execPath, ['--input-type=module', '-e', strayScript(true), base]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^caught: unexpected failure: stray stream failure$/m);
    assert.ok(!/^\s+at |Unhandled/m.test(r.stderr), r.stderr);
    assert.deepEqual(runDirs(base), []);
  });

  test('the run does not unwind: after 5 s, temp files removed, one error line, exit 1', async () => {
    const base = await tmpDir('stray-stuck');
    const r = await run(process.execPath, ['--input-type=module', '-e', strayScript(false), base]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(errorLines(r.stderr), ['occystrap: error: unexpected failure: stray stream failure']);
    assert.ok(!/^\s+at |Unhandled/m.test(r.stderr), r.stderr);
    assert.deepEqual(runDirs(base), []);
  });
});
