/**
 * Ownership through whole pipelines: random runPipeline runs (layers, parallelism, buffer
 * depth, filters, outputs, faults, early stops, aborts) over a scheduler-controlled memory
 * fs, and an abandoned consumer that only the scope can clean up after. The property
 * bodies live in ./support/pipeline-properties.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fc from 'fast-check';
import { abandonedConsumerProperty, closeDuringRunProperty, pipelineOwnershipProperty } from './support/pipeline-properties.js';
import { realScope } from './support/scopes.js';

test('runPipeline: every temp file ends moved or released once, by the stages themselves; no partial output on failure', async () => {
  const stats = { ok: 0, failed: 0 };
  await fc.assert(pipelineOwnershipProperty(realScope, stats), { numRuns: 200 });
  // The generator must exercise both outcomes, or the property proves little.
  assert.ok(stats.ok > 0 && stats.failed > 0, `runs: ${JSON.stringify(stats)}`);
});

test('abandoned consumer (iterator dropped without return()): scope.close() releases what the stages held', async () => {
  const stats = { releasedByScope: [] as number[] };
  await fc.assert(abandonedConsumerProperty(realScope, stats), { numRuns: 150 });
  assert.ok(stats.releasedByScope.some((n) => n > 0), 'no run left anything for the scope: the scenario is not exercised');
});

test('scope.close() racing the run (a signal handler): the invariant holds whatever the stages were doing', async () => {
  const stats = { releasedByScope: [] as number[] };
  await fc.assert(closeDuringRunProperty(realScope, stats), { numRuns: 150 });
  assert.ok(stats.releasedByScope.some((n) => n > 0), 'close never caught a run holding files: the scenario is not exercised');
});
