/**
 * The ownership invariant on the real file system, through TempScope's node port
 * (a fresh directory under os.tmpdir() per run, removed afterwards).
 */
import { test } from 'node:test';
import * as fc from 'fast-check';
import { nodeScope, realFsProperty, realFsTranscodeProperty } from './support/real-fs-properties.js';

test('real fs: after close the run dir is gone and the destination holds exactly the moved files', async () => {
  await fc.assert(realFsProperty(nodeScope), { numRuns: 25 });
});

test('real fs: Inflate/Compress with the node codecs make a live new file or nothing; after close the run dir is gone', async () => {
  await fc.assert(realFsTranscodeProperty(nodeScope), { numRuns: 40 });
});
