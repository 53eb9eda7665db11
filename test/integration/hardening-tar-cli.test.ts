// Crafted bad archives (issue 8, item 17) into tar:// and dir://: whatever fails,
// one error line under the source's URI, no stack, nothing left behind.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, tmpDir } from './fixtures.js';
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
