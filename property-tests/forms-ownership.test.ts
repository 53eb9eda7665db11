/**
 * Ownership with both layer forms: random pipelines whose layers carry a tar, a blob or
 * both (two temp files), filters that keep one form and drop the other, read the tar
 * (inflated lazily), trim to what the stages after asked, the real search and exclude
 * filters, into destinations on the real copy loop that need the tar or a blob; the
 * `Inflate`/`Compress` effects run through the real TempScope with memory codecs. Faults
 * in fs operations, codecs and stages, early stops, aborts, scheduler-chosen
 * interleavings. The property bodies live in ./support/forms-properties.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fc from 'fast-check';
import { emptyFormsStats, formsAbandonedProperty, formsRunSpecArb, formsOwnershipProperty, transcodeCountProperty, transcodeFaultSpecArb } from './support/forms-properties.js';
import { realScope } from './support/scopes.js';

test('both forms: every temp file ends moved or released once; the destination gets exactly its form; transcodes only where a form is missing', async () => {
  const stats = emptyFormsStats();
  await fc.assert(formsOwnershipProperty(realScope, {}, stats), { numRuns: 1000 });
  // Every scenario the property is about must actually have run.
  assert.ok(stats.ok > 50 && stats.failed > 30, `runs: ${JSON.stringify(stats)}`);
  assert.ok(stats.inflates > 5 && stats.compresses > 20, `transcodes: ${JSON.stringify(stats)}`);
  assert.ok(stats.passthrough > 3, `blob passthrough runs: ${JSON.stringify(stats)}`);
  assert.ok(stats.rewritten > 3, `rewritten layers: ${JSON.stringify(stats)}`);
  assert.ok(stats.placed > 0, `layers written into a place the destination offered: ${JSON.stringify(stats)}`);
});

test('both forms, codec faults and bad blobs: an Inflate or Compress that fails (before, during or after writing, or EDIGEST) leaves no file behind', async () => {
  const stats = emptyFormsStats();
  await fc.assert(formsOwnershipProperty(realScope, {}, stats, transcodeFaultSpecArb), { numRuns: 600 });
  assert.ok(stats.codecFaultsFired > 30 && stats.ok > 20, `runs: ${JSON.stringify(stats)}`);
  // A blob that does not uncompress to its diff_id, inflated: EDIGEST, and the new tar released.
  assert.ok(stats.digestErrors > 0, `bad blobs inflated: ${JSON.stringify(stats)}`);
});

test('both forms, scope.close() racing the run (a signal handler), transcodes in flight: the invariant holds', async () => {
  const stats = emptyFormsStats();
  await fc.assert(formsOwnershipProperty(realScope, { closeDuringRun: true }, stats, transcodeFaultSpecArb.map((s) => ({ ...s, codecFaults: s.codecFaults.slice(0, 1) }))), { numRuns: 400 });
  assert.ok(stats.releasedByClose > 0, `close never caught a run holding files: ${JSON.stringify(stats)}`);
});

test('places offered (as tar:// offers its archive): every layer written into the place, claims in manifest order, faults and aborts included: the invariant holds', async () => {
  const stats = emptyFormsStats();
  const placing = formsRunSpecArb.map((spec) =>
    spec.output.kind === 'dest' ? { ...spec, filters: [], input: { ...spec.input, kind: 'asked' as const }, output: { ...spec.output, needs: 'tar' as const, offers: true, consumes: false } } : spec,
  );
  await fc.assert(formsOwnershipProperty(realScope, {}, stats, placing), { numRuns: 400 });
  assert.ok(stats.placed > 100 && stats.ok > 50 && stats.failed > 30, `runs: ${JSON.stringify(stats)}`);
});

test('consumers offered (as oci:// offers its engine): every layer streamed into a consumer one at a time in manifest order, faults and aborts included: the invariant holds', async () => {
  const stats = emptyFormsStats();
  const consuming = formsRunSpecArb.map((spec) =>
    spec.output.kind === 'dest' ? { ...spec, filters: [], input: { ...spec.input, kind: 'asked' as const }, output: { ...spec.output, needs: 'tar' as const, consumes: true } } : spec,
  );
  await fc.assert(formsOwnershipProperty(realScope, {}, stats, consuming), { numRuns: 400 });
  assert.ok(stats.consumed > 100 && stats.ok > 50 && stats.failed > 30, `runs: ${JSON.stringify(stats)}`);
});

test('a blob destination fed blobs performs no Inflate and no Compress; fed tars, one Compress per distinct stored layer', async () => {
  await fc.assert(transcodeCountProperty(realScope), { numRuns: 200 });
});

test('both forms, abandoned consumer (iterator dropped without return()): scope.close() releases both files of what the stages held', async () => {
  const stats = { releasedByScope: [] as number[] };
  await fc.assert(formsAbandonedProperty(realScope, stats), { numRuns: 150 });
  assert.ok(stats.releasedByScope.some((n) => n > 1), 'no run left files for the scope: the scenario is not exercised');
});
