/**
 * Test of the tests: the same property bodies, run against deliberately broken handlers,
 * must FAIL. A property that cannot fail proves nothing.
 *
 * - doubleRelease: unlinks every released file a second time, behind the ledger's back;
 * - forgetRelease: marks a file released in the ledger but never unlinks it;
 * - leakyClose: close() marks leftovers released but neither removes them nor sweeps.
 *
 * `endOnFailure` skips shrinking: we only need to know that a counterexample exists.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fc from 'fast-check';
import { nodeTempFs } from '../src/shell/fs/node-temp-fs.js';
import { interleavedOwnershipProperty, ownershipModelProperty } from './support/ownership-properties.js';
import { abandonedConsumerProperty, pipelineOwnershipProperty } from './support/pipeline-properties.js';
import { realFsProperty } from './support/real-fs-properties.js';
import { brokenScopes, realScope, type ScopeFactory } from './support/scopes.js';

async function mustFail(name: string, property: fc.IAsyncProperty<unknown> | fc.IAsyncPropertyWithHooks<unknown>, numRuns: number): Promise<void> {
  const result = await fc.check(property as fc.IAsyncPropertyWithHooks<unknown>, { numRuns, endOnFailure: true });
  assert.equal(result.failed, true, `${name}: the property should have failed against a broken handler, but ${result.numRuns} runs passed`);
  // It must fail for the right reason (an invariant), not because the harness broke.
  const message = String((result.errorInstance as Error | undefined)?.message ?? result.errorInstance ?? '');
  assert.doesNotMatch(message, /deadlock|TypeError|ReferenceError/, `${name}: failed for an unrelated reason: ${message.slice(0, 500)}`);
}

const variants = Object.entries(brokenScopes) as Array<[keyof typeof brokenScopes, ScopeFactory]>;

for (const [name, factory] of variants) {
  test(`test-of-tests: the ownership model property fails against ${name}`, async () => {
    await mustFail(`model/${name}`, ownershipModelProperty(factory), 200);
  });
  test(`test-of-tests: the interleaving property fails against ${name}`, async () => {
    await mustFail(`interleaved/${name}`, interleavedOwnershipProperty(factory), 200);
  });
}

for (const name of ['doubleRelease', 'forgetRelease'] as const) {
  test(`test-of-tests: the runPipeline property fails against ${name}`, async () => {
    await mustFail(`pipeline/${name}`, pipelineOwnershipProperty(brokenScopes[name]), 200);
  });
}

test('test-of-tests: the runPipeline property fails when a stage breaks its contract (input keeps the file of a failed layer)', async () => {
  // The scope still cleans up, so only the "close() released 0 files" clause can catch it.
  await mustFail('pipeline/leakyInput', pipelineOwnershipProperty(realScope, undefined, { leakyInput: true }), 300);
});

test('test-of-tests: the runPipeline property fails when a failing output leaves partial output behind', async () => {
  await mustFail('pipeline/outputSkipsRollback', pipelineOwnershipProperty(realScope, undefined, { outputSkipsRollback: true }), 300);
});

for (const [name, factory] of variants) {
  test(`test-of-tests: the abandoned-consumer property fails against ${name}`, async () => {
    await mustFail(`abandoned/${name}`, abandonedConsumerProperty(factory), 200);
  });
}

for (const name of ['forgetRelease', 'leakyClose'] as const) {
  test(`test-of-tests: the real-fs property fails against ${name}`, async () => {
    await mustFail(`real-fs/${name}`, realFsProperty((parent) => brokenScopes[name](nodeTempFs, parent)), 50);
  });
}

test('test-of-tests: the real handler passes the same properties (control)', async () => {
  const result = await fc.check(ownershipModelProperty(realScope), { numRuns: 50 });
  assert.equal(result.failed, false, String(result.errorInstance));
});
