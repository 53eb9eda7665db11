/**
 * Test of the tests: the same property bodies, run against deliberately broken handlers,
 * must FAIL. A property that cannot fail proves nothing.
 *
 * - doubleRelease: unlinks every released file a second time, behind the ledger's back;
 * - forgetRelease: marks a file released in the ledger but never unlinks it;
 * - leakyClose: close() marks leftovers released but neither removes them nor sweeps.
 * - leakyTranscode: an Inflate/Compress whose codec fails leaves the new file live.
 *
 * And broken stages around the element model with both forms: an input that keeps the
 * two files of a failed layer, a filter that drops a form without releasing it, a
 * destination that keeps a layer it does not store, one that releases a file twice (a
 * copy-loop misuse), a filter that inflates a layer that came with its tar.
 *
 * `endOnFailure` skips shrinking: we only need to know that a counterexample exists.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fc from 'fast-check';
import { nodeTempFs } from '../src/shell/fs/node-temp-fs.js';
import { interleavedOwnershipProperty, ownershipModelProperty } from './support/ownership-properties.js';
import { abandonedConsumerProperty, pipelineOwnershipProperty } from './support/pipeline-properties.js';
import { nodeLayerCodecs } from '../src/shell/fs/transcode.js';
import { realFsProperty, realFsTranscodeProperty } from './support/real-fs-properties.js';
import { emptyFormsStats, formsAbandonedProperty, formsOwnershipProperty, type FormsMode, transcodeFaultSpecArb } from './support/forms-properties.js';
import { brokenScopes, brokenTranscodeScopes, realScope, type ScopeFactory } from './support/scopes.js';

async function mustFail(name: string, property: fc.IAsyncProperty<unknown> | fc.IAsyncPropertyWithHooks<unknown>, numRuns: number, because?: RegExp): Promise<void> {
  const result = await fc.check(property as fc.IAsyncPropertyWithHooks<unknown>, { numRuns, endOnFailure: true });
  assert.equal(result.failed, true, `${name}: the property should have failed against a broken handler, but ${result.numRuns} runs passed`);
  // It must fail for the right reason (an invariant), not because the harness broke.
  const message = String((result.errorInstance as Error | undefined)?.message ?? result.errorInstance ?? '');
  assert.doesNotMatch(message, /deadlock|TypeError|ReferenceError/, `${name}: failed for an unrelated reason: ${message.slice(0, 500)}`);
  if (because) assert.match(message, because, `${name}: failed, but not for the reason it is broken: ${message.slice(0, 500)}`);
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

test('test-of-tests: the real-fs transcode property fails against a scope that leaks the new file of a failed Inflate/Compress', async () => {
  const leaky = (parent: string) => brokenTranscodeScopes.leakyTranscode(nodeTempFs, parent, nodeLayerCodecs);
  await mustFail('real-fs/leakyTranscode', realFsTranscodeProperty(leaky), 100, /failed and left 1 live file/);
});

// ----- the element model with both forms ------------------------------------------------------

for (const name of ['doubleRelease', 'forgetRelease'] as const) {
  test(`test-of-tests: the forms property fails against ${name}`, async () => {
    await mustFail(`forms/${name}`, formsOwnershipProperty(brokenScopes[name]), 200);
  });
}

for (const name of ['forgetRelease', 'leakyClose'] as const) {
  test(`test-of-tests: the forms abandoned-consumer property fails against ${name}`, async () => {
    await mustFail(`forms-abandoned/${name}`, formsAbandonedProperty(brokenScopes[name]), 200);
  });
}

test('test-of-tests: the forms property fails against a scope that leaks the new file of a failed Inflate/Compress', async () => {
  await mustFail('forms/leakyTranscode', formsOwnershipProperty(brokenTranscodeScopes.leakyTranscode, {}, undefined, transcodeFaultSpecArb), 300, /still owned after the run returned: #\d+ layer-\d+-(tar|gzip|zstd) /);
});

const brokenStages: Array<[string, FormsMode, RegExp]> = [
  ['an input that keeps both files of a layer it fails in', { leakyInput: true }, /still owned after the run returned: #\d+ in-\d+-(tar|blob) \{"_tag":"Live","owner":"input"\}/],
  ['a filter that drops a form without releasing it', { filterLeaksDropped: true }, /still owned after the run returned: #\d+ in-\d+-(tar|blob) \{"_tag":"Live","owner":"filter\[\d\]:keep-/],
  ['a destination that keeps the file of a layer it does not store', { destForgetsUnstored: true }, /still owned after the run returned: .*"owner":"output"/],
  ['a destination that releases a stored layer twice (copy-loop misuse)', { destReleasesTwice: true }, /OwnershipError: output cannot release temp file #\d+ .*already (moved|released)/],
  // A needless Inflate shows as a count the model did not predict, or as an EDIGEST from a bad blob nothing had to inflate.
  ['a filter that inflates a layer that came with its tar (a needless Inflate)', { wastefulInflate: true }, /layer \d+: \d+ inflate\(s\) and \d+ compress\(es\), the model says|nobody injected: OccystrapError: layer \d+ .* uncompresses to/],
];
for (const [what, mode, because] of brokenStages) {
  test(`test-of-tests: the forms property fails with ${what}`, async () => {
    await mustFail(`forms/${JSON.stringify(mode)}`, formsOwnershipProperty(realScope, mode), 400, because);
  });
}

test('test-of-tests: the real handler and stages pass the forms property (control)', async () => {
  const result = await fc.check(formsOwnershipProperty(realScope, {}, emptyFormsStats()), { numRuns: 50 });
  assert.equal(result.failed, false, String(result.errorInstance));
});

test('test-of-tests: the real handler passes the same properties (control)', async () => {
  const result = await fc.check(ownershipModelProperty(realScope), { numRuns: 50 });
  assert.equal(result.failed, false, String(result.errorInstance));
});
