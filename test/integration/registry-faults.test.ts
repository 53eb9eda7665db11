// Faults injected by a loopback proxy (test/registry/harness.ts
// startFaultProxy) in front of a real docker-registry: 429 + Retry-After
// (seconds and HTTP date), 503 twice, --retries 0, a reset connection, a
// connection cut mid-blob (must resume with Range), a redirect to another
// origin (no Authorization may arrive there), corrupted blobs (digest error,
// nothing left behind). Each test says what it injected and checks what the
// proxy recorded.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hexOf, strayTempFiles, summaryLines } from './cli-helpers.js';
import { blobPath, DEFAULT_USER, fixtureBlob, manifestPath } from '../registry/harness.js';
import { bigLayer, sample, sampleBehindFaultProxy } from '../support/sample-registry.js';
import { assertDirStore, assertFailsOneLine, assertOk, cli, stdoutJson, workspace, type RegistrySummary } from '../registry/cli.js';

const suite = sampleBehindFaultProxy();
const REF = suite.ref;
const expectedStore = suite.expectedStore;

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

describe('retries', () => {
  test('429 + Retry-After: 1 on the manifest: waits, succeeds, the summary counts the retry and the 429', async (t) => {
    suite.proxy.setRules([{ method: 'GET', path: manifestPath('sample', 'v1'), fault: { kind: 'rate-limit', retryAfter: 1 } }]);
    const ws = await workspace('fault-429');
    const store = ws.out('store');
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `registry://${REF()}`, `dir://${store}`]), ws);
    await assertDirStore(store, expectedStore());
    const gets = suite.proxy.matching(manifestPath('sample', 'v1'), 'GET');
    assert.deepEqual(
      gets.map((q) => q.status),
      [429, 200],
    );
    const waited = (gets[1]?.at ?? 0) - (gets[0]?.at ?? 0);
    assert.ok(waited >= 900, `Retry-After: 1 honoured (waited ${waited} ms)`);
    const summary = stdoutJson<RegistrySummary>(r);
    assert.equal(summary.retries, 1, 'summary.retries');
    assert.equal(summary.rateLimited, 1, 'summary.rateLimited');
    const line = summaryLines(r.stderr)[0] ?? '';
    assert.match(line, /\b1 retr/, `the text summary counts the retry: ${line}`);
    t.diagnostic(line);
  });

  test('429 with Retry-After as an HTTP date on a blob: waits until then, succeeds', async () => {
    const until = new Date(Date.now() + 2500);
    suite.proxy.setRules([{ method: 'GET', path: blobPath(bigLayer().digest), fault: { kind: 'rate-limit', retryAfter: until } }]);
    const ws = await workspace('fault-429-date');
    const store = ws.out('store');
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `registry://${REF()}`, `dir://${store}`]), ws);
    await assertDirStore(store, expectedStore());
    const gets = suite.proxy.matching(blobPath(bigLayer().digest), 'GET');
    assert.deepEqual(
      gets.map((q) => q.status),
      [429, 200],
    );
    // The date has a resolution of one second: the retry comes no earlier than (until rounded down) - slack.
    assert.ok((gets[1]?.at ?? 0) >= Math.floor(until.getTime() / 1000) * 1000 - 100, 'waited for the date');
    const summary = stdoutJson<RegistrySummary>(r);
    assert.equal(summary.rateLimited, 1);
    assert.ok(summary.retries >= 1);
  });

  test('503 twice on a blob: retried with backoff, succeeds, retries counted', async () => {
    suite.proxy.setRules([{ method: 'GET', path: blobPath(bigLayer().digest), times: 2, fault: { kind: 'status', status: 503 } }]);
    const ws = await workspace('fault-503');
    const store = ws.out('store');
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `registry://${REF()}`, `dir://${store}`]), ws);
    await assertDirStore(store, expectedStore());
    assert.deepEqual(
      suite.proxy.matching(blobPath(bigLayer().digest), 'GET').map((q) => q.status),
      [503, 503, 200],
    );
    const summary = stdoutJson<RegistrySummary>(r);
    assert.equal(summary.retries, 2);
    assert.equal(summary.rateLimited, 0);
  });

  test('--retries 0 and one 503 on the manifest: exit 1, one line, nothing written', async () => {
    suite.proxy.setRules([{ method: 'GET', path: manifestPath('sample', 'v1'), fault: { kind: 'status', status: 503 } }]);
    const ws = await workspace('fault-503-noretry');
    const store = ws.out('store');
    const r = await cli(ws, ['--insecure', '--retries', '0', 'process', `registry://${REF()}`, `dir://${store}`]);
    const line = assertFailsOneLine(r, ws);
    assert.match(line, /503/);
    assert.equal(suite.proxy.matching(manifestPath('sample', 'v1'), 'GET').length, 1, 'no retry');
    assert.equal(existsSync(store), false);
  });

  test('OCCYSTRAP_RETRIES=0 and a 503 on a blob: exit 1, the store is not left behind', async () => {
    suite.proxy.setRules([{ method: 'GET', path: blobPath(bigLayer().digest), times: Infinity, fault: { kind: 'status', status: 503 } }]);
    const ws = await workspace('fault-503-env');
    const store = ws.out('store');
    const r = await cli(ws, ['--insecure', 'process', `registry://${REF()}`, `dir://${store}`], { env: { OCCYSTRAP_RETRIES: '0' } });
    const line = assertFailsOneLine(r, ws);
    assert.match(line, /503/);
    assert.equal(suite.proxy.matching(blobPath(bigLayer().digest), 'GET').length, 1);
    assert.equal(existsSync(store), false);
  });

  test('a connection reset on the config blob: retried, succeeds', async () => {
    suite.proxy.setRules([{ method: 'GET', path: blobPath(sample().configDigest as string), fault: { kind: 'reset' } }]);
    const ws = await workspace('fault-reset');
    const store = ws.out('store');
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `registry://${REF()}`, `dir://${store}`]), ws);
    await assertDirStore(store, expectedStore());
    const gets = suite.proxy.matching(blobPath(sample().configDigest as string), 'GET');
    assert.deepEqual(
      gets.map((q) => q.fault ?? q.status),
      ['reset', 200],
    );
    assert.ok(stdoutJson<RegistrySummary>(r).retries >= 1);
  });
});

/** The start offset of a `Range: bytes=N-` header. */
function resumedAt(range: string | undefined): number {
  const m = /^bytes=(\d+)-$/.exec(range ?? '');
  assert.ok(m, `the follow-up request has Range: bytes=N- (got ${String(range)})`);
  return Number(m[1]);
}

/**
 * Resumed, not restarted: the client may restart a little before the cut (bytes it
 * had received but not yet written to its temp file are fetched again), never after
 * it and never from zero. The slack allowed is 256 KiB of in-flight buffers.
 */
function assertResumedNear(start: number, cutAt: number): void {
  assert.ok(start > 0, 'not from zero');
  assert.ok(start <= cutAt, `not past the bytes received (${start} > ${cutAt})`);
  assert.ok(cutAt - start <= 256 * 1024, `resumed at ${start}, ${cutAt - start} bytes before the cut at ${cutAt}`);
}

describe('resume', () => {
  test('connection cut after 1 000 000 bytes of the 2.1 MB layer: resumed with Range: bytes=N- (N near 1000000)', async (t) => {
    const big = bigLayer();
    const k = 1_000_000;
    suite.proxy.setRules([{ method: 'GET', path: blobPath(big.digest), fault: { kind: 'cut', afterBytes: k } }]);
    const ws = await workspace('fault-cut');
    const store = ws.out('store');
    assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `registry://${REF()}`, `dir://${store}`]), ws);
    await assertDirStore(store, expectedStore());
    const gets = suite.proxy.matching(blobPath(big.digest), 'GET');
    assert.equal(gets[0]?.fault, 'cut');
    assert.equal(gets[0]?.bytes, k, 'the first response was cut after K bytes');
    assert.equal(gets.length, 2, `one follow-up request: ${JSON.stringify(gets.map((q) => [q.status, q.range]))}`);
    const start = resumedAt(gets[1]?.range);
    assertResumedNear(start, k);
    t.diagnostic(`cut after ${k} bytes; the follow-up asked Range: bytes=${start}-`);
    assert.equal(gets[1]?.status, 206);
    assert.equal(gets[1]?.bytes, big.size - start, 'the rest of the blob, once');
  });

  test('cut twice (at 300 000, then 400 000 more): two resumes, right bytes', async (t) => {
    const big = bigLayer();
    suite.proxy.setRules([
      { method: 'GET', path: blobPath(big.digest), fault: { kind: 'cut', afterBytes: 300_000 } },
      { method: 'GET', path: blobPath(big.digest), fault: { kind: 'cut', afterBytes: 400_000 } },
    ]);
    const ws = await workspace('fault-cut2');
    const store = ws.out('store');
    assertOk(await cli(ws, ['--insecure', 'process', `registry://${REF()}`, `dir://${store}`]), ws);
    await assertDirStore(store, expectedStore());
    const gets = suite.proxy.matching(blobPath(big.digest), 'GET');
    assert.equal(gets.length, 3, JSON.stringify(gets.map((q) => [q.status, q.range, q.bytes])));
    assert.equal(gets[0]?.range, undefined);
    const first = resumedAt(gets[1]?.range);
    assertResumedNear(first, 300_000);
    const second = resumedAt(gets[2]?.range);
    assertResumedNear(second, first + 400_000);
    t.diagnostic(`resumed at ${first}, then at ${second}`);
    assert.equal(gets[2]?.bytes, big.size - second);
  });
});

describe('redirects', () => {
  const auth = sampleBehindFaultProxy({ registry: { auth: 'htpasswd' }, creds: DEFAULT_USER });

  /** Pulls the sample through the proxy in front of the htpasswd registry, with credentials; checks the store. */
  async function pullWithCredentials(name: string): Promise<void> {
    const ws = await workspace(name);
    const store = ws.out('store');
    assertOk(
      await cli(ws, ['--insecure', '--username', DEFAULT_USER.username, '--password', DEFAULT_USER.password, 'process', `registry://${auth.ref()}`, `dir://${store}`]),
      ws,
    );
    await assertDirStore(store, auth.expectedStore());
  }

  test('every blob GET redirected (307) to another origin: succeeds; no Authorization arrives there', async () => {
    auth.proxy.setRules([{ method: 'GET', path: blobPath(), times: Infinity, fault: { kind: 'redirect' } }]);
    await pullWithCredentials('fault-redirect');
    const blobGets = auth.proxy.matching(blobPath(), 'GET');
    assert.ok(blobGets.length >= 1 && blobGets.every((q) => q.status === 307));
    assert.ok(blobGets.every((q) => q.authorization?.startsWith('Basic ')), 'the registry itself got credentials');
    const store2 = auth.proxy.objectStore.requests;
    const distinct = new Set([sample().configDigest as string, ...(sample().layers ?? []).map((l) => l.digest)]);
    assert.equal(new Set(store2.map((q) => /([0-9a-f]{64})/.exec(q.path)?.[1])).size, distinct.size, 'every blob came from the object store');
    for (const q of store2) {
      assert.equal(q.headers.authorization, undefined, `no Authorization sent to ${q.path}`);
      assert.equal(q.headers.cookie, undefined);
    }
  });

  test('redirected and then cut: resumed with Range at the object store, still no Authorization', async () => {
    const big = bigLayer();
    // The registry's first answer for the big layer is cut after 500 000 bytes; the
    // follow-up request is redirected, so the Range must reach the object store
    // (and Authorization must not).
    auth.proxy.setRules([
      { method: 'GET', path: blobPath(big.digest), fault: { kind: 'cut', afterBytes: 500_000 } },
      { method: 'GET', path: blobPath(big.digest), times: Infinity, fault: { kind: 'redirect' } },
    ]);
    await pullWithCredentials('fault-redirect-cut');
    const atStore = auth.proxy.objectStore.requests.filter((q) => q.path.includes(hexOf(big.digest)));
    const trace = JSON.stringify({
      proxy: auth.proxy.matching(blobPath(big.digest)).map((q) => [q.status, q.fault, q.range, q.bytes]),
      store: atStore.map((q) => [q.status, q.headers.range, q.bytes]),
    });
    assert.equal(atStore.length, 1, trace);
    assertResumedNear(resumedAt(atStore[0]?.headers.range), 500_000);
    assert.equal(atStore[0]?.status, 206);
    assert.equal(atStore[0]?.headers.authorization, undefined);
  });
});

describe('corruption', () => {
  test('one byte of the 2.1 MB layer flipped (every time): exit 1, one line naming the blob and both digests, nothing left', async () => {
    const big = bigLayer();
    const corrupted = Buffer.from(fixtureBlob(big.digest));
    corrupted[4] = (corrupted[4] as number) ^ 0xff;
    const actual = sha256(corrupted);
    suite.proxy.setRules([{ method: 'GET', path: blobPath(big.digest), times: Infinity, fault: { kind: 'corrupt', offset: 4 } }]);
    const ws = await workspace('fault-corrupt');
    const store = ws.out('store');
    const r = await cli(ws, ['--insecure', 'process', `registry://${REF()}`, `dir://${store}`]);
    const line = assertFailsOneLine(r, ws);
    assert.ok(line.includes(big.digest), `names the blob / expected digest: ${line}`);
    assert.ok(line.includes(actual) || line.includes(hexOf(actual)), `names the digest received (${actual}): ${line}`);
    assert.equal(existsSync(store), false, 'no output left');
    assert.ok(suite.proxy.matching(blobPath(big.digest), 'GET').length <= 5, 'bounded re-downloads');
  });

  test('a byte flipped inside the compressed data (gzip fails mid-stream): exit 1 naming the blob, no hang, nothing left', async () => {
    const big = bigLayer();
    suite.proxy.setRules([{ method: 'GET', path: blobPath(big.digest), times: Infinity, fault: { kind: 'corrupt', offset: 100 } }]);
    const ws = await workspace('fault-corrupt-inflate');
    const store = ws.out('store');
    const r = await cli(ws, ['--insecure', 'process', `registry://${REF()}`, `dir://${store}`]);
    const line = assertFailsOneLine(r, ws);
    assert.ok(line.includes(big.digest), `names the blob: ${line}`);
    assert.equal(existsSync(store), false, 'no output left');
  });

  test('corrupted config blob into tar://: exit 1, one line with both digests, no archive or temp file left', async () => {
    const configDigest = sample().configDigest as string;
    const corrupted = Buffer.from(fixtureBlob(configDigest));
    corrupted[10] = (corrupted[10] as number) ^ 0xff;
    const actual = sha256(corrupted);
    suite.proxy.setRules([{ method: 'GET', path: blobPath(configDigest), times: Infinity, fault: { kind: 'corrupt', offset: 10 } }]);
    const ws = await workspace('fault-corrupt-config');
    const out = ws.out('image.tar');
    const r = await cli(ws, ['--insecure', 'process', `registry://${REF()}`, `tar://${out}`]);
    const line = assertFailsOneLine(r, ws);
    assert.ok(line.includes(configDigest), line);
    assert.ok(line.includes(actual) || line.includes(hexOf(actual)), `${actual}: ${line}`);
    assert.equal(existsSync(out), false);
    assert.deepEqual(strayTempFiles(ws.base), []);
  });
});

describe('layers written straight into tar:// (every layer placed: OCCYSTRAP_TAR_PLACE_MIN_BYTES=0)', () => {
  const placeAll = { env: { OCCYSTRAP_TAR_PLACE_MIN_BYTES: '0' } };
  const placeNone = { env: { OCCYSTRAP_TAR_PLACE_MIN_BYTES: 'off' } };

  test('cut mid-blob: resumed into the archive; the archive is byte for byte the one spooled layers make', async () => {
    const big = bigLayer();
    suite.proxy.setRules([{ method: 'GET', path: blobPath(big.digest), fault: { kind: 'cut', afterBytes: 700_000 } }]);
    const ws = await workspace('place-cut');
    const placed = ws.out('placed.tar');
    const spooled = ws.out('spooled.tar');
    assertOk(await cli(ws, ['--insecure', 'process', `registry://${REF()}`, `tar://${placed}`], placeAll), ws);
    const gets = suite.proxy.matching(blobPath(big.digest), 'GET');
    assert.equal(gets[0]?.fault, 'cut');
    assert.equal(gets.length, 2, 'resumed once');
    suite.proxy.setRules([]);
    assertOk(await cli(ws, ['--insecure', 'process', `registry://${REF()}`, `tar://${spooled}`], placeNone), ws);
    assert.equal(sha256(readFileSync(placed)), sha256(readFileSync(spooled)), 'placed and spooled archives differ');
    assert.deepEqual(strayTempFiles(ws.base), []);
  });

  test('gzip fails mid-stream in a placed layer: exit 1 naming the blob, no archive, no temp file', async () => {
    const big = bigLayer();
    suite.proxy.setRules([{ method: 'GET', path: blobPath(big.digest), times: Infinity, fault: { kind: 'corrupt', offset: 100 } }]);
    const ws = await workspace('place-corrupt');
    const out = ws.out('image.tar');
    const line = assertFailsOneLine(await cli(ws, ['--insecure', 'process', `registry://${REF()}`, `tar://${out}`], placeAll), ws);
    assert.ok(line.includes(big.digest), `names the blob: ${line}`);
    assert.equal(existsSync(out), false);
    assert.deepEqual(strayTempFiles(ws.base), []);
  });
});
