// registry:// as a destination, against a real docker-registry (distribution 2.8) behind
// the recording fault proxy: pushes from tar:// and registry:// sources are read back by
// skopeo (manifest, config, diff_ids), a second push sends no blob bytes, an unchanged
// registry copy keeps the source's manifest digest, chunked uploads resume after a cut,
// a 5xx on the manifest PUT is retried, and a failed push leaves no tag and no open
// upload session. Across registries, an unchanged blob is uploaded while it downloads
// (one PUT fed by the download); a streamed upload cut mid-body falls back to the file.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { cleanupTmpDirs, fixture, fixturePath, podman, skopeo, tmpDir } from './fixtures.js';
import { assertFailsOneLine, assertOk, cli, isolatedEnv, stdoutJson, workspace, type RegistrySummary } from '../registry/cli.js';
import { startOccystrap } from './cli-helpers.js';
import { bigLayer, sample, sampleBehindFaultProxy } from '../support/sample-registry.js';
import { blobPath, type FaultProxy, openUploadSessions, startFaultProxy } from '../registry/harness.js';

const suite = sampleBehindFaultProxy();

interface Inspect {
  Digest: string;
  Layers: string[];
}

async function inspect(ref: string): Promise<Inspect> {
  const r = await skopeo(['inspect', '--tls-verify=false', `docker://${ref}`]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Inspect;
}

async function rawManifest(ref: string): Promise<{ mediaType: string; config: { digest: string }; layers: { mediaType: string; digest: string }[] }> {
  const r = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** The diff_ids of the image at `ref`, as skopeo reads its config. */
async function diffIdsOf(ref: string): Promise<string[]> {
  const r = await skopeo(['inspect', '--config', '--tls-verify=false', `docker://${ref}`]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
}

/** skopeo copies the pushed image back out whole (every blob read and verified). */
async function copyBack(ref: string, dir: string): Promise<void> {
  const r = await skopeo(['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}:back`]);
  assert.equal(r.code, 0, r.stderr);
}

const openUploads = (repository: string) => openUploadSessions(suite.registry, repository);

const uploadBodies = () => suite.proxy.requests.filter((q) => (q.method === 'PUT' || q.method === 'PATCH') && /\/blobs\/uploads\//.test(q.path));
const blobBytesSent = () => uploadBodies().reduce((n, q) => n + q.requestBytes, 0);

describe('registry:// destination', () => {
  test('tar:// -> registry://: skopeo reads it back with the same config and diff_ids; a Docker source gets a Docker manifest', async () => {
    const ws = await workspace('push-tar');
    const ref = `${suite.proxy.host}/pushed/classic:v1`;
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${ref}`]), ws);
    const facts = fixture('docker-classic.tar').images[0];
    assert.ok(facts);
    const manifest = await rawManifest(ref);
    assert.equal(manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(manifest.config.digest, facts.configDigest);
    assert.ok(manifest.layers.every((l) => l.mediaType === 'application/vnd.docker.image.rootfs.diff.tar.gzip'));
    assert.deepEqual(await diffIdsOf(ref), facts.diffIds);
    await copyBack(ref, ws.out('back'));
    const summary = stdoutJson<RegistrySummary>(r);
    assert.match(String(summary.destination), new RegExp(`^registry://${suite.proxy.host.replace(/\./g, '\\.')}/pushed/classic:v1@sha256:[0-9a-f]{64}$`));
    assert.equal((await inspect(ref)).Digest, String(summary.destination).split('@')[1]);
    assert.deepEqual(openUploads('pushed/classic'), []);
  });

  test('podman pulls a pushed image and sees the source\'s image id and layers', async () => {
    const ws = await workspace('push-podman');
    const ref = `${suite.proxy.host}/pushed/for-podman:v1`;
    assertOk(await cli(ws, ['--insecure', 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${ref}`]), ws);
    const state = await tmpDir('podman-state');
    const env = { ...process.env, OCCYSTRAP_PODMAN_STATE: state };
    try {
      const pull = await podman(['pull', '-q', '--tls-verify=false', ref], { env, timeoutMs: 120_000 });
      assert.equal(pull.code, 0, pull.stderr);
      const inspect = await podman(['image', 'inspect', '--format', '{{.Id}} {{json .RootFS.Layers}}', ref], { env });
      assert.equal(inspect.code, 0, inspect.stderr);
      const [id, layers] = inspect.stdout.trim().split(' ', 2) as [string, string];
      const facts = fixture('docker-classic.tar').images[0];
      assert.equal(`sha256:${id}`, facts?.configDigest, 'the image id is the config digest');
      assert.deepEqual(JSON.parse(layers), facts?.diffIds, 'the layers, in order (the repeated one too)');
    } finally {
      await cleanupTmpDirs(state);
    }
  });

  test('the same push again: HEADs and one manifest PUT, no blob bytes', async () => {
    const ws = await workspace('push-again');
    const ref = `${suite.proxy.host}/pushed/again:v1`;
    assertOk(await cli(ws, ['--insecure', 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${ref}`]), ws);
    const first = await inspect(ref);
    suite.proxy.requests.length = 0;
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${ref}`]), ws);
    assert.deepEqual(uploadBodies().map((q) => `${q.method} ${q.path}`), [], 'no upload');
    assert.equal(suite.proxy.requests.filter((q) => q.method === 'POST').length, 0, 'no upload session opened');
    assert.deepEqual(
      suite.proxy.requests.filter((q) => q.method === 'PUT').map((q) => q.path),
      ['/v2/pushed/again/manifests/v1'],
    );
    assert.equal((await inspect(ref)).Digest, first.Digest, 'the same manifest');
    assert.equal(stdoutJson<RegistrySummary>(r).bytes, 0);
  });

  test('registry:// -> registry:// on the same registry, no filter: blobs are mounted, not moved; the manifest digest is the source\'s', async () => {
    const ws = await workspace('push-copy');
    const dest = `${suite.proxy.host}/copies/sample:v1`;
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `registry://${suite.ref()}`, `registry://${dest}`]), ws);
    const summary = stdoutJson<RegistrySummary>(r);
    assert.equal(summary['inflated'], 0, 'nothing decompressed');
    assert.equal(summary['compressed'], 0, 'nothing recompressed');
    assert.equal(summary['downloaded'], 0, 'no layer blob downloaded');
    assert.equal(blobBytesSent(), 0, 'no layer blob uploaded');
    const mounts = suite.proxy.requests.filter((q) => q.method === 'POST' && /[?&]mount=sha256%3A[0-9a-f]{64}&from=sample$/.test(q.path));
    assert.equal(mounts.length, new Set(sample().layers?.map((l) => l.digest)).size + 1, 'one mount per distinct layer blob, and the config');
    assert.ok(mounts.every((q) => q.status === 201));
    assert.equal((await inspect(dest)).Digest, sample().manifestDigest);
    await copyBack(dest, ws.out('back'));
    // A second copy: the blobs are there, so the source's are not even downloaded.
    suite.proxy.requests.length = 0;
    const again = stdoutJson<RegistrySummary>(assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `registry://${suite.ref()}`, `registry://${dest}`]), ws));
    assert.equal(again['downloaded'], 0);
    assert.equal(blobBytesSent(), 0);
  });

  test('with a filter: rewritten layers are compressed and pushed, and read back with the new diff_ids', async () => {
    const ws = await workspace('push-filter');
    const dest = `${suite.proxy.host}/filtered/sample:v1`;
    assertOk(await cli(ws, ['--insecure', 'process', `registry://${suite.ref()}`, `registry://${dest}`, '-f', 'normalize-timestamps:ts=0']), ws);
    const ids = await diffIdsOf(dest);
    assert.equal(ids.length, sample().diffIds.length);
    assert.notDeepEqual(ids, sample().diffIds, 'the layers were rewritten');
    await copyBack(dest, ws.out('back'));
  });

  test('zstd: an OCI manifest with zstd layers that skopeo copies back', async () => {
    const ws = await workspace('push-zstd');
    const dest = `${suite.proxy.host}/zstd/classic:v1`;
    assertOk(await cli(ws, ['--insecure', 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${dest}?compression=zstd`]), ws);
    const manifest = await rawManifest(dest);
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.ok(manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd'));
    assert.deepEqual(await diffIdsOf(dest), fixture('docker-classic.tar').images[0]?.diffIds);
    await copyBack(dest, ws.out('back'));
  });

  test('format=docker with zstd is refused in one line, before anything is pushed', async () => {
    const ws = await workspace('push-zstd-docker');
    const dest = `${suite.proxy.host}/refused/classic:v1`;
    const line = assertFailsOneLine(await cli(ws, ['--insecure', 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${dest}?compression=zstd&format=docker`]), ws);
    assert.match(line, /a Docker v2 manifest cannot carry zstd layers/);
    const r = await skopeo(['inspect', '--tls-verify=false', `docker://${dest}`]);
    assert.notEqual(r.code, 0, 'no tag');
  });
});

describe('registry:// destination under faults', () => {
  // distribution 2.8 cannot resume a session after a broken PATCH: its upload state (in the
  // URL) no longer matches what it stored, so the status GET answers 404 BLOB_UPLOAD_INVALID.
  // The push then starts that blob again in a new session; the resume from a reported
  // offset is proven against a registry that can (test/unit/registry-push.test.ts).
  test('chunked upload cut mid-chunk: the status is asked for; distribution cannot resume, so the blob starts again in a new session', async () => {
    const ws = await workspace('push-chunk-cut');
    const dest = `${suite.proxy.host}/chunked/sample:v1`;
    // The second PATCH (of the big layer's chunks) loses its connection after 50 000 bytes.
    suite.proxy.setRules([{ method: 'PATCH', path: /\/blobs\/uploads\//, skip: 1, fault: { kind: 'cut-upload', afterBytes: 50_000 } }]);
    const r = assertOk(
      await cli(ws, ['--insecure', '-j', '1', 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${dest}`], { env: { OCCYSTRAP_PUSH_CHUNK_BYTES: '300000' } }),
      ws,
    );
    const patches = suite.proxy.requests.filter((q) => q.method === 'PATCH');
    assert.ok(patches.length > 3, `chunks were sent: ${patches.length}`);
    const cut = patches.find((q) => q.fault === 'cut-upload');
    assert.ok(cut, 'the cut happened');
    const status = suite.proxy.requests.filter((q) => q.method === 'GET' && /\/blobs\/uploads\//.test(q.path));
    assert.ok(status.length >= 1, 'the upload status was asked for');
    assert.equal(status[0]?.status, 404, 'distribution cannot resume the broken session');
    const cutAt = suite.proxy.requests.indexOf(cut);
    const restart = suite.proxy.requests.slice(cutAt).find((q) => q.method === 'POST');
    assert.ok(restart, 'a new upload session after the cut');
    const after = suite.proxy.requests.slice(suite.proxy.requests.indexOf(restart)).find((q) => q.method === 'PATCH');
    assert.equal(after?.headers['content-range'], '0-299999', 'the blob starts again from byte 0 in the new session');
    assert.ok(suite.proxy.requests.slice(cutAt).some((q) => q.method === 'DELETE'), 'the broken session was cancelled');
    assert.deepEqual(await diffIdsOf(dest), fixture('docker-classic.tar').images[0]?.diffIds);
    await copyBack(dest, ws.out('back'));
    // Only the broken session is left: its DELETE was sent, and distribution refused it for
    // the same reason (its purge removes such sessions later).
    const deletes = suite.proxy.requests.filter((q) => q.method === 'DELETE');
    assert.equal(deletes.length, 1);
    assert.equal(deletes[0]?.status, 404);
    assert.equal(openUploads('chunked/sample').length, 1);
    void r;
  });

  test('a 503 on the manifest PUT is retried; the push succeeds', async () => {
    const ws = await workspace('push-manifest-503');
    const dest = `${suite.proxy.host}/retried/classic:v1`;
    suite.proxy.setRules([{ method: 'PUT', path: /\/manifests\//, fault: { kind: 'status', status: 503 } }]);
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${dest}`]), ws);
    assert.equal(suite.proxy.requests.filter((q) => q.method === 'PUT' && /\/manifests\//.test(q.path)).length, 2);
    assert.ok((stdoutJson<RegistrySummary>(r).retries as number) >= 1);
    await inspect(dest);
  });

  test('a blob upload the registry keeps refusing: exit 1, one line, no tag, no open upload session', async () => {
    const ws = await workspace('push-refused');
    const dest = `${suite.proxy.host}/broken/classic:v1`;
    suite.proxy.setRules([{ method: 'PUT', path: /\/blobs\/uploads\/.*digest=/, times: Infinity, fault: { kind: 'status', status: 400, body: JSON.stringify({ errors: [{ code: 'DIGEST_INVALID', message: 'injected' }] }) } }]);
    const line = assertFailsOneLine(await cli(ws, ['--insecure', 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${dest}`]), ws);
    assert.match(line, /registry:\/\/.*broken\/classic:v1: uploading blob sha256:[0-9a-f]{64}: HTTP 400: DIGEST_INVALID injected/);
    assert.equal(suite.proxy.requests.filter((q) => q.method === 'PUT' && /\/manifests\//.test(q.path)).length, 0, 'no manifest put');
    const r = await skopeo(['inspect', '--tls-verify=false', `docker://${dest}`]);
    assert.notEqual(r.code, 0, 'no tag');
    assert.ok(suite.proxy.requests.some((q) => q.method === 'DELETE'), 'open sessions were cancelled');
    assert.deepEqual(openUploads('broken/classic'), []);
  });
});

describe('registry:// -> registry:// across registries: blobs uploaded while they download', () => {
  // The source is the same registry through a second proxy: another host, so nothing can
  // be mounted, and both sides' requests are recorded with their times.
  let source: FaultProxy | undefined;
  before(async () => {
    source = await startFaultProxy(suite.registry.url);
  });
  after(async () => {
    await source?.stop();
  });
  beforeEach(() => {
    source?.setRules([]);
    if (source) source.requests.length = 0;
  });
  const from = () => {
    assert.ok(source);
    return source;
  };
  const blobUpload = (digest: string) => uploadBodies().filter((q) => q.path.includes(`digest=${encodeURIComponent(digest)}`));

  test('each blob goes up in one PUT that starts before its download ends; skopeo copies the result back', async () => {
    const ws = await workspace('push-streamed');
    const big = bigLayer();
    // The largest layer arrives at 1 MB/s: about two seconds during which its upload runs.
    from().setRules([{ method: 'GET', path: blobPath(big.digest), fault: { kind: 'throttle', bytesPerSecond: 1_000_000 } }]);
    const dest = `${suite.proxy.host}/streamed/sample:v1`;
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `registry://${from().host}/sample:v1`, `registry://${dest}`]), ws);
    const download = from().requests.find((q) => q.method === 'GET' && blobPath(big.digest).test(q.path));
    assert.ok(download && download.fault === 'throttle' && download.finishedAt > 0, 'the throttled download happened');
    const puts = blobUpload(big.digest);
    assert.equal(puts.length, 1, 'one upload of the largest layer');
    const put = puts[0] as (typeof puts)[number];
    assert.equal(put.method, 'PUT');
    assert.equal(put.status, 201);
    assert.equal(put.requestBytes, big.size, 'the whole blob in that PUT');
    assert.ok(put.at < download.finishedAt - 500, `the upload started ${download.finishedAt - put.at} ms before the download ended`);
    assert.equal(suite.proxy.requests.filter((q) => q.method === 'PATCH').length, 0, 'no chunks');
    const summary = stdoutJson<RegistrySummary>(r);
    assert.equal(summary['inflated'], 0);
    assert.equal(summary['compressed'], 0);
    const distinct = [...new Map((sample().layers ?? []).map((l) => [l.digest, l.size])).values()].reduce((n, size) => n + size, 0);
    const layerBytesSent = blobBytesSent() - blobUpload(sample().configDigest as string).reduce((n, q) => n + q.requestBytes, 0);
    assert.equal(layerBytesSent, distinct, 'every distinct layer blob sent once');
    assert.equal(summary['bytes'], distinct, 'and counted so in the summary');
    assert.equal((await inspect(dest)).Digest, sample().manifestDigest, 'the source manifest, unchanged');
    await copyBack(dest, ws.out('back'));
    assert.deepEqual(openUploads('streamed/sample'), []);
  });

  test('a streamed upload cut mid-body: the session is cancelled and the verified file is sent; the push succeeds', async () => {
    const ws = await workspace('push-streamed-cut');
    const big = bigLayer();
    const dest = `${suite.proxy.host}/streamed-cut/sample:v1`;
    suite.proxy.setRules([{ method: 'PUT', path: new RegExp(`/blobs/uploads/.*digest=${encodeURIComponent(big.digest)}`), fault: { kind: 'cut-upload', afterBytes: 300_000 } }]);
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'process', `registry://${from().host}/sample:v1`, `registry://${dest}`]), ws);
    const puts = blobUpload(big.digest);
    assert.equal(puts.length, 2, 'the streamed PUT, then the file');
    assert.equal(puts[0]?.fault, 'cut-upload');
    assert.equal(puts[1]?.status, 201);
    assert.equal(puts[1]?.requestBytes, big.size);
    const session = /\/blobs\/uploads\/([^/?]+)/.exec(puts[0]?.path ?? '')?.[1];
    assert.ok(session);
    assert.ok(suite.proxy.requests.some((q) => q.method === 'DELETE' && q.path.includes(session)), 'the broken session was cancelled');
    const downloads = from().requests.filter((q) => q.method === 'GET' && blobPath(big.digest).test(q.path));
    assert.equal(downloads.length, 1, `downloaded once: ${JSON.stringify(downloads.map((q) => [q.status, q.bytes, q.range]))}`);
    assert.deepEqual(await diffIdsOf(dest), sample().diffIds);
    await copyBack(dest, ws.out('back'));
    // As with a cut chunk: distribution lost the broken session's state, answers the DELETE
    // 404 and leaves its directory to its own upload purge. Every other session is closed.
    assert.deepEqual(openUploads('streamed-cut/sample'), [session]);
    assert.equal(stdoutJson<RegistrySummary>(r).bytes, sample().layers?.reduce((n, l, i, all) => (all.findIndex((x) => x.digest === l.digest) === i ? n + l.size : n), 0));
  });

  test('Ctrl-C while a blob streams up: exit 130, no tag, the streamed session cancelled, no temp files', async () => {
    const ws = await workspace('push-streamed-sigint');
    const big = bigLayer();
    // The largest layer crawls (50 kB/s): the stop comes while its PUT is being fed.
    from().setRules([{ method: 'GET', path: blobPath(big.digest), fault: { kind: 'throttle', bytesPerSecond: 50_000 } }]);
    const dest = `${suite.proxy.host}/streamed-stopped/sample:v1`;
    const run = startOccystrap(['--temp-dir', ws.temp, '--insecure', 'process', `registry://${from().host}/sample:v1`, `registry://${dest}`], isolatedEnv(ws));
    const feeding = () => blobUpload(big.digest).some((q) => q.method === 'PUT' && q.requestBytes > 100_000 && q.finishedAt === 0);
    const deadline = Date.now() + 30_000;
    while (!feeding() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(feeding(), 'the largest layer was streaming up');
    run.child.kill('SIGINT');
    const done = await run.exited;
    assert.equal(done.code, 130, done.stderr);
    assert.equal(suite.proxy.requests.filter((q) => q.method === 'PUT' && /\/manifests\//.test(q.path)).length, 0, 'no manifest put');
    const session = /\/blobs\/uploads\/([^/?]+)/.exec(blobUpload(big.digest)[0]?.path ?? '')?.[1];
    assert.ok(session);
    assert.ok(suite.proxy.requests.some((q) => q.method === 'DELETE' && q.path.includes(session)), 'the streamed session was cancelled');
    const r = await skopeo(['inspect', '--tls-verify=false', `docker://${dest}`]);
    assert.notEqual(r.code, 0, 'no tag');
    assert.deepEqual(readdirSync(ws.temp).filter((n) => !n.startsWith('.')), [], 'no temp files');
  });
});
