// registry:// pushes that need credentials (a token server, htpasswd Basic) and one that is
// interrupted: the token asks for pull,push; a user granted only pull gets one line naming
// the scope and whose credentials were refused; Ctrl-C mid-upload leaves no tag and no
// open upload session.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { fixture, fixturePath, skopeo } from './fixtures.js';
import { startOccystrap } from './cli-helpers.js';
import { DEFAULT_USER, openUploadSessions, startFaultProxy, startTokenServer, type Credentials, type FaultProxy, type Registry, type TokenServer } from '../registry/harness.js';
import { registryWith } from '../support/sample-registry.js';
import { assertFailsOneLine, assertOk, cli, isolatedEnv, workspace } from '../registry/cli.js';

const USER: Credentials = DEFAULT_USER;
const READER: Credentials = { username: 'reader', password: 'read-only-pass' };
const creds = (c: Credentials) => ['--username', c.username, '--password', c.password];

async function diffIdsOf(ref: string, c?: Credentials): Promise<string[]> {
  const r = await skopeo(['inspect', '--config', '--tls-verify=false', ...(c ? ['--creds', `${c.username}:${c.password}`] : []), `docker://${ref}`]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
}

const classic = () => fixture('docker-classic.tar').images[0]?.diffIds;

describe('push to a registry behind a token server', () => {
  let tokens: TokenServer;
  let registry: Registry;
  before(async () => {
    tokens = await startTokenServer({
      users: [USER, READER],
      grant: ({ username, access }) => (username === USER.username ? access.actions : username === READER.username ? access.actions.filter((a) => a === 'pull') : []),
    });
    ({ registry } = await registryWith([], { auth: 'token', tokenServer: tokens }));
  });
  after(async () => {
    await registry?.stop();
    await tokens?.stop();
  });

  test('the token asks for pull,push on the repository; the image is readable after', async () => {
    const ws = await workspace('push-token');
    const ref = `${registry.host}/team/app:v1`;
    assertOk(await cli(ws, ['--insecure', ...creds(USER), 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${ref}`]), ws);
    assert.ok(
      // Ours, or the registry's challenge's (distribution names them push,pull).
      tokens.issued().some((t) => t.scopes.some((sc) => /^repository:team\/app:(pull,push|push,pull)$/.test(sc)) && t.username === USER.username),
      `scopes asked: ${JSON.stringify(tokens.requests.map((t) => t.scopes))}`,
    );
    assert.deepEqual(await diffIdsOf(ref, USER), classic());
  });

  test('a user granted only pull: exit 1, one line naming the scope and whose credentials, no tag', async () => {
    const ws = await workspace('push-token-denied');
    const ref = `${registry.host}/team/denied:v1`;
    const line = assertFailsOneLine(await cli(ws, ['--insecure', ...creds(READER), 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${ref}`]), ws);
    assert.match(line, /push refused \(HTTP 401\) for scope repository:team\/denied:pull,push with the credentials of user "reader" from --username\/--password/);
    assert.doesNotMatch(line, new RegExp(READER.password), 'the password is never printed');
    const r = await skopeo(['inspect', '--tls-verify=false', '--creds', `${USER.username}:${USER.password}`, `docker://${ref}`]);
    assert.notEqual(r.code, 0, 'no tag');
  });
});

describe('push to a registry with htpasswd (Basic)', () => {
  let registry: Registry;
  before(async () => {
    ({ registry } = await registryWith([], { auth: 'htpasswd' }));
  });
  after(async () => {
    await registry?.stop();
  });

  test('Basic credentials push; without them, one line', async () => {
    const ws = await workspace('push-basic');
    const ref = `${registry.host}/basic/app:v1`;
    assertOk(await cli(ws, ['--insecure', ...creds(USER), 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${ref}`]), ws);
    assert.deepEqual(await diffIdsOf(ref, USER), classic());
    const line = assertFailsOneLine(await cli(ws, ['--insecure', 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${registry.host}/basic/anon:v1`]), ws);
    assert.match(line, /requires credentials|push refused/);
  });
});

describe('an interrupted push', () => {
  let registry: Registry;
  let proxy: FaultProxy;
  before(async () => {
    ({ registry } = await registryWith([]));
    proxy = await startFaultProxy(registry.url);
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  test('Ctrl-C mid-upload: exit 130, no tag, every open session cancelled', async () => {
    const ws = await workspace('push-sigint');
    const ref = `${proxy.host}/stopped/app:v1`;
    // The big layer goes in 300 kB chunks; the second chunk hangs at the proxy.
    proxy.setRules([{ method: 'PATCH', path: /\/blobs\/uploads\//, skip: 1, fault: { kind: 'delay', ms: 15_000 } }]);
    const run = startOccystrap(['--temp-dir', ws.temp, '--insecure', '-j', '1', 'process', `tar://${fixturePath('docker-classic.tar')}`, `registry://${ref}`], {
      ...isolatedEnv(ws),
      OCCYSTRAP_PUSH_CHUNK_BYTES: '300000',
    });
    const deadline = Date.now() + 30_000;
    while (!proxy.requests.some((q) => q.fault === 'delay') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(proxy.requests.some((q) => q.fault === 'delay'), 'the push reached the hanging chunk');
    run.child.kill('SIGINT');
    const done = await run.exited;
    assert.equal(done.code, 130, done.stderr);
    assert.match(done.stderr, /interrupted/);
    assert.equal(proxy.requests.filter((q) => q.method === 'PUT' && /\/manifests\//.test(q.path)).length, 0, 'no manifest put');
    assert.ok(proxy.requests.some((q) => q.method === 'DELETE' && q.status === 204), 'the open session was cancelled');
    assert.deepEqual(openUploadSessions(registry, 'stopped/app'), [], 'no upload session left open');
    const r = await skopeo(['inspect', '--tls-verify=false', `docker://${registry.host}/stopped/app:v1`]);
    assert.notEqual(r.code, 0, 'no tag');
    assert.deepEqual(readdirSync(ws.temp).filter((n) => !n.startsWith('.')), [], 'no temp files');
  });
});
