// `occystrap check` and `occystrap search` on registry:// sources (a real
// docker-registry, reached through the recording fault proxy): the manifest checks run,
// fast mode downloads no layer, full mode verifies every layer, a corrupted blob is an
// error result, and search reports the registry image's files.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fixtureIndex } from './fixtures.js';
import { blobPath } from '../registry/harness.js';
import { sample, sampleBehindFaultProxy } from '../support/sample-registry.js';
import { assertOk, cli, workspace } from '../registry/cli.js';
import { errorLines, hexOf } from './cli-helpers.js';

const suite = sampleBehindFaultProxy({ docker: 'sample-docker:v1' });

interface CheckJson {
  image: string;
  tag: string;
  mode: string;
  errors: number;
  warnings: number;
  results: { severity: string; check: string; message: string }[];
}

const has = (r: CheckJson, severity: string, check: string) => r.results.some((x) => x.severity === severity && x.check === check);

describe('check registry://', () => {
  test('fast: manifest and config checks, no layer downloaded', async () => {
    const ws = await workspace('check-reg-fast');
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'check', '--fast', `registry://${suite.proxy.host}/sample:v1`]), ws);
    const report = JSON.parse(r.stdout) as CheckJson;
    assert.equal(report.mode, 'fast');
    assert.equal(report.errors, 0, r.stdout);
    assert.equal(report.image, `${suite.proxy.host}/sample`);
    for (const id of ['schema-version', 'rootfs-type', 'layer-count', 'config-descriptor', 'history-count', 'oci-media-type']) assert.ok(has(report, 'info', id), id);
    const blobGets = suite.proxy.matching(blobPath(), 'GET').filter((q) => q.status === 200);
    assert.ok(blobGets.length >= 1);
    assert.ok(
      blobGets.every((q) => q.path.includes(sample().configDigest as string)),
      `only the config blob is read: ${blobGets.map((q) => q.path).join(', ')}`,
    );
  });

  test('full (OCI media types): config digest and size, every distinct layer verified', async () => {
    const ws = await workspace('check-reg-full');
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'check', `registry://${suite.proxy.host}/sample:v1`]), ws);
    const report = JSON.parse(r.stdout) as CheckJson;
    assert.equal(report.mode, 'full');
    assert.equal(report.errors, 0, r.stdout);
    assert.ok(report.results.some((x) => x.check === 'config-digest' && x.message === `Config digest verified: ${sample().configDigest}`));
    assert.ok(has(report, 'info', 'config-size'));
    const verified = report.results.filter((x) => x.check === 'diff-id' && / diff_id verified$/.test(x.message));
    assert.equal(verified.length, new Set(sample().diffIds).size);
  });

  test('full (Docker media types), text: ends with the Check complete line', async () => {
    const ws = await workspace('check-reg-docker');
    const r = assertOk(await cli(ws, ['--insecure', 'check', `registry://${suite.proxy.host}/sample-docker:v1`]), ws);
    assert.match(r.stdout, /\[docker-media-type\] Image uses Docker v2 media types/);
    assert.match(r.stdout, /\nCheck complete \(full\): 0 error\(s\), 0 warning\(s\)\n$/);
  });

  test('a corrupted layer blob is an error result, not a crash (exit 1)', async () => {
    const ws = await workspace('check-reg-corrupt');
    const layer = (sample().layers ?? [])[1];
    assert.ok(layer);
    suite.proxy.setRules([{ method: 'GET', path: new RegExp(`/blobs/${layer.digest}`), times: Infinity, fault: { kind: 'corrupt' } }]);
    const r = await cli(ws, ['--insecure', '--retries', '0', '-O', 'json', 'check', `registry://${suite.proxy.host}/sample:v1`]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.deepEqual(errorLines(r.stderr), []);
    const report = JSON.parse(r.stdout) as CheckJson;
    assert.ok(report.errors >= 1);
    assert.ok(
      report.results.some((x) => x.severity === 'error' && (x.check === 'blob-digest' || x.check === 'diff-id' || x.check === 'source') && x.message.includes(layer.digest)),
      JSON.stringify(report.results.filter((x) => x.severity === 'error')),
    );
  });
});

describe('search registry://', () => {
  test('finds the file; names the image without the registry host and the layer by its blob digest, as occystrap does', async () => {
    const ws = await workspace('search-reg');
    const r = assertOk(await cli(ws, ['--insecure', 'search', '--script-friendly', `registry://${suite.proxy.host}/sample:v1`, 'data.bin']), ws);
    const blob = sample().layers?.[1]?.digest as string;
    assert.equal(r.stdout, `sample:v1:${hexOf(blob)}:${fixtureIndex().sample.notable.bigFile.path}\n`);
  });
});
