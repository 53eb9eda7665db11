// The registry client's pure parts and its HTTP behaviour against a real loopback server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, writeFile, chmod, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseChallenges } from '../../src/core/auth-challenge.js';
import { availablePlatforms, choosePlatform } from '../../src/core/platform.js';
import { normalizeRegistryReference } from '../../src/core/registry-naming.js';
import { HttpClient, isRetryableStatus, retryDelay } from '../../src/shell/registry/http.js';
import { resolveCredentials } from '../../src/shell/registry/credentials.js';

async function bodyText(body: AsyncIterable<Buffer | string>): Promise<string> {
  let text = '';
  for await (const chunk of body) text += chunk.toString();
  return text;
}
import type { Descriptor } from '../../src/core/codecs/common.js';

test('WWW-Authenticate: parameters in any order, quoted or not, several challenges', () => {
  const a = parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"');
  assert.equal(a.length, 1);
  assert.equal(a[0]?.scheme, 'bearer');
  assert.deepEqual(a[0]?.params, { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' });
  const b = parseChallenges('Bearer scope="repository:x:pull" , service=reg, realm="http://127.0.0.1:1/t"');
  assert.deepEqual(b[0]?.params, { scope: 'repository:x:pull', service: 'reg', realm: 'http://127.0.0.1:1/t' });
  const c = parseChallenges('Basic realm="Registry Realm", Bearer realm="r\\"q"');
  assert.deepEqual(c.map((x) => x.scheme), ['basic', 'bearer']);
  assert.equal(c[1]?.params['realm'], 'r"q');
  assert.deepEqual(parseChallenges(''), []);
});

test('retry delays: Retry-After seconds and HTTP dates are honoured and capped; backoff grows with jitter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(retryDelay(0, '2', now), 2000);
  assert.equal(retryDelay(0, 'Thu, 01 Jan 2026 00:00:05 GMT', now), 5000);
  assert.equal(retryDelay(0, '100000', now), 60_000);
  assert.equal(retryDelay(0, 'Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
  assert.equal(retryDelay(0, undefined, now, () => 0), 250);
  assert.equal(retryDelay(3, undefined, now, () => 1), 4000);
  assert.equal(retryDelay(20, undefined, now, () => 1), 10_000);
  for (const s of [408, 429, 500, 502, 503, 504]) assert.ok(isRetryableStatus(s), String(s));
  for (const s of [200, 400, 401, 403, 404, 501]) assert.ok(!isRetryableStatus(s), String(s));
});

test('platform choice: exact os/arch/variant, missing variant is empty, no match lists the platforms', () => {
  const d = (os: string, architecture: string, variant?: string): Descriptor => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${'a'.repeat(64)}` as Descriptor['digest'],
    size: 1,
    platform: { os, architecture, ...(variant ? { variant } : {}) },
  });
  const list = [d('linux', 'amd64'), d('linux', 'arm', 'v7'), d('linux', 'arm64', 'v8')];
  assert.equal(choosePlatform(list, { os: 'linux', architecture: 'amd64', variant: '' }), list[0]);
  assert.equal(choosePlatform(list, { os: 'linux', architecture: 'arm', variant: 'v7' }), list[1]);
  assert.equal(choosePlatform(list, { os: 'linux', architecture: 'arm64', variant: '' }), list[2], 'arm64 means arm64/v8');
  assert.equal(choosePlatform(list, { os: 'linux', architecture: 'arm', variant: '' }), undefined, 'arm without a variant is not arm/v7');
  assert.deepEqual(availablePlatforms(list), ['linux/amd64', 'linux/arm/v7', 'linux/arm64/v8']);
});

test('Docker Hub naming: docker.io is served by registry-1.docker.io and bare names get library/', () => {
  assert.deepEqual(normalizeRegistryReference({ host: 'docker.io', name: 'busybox', tag: 'latest' }), {
    host: 'docker.io',
    name: 'library/busybox',
    tag: 'latest',
    apiHost: 'registry-1.docker.io',
  });
  assert.equal(normalizeRegistryReference({ host: 'docker.io', name: 'team/app', tag: '1' }).name, 'team/app');
  assert.equal(normalizeRegistryReference({ host: '127.0.0.1:5000', name: 'busybox', tag: '1' }).name, 'busybox');
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

test('HttpClient retries 503 and 429 (with Retry-After) and counts them; gives up after --retries', async () => {
  let calls = 0;
  const { server, url } = await serve((_req, res) => {
    calls++;
    if (calls === 1) {
      res.writeHead(429, { 'retry-after': '0' }).end('slow down');
    } else if (calls === 2) {
      res.writeHead(503).end('busy');
    } else res.writeHead(200).end('ok');
  });
  try {
    const http = new HttpClient({ connections: 2, retries: 3, userAgent: 'test' });
    const r = await http.request({ url: `${url}/x` });
    assert.equal(r.statusCode, 200);
    assert.equal(await bodyText(r.body), 'ok');
    assert.equal(http.stats.retries, 2);
    assert.equal(http.stats.rateLimited, 1);
    calls = 1; // next answer 503, then 200
    const strict = new HttpClient({ connections: 1, retries: 0, userAgent: 'test' });
    const r2 = await strict.request({ url: `${url}/y` });
    assert.equal(r2.statusCode, 503);
    await r2.body.dump();
    await http.close();
    await strict.close();
  } finally {
    server.close();
  }
});

test('HttpClient drops Authorization when a redirect leaves the origin', async () => {
  const seen: (string | undefined)[] = [];
  const store = await serve((req, res) => {
    seen.push(req.headers.authorization);
    res.writeHead(200).end('blob');
  });
  const registry = await serve((_req, res) => res.writeHead(307, { location: `${store.url}/blob` }).end());
  try {
    const http = new HttpClient({ connections: 1, retries: 0, userAgent: 'test' });
    const r = await http.request({ url: `${registry.url}/v2/x/blobs/y`, headers: { authorization: 'Bearer secret' } });
    assert.equal(await bodyText(r.body), 'blob');
    assert.deepEqual(seen, [undefined]);
    await http.close();
  } finally {
    store.server.close();
    registry.server.close();
  }
});

test('HttpClient spaces requests under --rate-limit', async () => {
  const times: number[] = [];
  const { server, url } = await serve((_req, res) => {
    times.push(Date.now());
    res.writeHead(200).end();
  });
  try {
    const http = new HttpClient({ connections: 4, retries: 0, rateLimit: 20, userAgent: 'test' });
    await Promise.all([0, 1, 2, 3].map(async () => (await http.request({ url })).body.dump()));
    times.sort((a, b) => a - b);
    // Four requests at 20/s span at least three 50 ms intervals (minus timer slack).
    assert.ok((times[3] as number) - (times[0] as number) >= 140, `spread ${(times[3] as number) - (times[0] as number)} ms`);
    await http.close();
  } finally {
    server.close();
  }
});

test('credentials: URI beats CLI beats env beats docker config; credHelpers and auths are read', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'occystrap-creds-'));
  try {
    const helper = path.join(dir, 'docker-credential-fake');
    await writeFile(helper, '#!/bin/sh\nread host\necho "{\\"Username\\":\\"helper-user\\",\\"Secret\\":\\"s-$host\\"}"\n');
    await chmod(helper, 0o755);
    await writeFile(
      path.join(dir, 'config.json'),
      JSON.stringify({
        auths: { 'file.example': { auth: Buffer.from('file-user:file-pass').toString('base64') } },
        credHelpers: { 'helped.example': 'fake' },
      }),
    );
    const env = { PATH: `${dir}:${process.env['PATH'] ?? ''}`, DOCKER_CONFIG: dir, HOME: dir };
    const fromUri = await resolveCredentials('file.example', { uri: { username: 'u', password: 'p' }, cli: { username: 'c', password: 'c' }, env });
    assert.equal(fromUri?.username, 'u');
    const fromCli = await resolveCredentials('file.example', { cli: { username: 'c', password: 'cp' }, env: { ...env, OCCYSTRAP_USERNAME: 'e' } });
    assert.equal(fromCli?.username, 'c');
    const fromEnv = await resolveCredentials('file.example', { env: { ...env, OCCYSTRAP_USERNAME: 'e', OCCYSTRAP_PASSWORD: 'ep' } });
    assert.deepEqual([fromEnv?.username, fromEnv?.password], ['e', 'ep']);
    const fromFile = await resolveCredentials('file.example', { env });
    assert.deepEqual([fromFile?.username, fromFile?.password], ['file-user', 'file-pass']);
    const fromHelper = await resolveCredentials('helped.example', { env });
    assert.deepEqual([fromHelper?.username, fromHelper?.password], ['helper-user', 's-helped.example']);
    assert.equal(await resolveCredentials('nobody.example', { env }), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
