/**
 * The ownership invariant on the real file system, through TempScope's node port
 * (a fresh directory under os.tmpdir() per run, removed afterwards).
 */
import { test } from 'node:test';
import * as fc from 'fast-check';
import { nodeScope, realFsProperty } from './support/real-fs-properties.js';

test('real fs: after close the run dir is gone and the destination holds exactly the moved files', async () => {
  await fc.assert(realFsProperty(nodeScope), { numRuns: 25 });
});
