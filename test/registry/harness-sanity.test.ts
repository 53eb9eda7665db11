// The registry test harness on its own, without occystrap: real
// docker-registry instances (anonymous, htpasswd, token), the token server,
// the multi-platform push and the fault proxy, checked with skopeo and plain
// HTTP requests.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { skopeo } from '../integration/fixtures.js';
import {
  blobPath,
  DEFAULT_USER,
  fixtureBlob,
  httpGet,
  jwtClaims,
  manifestPath,
  PLATFORM_LABEL,
  pushImage,
  pushImageDocker,
  pushMultiPlatform,
  registryFor,
  startFaultProxy,
  startRegistry,
  startTokenServer,
  TOKEN_ISSUER,
  TOKEN_SERVICE,
  withRegistry,
  type FaultProxy,
  type MultiPlatformImage,
  type PushedImage,
  type Registry,
} from './harness.js';
import { registryWith, sample } from '../support/sample-registry.js';

const CREDS = `${DEFAULT_USER.username}:${DEFAULT_USER.password}`;

/** The 2 MB layer of `sample` (the one worth cutting, throttling, corrupting). */
function bigLayer(): { digest: string; size: number } {
  const layers = sample().layers ?? [];
  const big = [...layers].sort((a, b) => b.size - a.size)[0];
  assert.ok(big);
  return { digest: big.digest, size: big.size };
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** `skopeo [GLOBAL...] inspect --tls-verify=false [EXTRA...] docker://REF` */
async function inspect(ref: string, extra: string[] = [], global: string[] = []): Promise<{ code: number; json: Record<string, unknown> | undefined; stderr: string }> {
  const r = await skopeo([...global, 'inspect', '--tls-verify=false', ...extra, `docker://${ref}`]);
  let json: Record<string, unknown> | undefined;
  try {
    json = r.code === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { code: r.code, json, stderr: r.stderr };
}

describe('anonymous registry', () => {
  let registry: Registry;
  let oci: PushedImage;
  let docker: PushedImage;
  before(async () => {
    ({ registry, pushed: [oci, docker] } = await registryWith([['sample', 'sample:v1'], ['sample', 'sample-docker:v1', 'v2s2']]));
  });
  after(() => registry?.stop());

  test('GET /v2/ answers 200 on 127.0.0.1', async () => {
    assert.match(registry.host, /^127\.0\.0\.1:\d+$/);
    const r = await httpGet(`${registry.url}/v2/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  test('skopeo inspect sees the OCI push with the fixture digests', async () => {
    const facts = sample();
    assert.equal(oci.manifestDigest, facts.manifestDigest, 'OCI push keeps the layout manifest byte for byte');
    const i = await inspect(`${registry.host}/sample:v1`);
    assert.equal(i.code, 0, i.stderr);
    assert.equal(i.json?.['Digest'], facts.manifestDigest);
    assert.deepEqual(i.json?.['Layers'], (facts.layers ?? []).map((l) => l.digest));
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/sample:v1`]);
    const manifest = JSON.parse(raw.stdout) as { mediaType?: string; config: { digest: string } };
    assert.equal(manifest.mediaType, undefined, 'umoci leaves out the optional mediaType field');
    assert.equal(manifest.config.digest, facts.configDigest);
    const served = await httpGet(`${registry.url}/v2/sample/manifests/v1`, { accept: 'application/vnd.oci.image.manifest.v1+json' });
    assert.equal(served.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(served.headers['docker-content-digest'], facts.manifestDigest);
  });

  test('the v2s2 push has Docker media types and the same config', async () => {
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${docker.reference}`]);
    assert.equal(raw.code, 0, raw.stderr);
    const manifest = JSON.parse(raw.stdout) as { mediaType: string; config: { digest: string; mediaType: string }; layers: Array<{ mediaType: string; digest: string }> };
    assert.equal(manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(manifest.config.mediaType, 'application/vnd.docker.container.image.v1+json');
    assert.ok(manifest.layers.every((l) => l.mediaType === 'application/vnd.docker.image.rootfs.diff.tar.gzip'));
    assert.equal(sha256(Buffer.from(raw.stdout)), docker.manifestDigest);
    assert.deepEqual(
      manifest.layers.map((l) => l.digest),
      (sample().layers ?? []).map((l) => l.digest),
      'same gzip blobs, only the media types change',
    );
  });

  test('a multi-platform index: 3 manifests, each with its own config', async () => {
    const multi: MultiPlatformImage = await pushMultiPlatform(registry, 'multi:v1');
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${multi.reference}`]);
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal(sha256(Buffer.from(raw.stdout)), multi.indexDigest);
    const index = JSON.parse(raw.stdout) as { mediaType: string; manifests: Array<{ digest: string; platform: { os: string; architecture: string; variant?: string } }> };
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(index.manifests.length, 3);
    assert.deepEqual(
      index.manifests.map((m) => [m.platform.os, m.platform.architecture, m.platform.variant ?? ''].join('/')),
      ['linux/arm64/', 'linux/arm/v7', 'linux/amd64/'],
    );
    assert.equal(new Set(multi.platforms.map((p) => p.configDigest)).size, 3, 'three different configs');
    for (const p of multi.platforms) {
      const cfg = await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${registry.host}/multi@${p.manifestDigest}`]);
      assert.equal(cfg.code, 0, cfg.stderr);
      assert.equal(sha256(Buffer.from(cfg.stdout)), p.configDigest);
      const config = JSON.parse(cfg.stdout) as { architecture: string; variant?: string; config: { Labels: Record<string, string> }; rootfs: { diff_ids: string[] } };
      assert.equal(config.architecture, p.architecture);
      assert.equal(config.variant, p.variant);
      assert.equal(config.config.Labels[PLATFORM_LABEL], p.platform);
      assert.deepEqual(config.rootfs.diff_ids, sample().diffIds);
    }
    // skopeo picks a platform from the index as asked (and names the index's digest).
    const chosen = await inspect(multi.reference, [], ['--override-arch', 'arm', '--override-variant', 'v7']);
    assert.equal(chosen.code, 0, chosen.stderr);
    assert.equal(chosen.json?.['Digest'], multi.indexDigest);
    assert.equal(chosen.json?.['Architecture'], 'arm');
    const cfg = await skopeo(['--override-arch', 'arm', '--override-variant', 'v7', 'inspect', '--config', '--raw', '--tls-verify=false', `docker://${multi.reference}`]);
    assert.equal(cfg.code, 0, cfg.stderr);
    assert.equal(sha256(Buffer.from(cfg.stdout)), multi.platforms.find((p) => p.platform === 'linux/arm/v7')?.configDigest);
  });
});

describe('htpasswd registry', () => {
  let registry: Registry;
  before(async () => {
    ({ registry } = await registryWith([['sample', 'sample:v1']], { auth: 'htpasswd' }, DEFAULT_USER));
  });
  after(() => registry?.stop());

  test('challenges with Basic', async () => {
    const r = await httpGet(`${registry.url}/v2/`);
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /^Basic realm="occystrap-test-basic"/);
  });

  test('refuses anonymous, accepts --creds, refuses a wrong password', async () => {
    const anon = await inspect(`${registry.host}/sample:v1`);
    assert.notEqual(anon.code, 0);
    assert.match(anon.stderr, /unauthorized|authentication required/i);
    const ok = await inspect(`${registry.host}/sample:v1`, ['--creds', CREDS]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.json?.['Digest'], sample().manifestDigest);
    const bad = await inspect(`${registry.host}/sample:v1`, ['--creds', `${DEFAULT_USER.username}:wrong`]);
    assert.notEqual(bad.code, 0);
    const basic = Buffer.from(CREDS).toString('base64');
    assert.equal((await httpGet(`${registry.url}/v2/`, { authorization: `Basic ${basic}` })).status, 200);
  });
});

describe('token registry', () => {
  test('bearer challenge, credentials -> token with the asked scope, anonymous denied', async (t) => {
    const tokens = await startTokenServer();
    t.after(() => tokens.stop());
    const registry = await registryFor(t, { auth: 'token', tokenServer: tokens });
    await pushImage(registry, 'sample', 'sample:v1', DEFAULT_USER);

    const challenge = await httpGet(`${registry.url}/v2/sample/manifests/v1`);
    assert.equal(challenge.status, 401);
    const www = String(challenge.headers['www-authenticate']);
    assert.match(www, /^Bearer /);
    assert.ok(www.includes(`realm="${tokens.realm}"`), www);
    assert.ok(www.includes(`service="${TOKEN_SERVICE}"`), www);
    assert.ok(www.includes('scope="repository:sample:pull"'), www);

    tokens.requests.length = 0;
    const ok = await inspect(`${registry.host}/sample:v1`, ['--creds', CREDS]);
    assert.equal(ok.code, 0, ok.stderr);
    const issued = tokens.issued();
    assert.ok(issued.length >= 1);
    assert.ok(issued.every((r) => r.username === DEFAULT_USER.username && r.scopes.includes('repository:sample:pull')));
    const claims = jwtClaims(issued[0]?.token as string);
    assert.equal(claims['iss'], TOKEN_ISSUER);
    assert.equal(claims['aud'], TOKEN_SERVICE);
    assert.equal(claims['sub'], DEFAULT_USER.username);
    assert.deepEqual(claims['access'], [{ type: 'repository', name: 'sample', actions: ['pull'] }]);
    assert.equal(typeof claims['exp'], 'number');
    assert.equal(typeof claims['jti'], 'string');

    // A token used directly: the registry accepts it.
    const direct = await httpGet(`${registry.url}/v2/sample/manifests/v1`, {
      authorization: `Bearer ${issued[0]?.token as string}`,
      accept: 'application/vnd.oci.image.manifest.v1+json',
    });
    assert.equal(direct.status, 200);
    assert.equal(sha256(direct.body), sample().manifestDigest);

    tokens.requests.length = 0;
    const anon = await inspect(`${registry.host}/sample:v1`);
    assert.notEqual(anon.code, 0, 'anonymous pull is denied by the default policy');
    assert.ok(tokens.requests.length >= 1 && tokens.requests.every((r) => r.username === undefined));
    assert.ok(tokens.requests.every((r) => r.granted.every((g) => g.actions.length === 0)));

    tokens.options.allowAnonymousPull = true;
    const anonOk = await inspect(`${registry.host}/sample:v1`);
    assert.equal(anonOk.code, 0, `allowAnonymousPull: ${anonOk.stderr}`);

    const wrong = await httpGet(`${tokens.realm}?service=${TOKEN_SERVICE}&scope=repository:sample:pull`, {
      authorization: `Basic ${Buffer.from('tester:nope').toString('base64')}`,
    });
    assert.equal(wrong.status, 401, 'the token server refuses a wrong password');
  });

  test('RS256 + kid, ES256 + x5c work; a token naming an unknown kid is refused', async () => {
    for (const opts of [{ alg: 'RS256' as const }, { keyMode: 'x5c' as const }]) {
      const tokens = await startTokenServer({ ...opts, allowAnonymousPull: true });
      try {
        await withRegistry({ auth: 'token', tokenServer: tokens }, async (registry) => {
          await pushImage(registry, 'other', 'other:v2', DEFAULT_USER);
          const anon = await inspect(`${registry.host}/other:v2`);
          assert.equal(anon.code, 0, `${JSON.stringify(opts)}: ${anon.stderr}`);
        });
      } finally {
        await tokens.stop();
      }
    }
    const bogus = await startTokenServer({ allowAnonymousPull: true, kidOverride: 'AAAA:BBBB:CCCC:DDDD:EEEE:FFFF:GGGG:HHHH:IIII:JJJJ:KKKK:LLLL' });
    try {
      await withRegistry({ auth: 'token', tokenServer: bogus }, async (registry) => {
        const token = await httpGet(`${bogus.realm}?service=${TOKEN_SERVICE}&scope=repository:x:pull`);
        const value = (JSON.parse(token.body.toString()) as { token: string }).token;
        const r = await httpGet(`${registry.url}/v2/`, { authorization: `Bearer ${value}` });
        assert.equal(r.status, 401, 'the registry checks the kid');
        // The registry writes its log line after it answers: wait for it (a loaded machine is slow).
        for (let i = 0; i < 50 && !/untrusted key/.test(registry.logs()); i++) await new Promise((r) => setTimeout(r, 100));
        assert.match(registry.logs(), /untrusted key/);
      });
    } finally {
      await bogus.stop();
    }
  });

  test('token server variants: access_token only, both fields, expires_in', async (t) => {
    const tokens = await startTokenServer({ tokenField: 'access_token', expiresIn: 1, allowAnonymousPull: true });
    t.after(() => tokens.stop());
    const a = JSON.parse((await httpGet(`${tokens.realm}?service=${TOKEN_SERVICE}&scope=repository:sample:pull`)).body.toString()) as Record<string, unknown>;
    assert.equal(a['token'], undefined);
    assert.equal(typeof a['access_token'], 'string');
    assert.equal(a['expires_in'], 1);
    tokens.options.tokenField = 'both';
    const b = JSON.parse((await httpGet(`${tokens.realm}?service=${TOKEN_SERVICE}&scope=repository:sample:pull`)).body.toString()) as Record<string, unknown>;
    assert.equal(b['token'], b['access_token']);
    assert.deepEqual((jwtClaims(b['token'] as string)['access'] as unknown[])[0], { type: 'repository', name: 'sample', actions: ['pull'] });
  });
});

describe('fault proxy', () => {
  let registry: Registry;
  let proxy: FaultProxy;
  before(async () => {
    registry = await startRegistry();
    await pushImage(registry, 'sample', 'sample:v1');
    proxy = await startFaultProxy(registry.url);
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  test('passes everything through: skopeo inspect via the proxy', async () => {
    proxy.setRules([]);
    proxy.requests.length = 0;
    const i = await inspect(`${proxy.host}/sample:v1`);
    assert.equal(i.code, 0, i.stderr);
    assert.equal(i.json?.['Digest'], sample().manifestDigest);
    assert.ok(proxy.matching(manifestPath('sample', 'v1')).some((r) => r.status === 200));
    assert.ok(proxy.requests.every((r) => r.fault === undefined));
  });

  test('a 503 once on the manifest: skopeo (no retries by default) fails, the next request passes', async () => {
    proxy.setRules([{ method: 'GET', path: manifestPath('sample', 'v1'), fault: { kind: 'status', status: 503 } }]);
    proxy.requests.length = 0;
    const first = await inspect(`${proxy.host}/sample:v1`);
    const manifestGets = proxy.matching(manifestPath('sample', 'v1'), 'GET');
    assert.equal(manifestGets[0]?.status, 503);
    assert.equal(manifestGets[0]?.fault, 'status');
    if (first.code !== 0) {
      // skopeo 1.9 does not retry inspect: it reports the 503 ...
      assert.match(first.stderr, /503|unavailable/i);
      assert.equal(manifestGets.length, 1);
      // ... and the fault was used up: the next run passes.
      const second = await inspect(`${proxy.host}/sample:v1`);
      assert.equal(second.code, 0, second.stderr);
    } else {
      // a skopeo that retries: a second GET that passed.
      assert.ok(manifestGets.length >= 2 && manifestGets[1]?.status === 200);
    }
    const retried = await inspect(`${proxy.host}/sample:v1`, ['--retry-times', '2']);
    assert.equal(retried.code, 0, retried.stderr);
  });

  test('429 with Retry-After, 500, reset and delay', async () => {
    const date = new Date(Date.now() + 2000);
    proxy.setRules([
      { path: /^\/v2\/$/, fault: { kind: 'rate-limit', retryAfter: 1 } },
      { path: /^\/v2\/$/, fault: { kind: 'rate-limit', retryAfter: date } },
      { path: /^\/v2\/$/, fault: { kind: 'status', status: 500 } },
      { path: /^\/v2\/$/, fault: { kind: 'reset' } },
      { path: /^\/v2\/$/, fault: { kind: 'delay', ms: 300 } },
    ]);
    const a = await httpGet(`${proxy.url}/v2/`);
    assert.equal(a.status, 429);
    assert.equal(a.headers['retry-after'], '1');
    const b = await httpGet(`${proxy.url}/v2/`);
    assert.equal(b.status, 429);
    assert.equal(b.headers['retry-after'], date.toUTCString());
    assert.equal((await httpGet(`${proxy.url}/v2/`)).status, 500);
    const reset = await httpGet(`${proxy.url}/v2/`);
    assert.equal(reset.status, 0);
    assert.ok(reset.error);
    const t0 = Date.now();
    assert.equal((await httpGet(`${proxy.url}/v2/`)).status, 200);
    assert.ok(Date.now() - t0 >= 280, 'delayed');
    assert.equal((await httpGet(`${proxy.url}/v2/`)).status, 200, 'every rule used up: passes');
  });

  test('cut mid-blob after K bytes; a Range request then gets the rest (206)', async () => {
    const big = bigLayer();
    const k = 1_000_000;
    proxy.setRules([{ method: 'GET', path: blobPath(big.digest), fault: { kind: 'cut', afterBytes: k } }]);
    proxy.requests.length = 0;
    const url = `${proxy.url}/v2/sample/blobs/${big.digest}`;
    const cut = await httpGet(url);
    assert.equal(cut.status, 200);
    assert.equal(Number(cut.headers['content-length']), big.size, 'the full length is announced');
    assert.ok(cut.error, 'the body is cut short');
    assert.equal(cut.body.length, k);
    const rest = await httpGet(url, { range: `bytes=${k}-` });
    assert.equal(rest.status, 206);
    assert.equal(rest.headers['content-range'], `bytes ${k}-${big.size - 1}/${big.size}`);
    assert.equal(sha256(Buffer.concat([cut.body, rest.body])), big.digest);
    const recorded = proxy.matching(blobPath(big.digest));
    assert.deepEqual(
      recorded.map((r) => [r.fault, r.range, r.bytes]),
      [
        ['cut', undefined, k],
        [undefined, `bytes=${k}-`, big.size - k],
      ],
    );
  });

  test('redirect to the object store: same bytes, Range supported, headers recorded', async () => {
    const big = bigLayer();
    proxy.setRules([{ method: 'GET', path: blobPath(big.digest), times: 2, fault: { kind: 'redirect' } }]);
    proxy.objectStore.requests.length = 0;
    const r = await httpGet(`${proxy.url}/v2/sample/blobs/${big.digest}`, { authorization: 'Bearer secret' });
    assert.equal(r.status, 307);
    const location = String(r.headers.location);
    assert.ok(location.startsWith(proxy.objectStore.url), location);
    assert.notEqual(new URL(location).origin, proxy.url, 'another origin');
    const blob = await httpGet(location);
    assert.equal(blob.status, 200);
    assert.equal(sha256(blob.body), big.digest);
    const part = await httpGet(location, { range: 'bytes=10-' });
    assert.equal(part.status, 206);
    assert.equal(part.body.length, big.size - 10);
    assert.deepEqual(
      proxy.objectStore.requests.map((q) => [q.status, q.headers.authorization, q.headers.range]),
      [
        [200, undefined, undefined],
        [206, undefined, 'bytes=10-'],
      ],
    );
    assert.equal(proxy.matching(blobPath(big.digest)).at(-1)?.authorization, 'Bearer secret', 'the proxy records Authorization');
  });

  test('corrupt flips exactly one byte (offset 4: the gzip MTIME field)', async () => {
    const small = (sample().layers ?? [])[0];
    assert.ok(small);
    proxy.setRules([{ method: 'GET', path: blobPath(small.digest), fault: { kind: 'corrupt' } }]);
    const r = await httpGet(`${proxy.url}/v2/sample/blobs/${small.digest}`);
    assert.equal(r.status, 200);
    const original = fixtureBlob(small.digest);
    assert.equal(r.body.length, original.length);
    const diff = [...r.body.keys()].filter((i) => r.body[i] !== original[i]);
    assert.deepEqual(diff, [4]);
    assert.notEqual(sha256(r.body), small.digest);
  });

  test('throttle caps the bandwidth', async () => {
    const big = bigLayer();
    proxy.setRules([{ method: 'GET', path: blobPath(big.digest), fault: { kind: 'throttle', bytesPerSecond: 4_000_000 } }]);
    const t0 = Date.now();
    const r = await httpGet(`${proxy.url}/v2/sample/blobs/${big.digest}`);
    const ms = Date.now() - t0;
    assert.equal(sha256(r.body), big.digest);
    assert.ok(ms >= 400, `2.1 MB at 4 MB/s took ${ms} ms`);
  });

  test('request cap: answers 599 once over the limit', async () => {
    const capped = await startFaultProxy(registry.url, [], { maxRequests: 2 });
    try {
      assert.equal((await httpGet(`${capped.url}/v2/`)).status, 200);
      assert.equal((await httpGet(`${capped.url}/v2/`)).status, 200);
      assert.equal((await httpGet(`${capped.url}/v2/`)).status, 599);
    } finally {
      await capped.stop();
    }
  });
});
