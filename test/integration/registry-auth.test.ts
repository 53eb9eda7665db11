// Registry authentication end to end: an htpasswd registry (Basic) with
// credentials from every source the CLI reads, and a registry with
// `auth: token` whose token server (test/registry/harness.ts) records every
// request: scopes asked, anonymous policy, expiry, the access_token field,
// a 401 in mid-run. Secrets must never reach stdout/stderr.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cleanupTmpDirs } from './fixtures.js';
import {
  blobPath,
  DEFAULT_USER,
  startFaultProxy,
  startTokenServer,
  TOKEN_SERVICE,
  type Credentials,
  type FaultProxy,
  type PushedImage,
  type Registry,
  type TokenServer,
} from '../registry/harness.js';
import { registryWith, sample } from '../support/sample-registry.js';
import { assertDirStore, assertFailsOneLine, assertOk, cli, fakeCredentialHelper, fileLines, workspace, writeDockerConfig, type Workspace } from '../registry/cli.js';

const USER: Credentials = DEFAULT_USER;
/** A second account whose password has characters that need care in URIs and JSON. */
const ODD: Credentials = { username: 'odd.user', password: 'p@ss:w/rd&x=1 "q"' };

after(() => cleanupTmpDirs());

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

/** A successful pull into a fresh store, checked; the password never printed. */
async function pullOk(ws: Workspace, image: PushedImage, args: readonly string[], env: Record<string, string> = {}, uriQuery = '', secret = USER.password): Promise<void> {
  const store = ws.out(`store-${Math.random().toString(36).slice(2, 8)}`);
  const r = assertOk(await cli(ws, ['--insecure', ...args, 'process', `registry://${image.reference}${uriQuery}`, `dir://${store}`], { env }), ws);
  assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret), 'the password is never printed');
  await assertDirStore(store, { configDigest: sample().configDigest as string, diffIds: sample().diffIds, repoTag: image.reference });
}

describe('htpasswd registry (Basic)', () => {
  let registry: Registry;
  let image: PushedImage;
  before(async () => {
    ({ registry, pushed: [image] } = await registryWith([['sample', 'private/sample:v1']], { auth: 'htpasswd', users: [USER, ODD] }, USER));
  });
  after(() => registry?.stop());

  test('no credentials: exit 1, one line naming the registry and what to do', async () => {
    const ws = await workspace('auth-none');
    const store = ws.out('store');
    const r = await cli(ws, ['--insecure', 'process', `registry://${image.reference}`, `dir://${store}`]);
    const line = assertFailsOneLine(r, ws);
    assert.ok(line.includes(registry.host), line);
    assert.match(line, /--username|credentials|log in/i);
    assert.equal(existsSync(store), false);
  });

  test('--username/--password (with --debug: still no secret in the output)', async () => {
    const ws = await workspace('auth-cli');
    await pullOk(ws, image, ['--debug', '--username', USER.username, '--password', USER.password]);
  });

  test('OCCYSTRAP_USERNAME / OCCYSTRAP_PASSWORD', async () => {
    const ws = await workspace('auth-env');
    await pullOk(ws, image, [], { OCCYSTRAP_USERNAME: USER.username, OCCYSTRAP_PASSWORD: USER.password });
  });

  test('URI ?username=&password= (percent-encoded), which beats a wrong --password', async () => {
    const ws = await workspace('auth-uri');
    const q = `?username=${encodeURIComponent(ODD.username)}&password=${encodeURIComponent(ODD.password)}`;
    await pullOk(ws, image, ['--username', USER.username, '--password', 'wrong'], {}, q, ODD.password);
  });

  test('DOCKER_CONFIG config.json auths (base64 auth)', async () => {
    const ws = await workspace('auth-docker-config');
    await writeDockerConfig(ws, { auths: { [registry.host]: { auth: b64(`${ODD.username}:${ODD.password}`) } } });
    await pullOk(ws, image, [], {}, '', ODD.password);
  });

  test('--username/--password beat a wrong docker config entry', async () => {
    const ws = await workspace('auth-precedence');
    await writeDockerConfig(ws, { auths: { [registry.host]: { auth: b64(`${USER.username}:wrong`) } } });
    await pullOk(ws, image, ['--username', USER.username, '--password', USER.password]);
  });

  test('credHelpers: a docker-credential-test executable on PATH', async () => {
    const ws = await workspace('auth-helper');
    const { bin, log } = await fakeCredentialHelper(ws, 'test', registry.host, USER.username, USER.password);
    await writeDockerConfig(ws, { credHelpers: { [registry.host]: 'test' } });
    await pullOk(ws, image, [], { PATH: `${bin}:${process.env['PATH'] ?? ''}` });
    const calls = fileLines(log);
    assert.ok(calls.length >= 1, 'the helper was asked');
    assert.ok(calls.every((c) => c.startsWith('get ') && c.includes(registry.host)), calls.join('\n'));
  });

  test('credsStore: the default helper', async () => {
    const ws = await workspace('auth-store');
    const { bin } = await fakeCredentialHelper(ws, 'teststore', registry.host, USER.username, USER.password);
    await writeDockerConfig(ws, { credsStore: 'teststore' });
    await pullOk(ws, image, [], { PATH: `${bin}:${process.env['PATH'] ?? ''}` });
  });

  test("REGISTRY_AUTH_FILE (podman's auth.json)", async () => {
    const ws = await workspace('auth-podman');
    const file = path.join(ws.home, 'auth.json');
    await writeFile(file, JSON.stringify({ auths: { [registry.host]: { auth: b64(`${USER.username}:${USER.password}`) } } }));
    await pullOk(ws, image, [], { REGISTRY_AUTH_FILE: file });
  });

  test('wrong password: exit 1, one line naming the registry and what to do; the password not printed', async () => {
    const ws = await workspace('auth-wrong');
    const store = ws.out('store');
    const secret = 'wrong-Secret-42';
    const r = await cli(ws, ['--insecure', '--username', USER.username, '--password', secret, 'process', `registry://${image.reference}`, `dir://${store}`]);
    const line = assertFailsOneLine(r, ws);
    assert.ok(line.includes(registry.host), line);
    assert.match(line, /password|credentials|username/i);
    assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret));
    assert.equal(existsSync(store), false);
  });

  test(
    'wrong password (Basic): the line says the given credentials were refused, not "give --username/--password"',
    async () => {
      const ws = await workspace('auth-wrong-msg');
      const r = await cli(ws, ['--insecure', '--username', USER.username, '--password', 'bad', 'process', `registry://${image.reference}`, `dir://${ws.out('store')}`]);
      const line = assertFailsOneLine(r, ws);
      assert.doesNotMatch(line, /give --username/);
      assert.match(line, /--username\/--password/, 'names where the refused credentials came from');
      assert.match(line, /refused|rejected|wrong|incorrect|check the/i);
    },
  );
});

describe('token registry (bearer)', () => {
  let tokens: TokenServer;
  let registry: Registry;
  let image: PushedImage;
  before(async () => {
    tokens = await startTokenServer({ users: [USER] });
    ({ registry, pushed: [image] } = await registryWith([['sample', 'sample:v1']], { auth: 'token', tokenServer: tokens }, USER));
  });
  after(async () => {
    await registry?.stop();
    await tokens?.stop();
  });

  /** Reset the token server's policy and records before each scenario. */
  function reset(policy: Partial<TokenServer['options']> = {}): void {
    tokens.requests.length = 0;
    tokens.options.allowAnonymousPull = false;
    tokens.options.expiresIn = 300;
    tokens.options.tokenField = 'token';
    delete tokens.options.anonymous;
    Object.assign(tokens.options, policy);
  }

  test('anonymous pull denied by the token server policy: exit 1, one line', async () => {
    reset();
    const ws = await workspace('token-denied');
    const store = ws.out('store');
    const r = await cli(ws, ['--insecure', 'process', `registry://${image.reference}`, `dir://${store}`]);
    const line = assertFailsOneLine(r, ws);
    assert.ok(line.includes(registry.host), line);
    assert.ok(tokens.requests.length >= 1, 'a token was asked for');
    assert.ok(tokens.requests.length <= 4, `no token loop: ${tokens.requests.length} requests`);
    assert.ok(tokens.requests.every((q) => q.username === undefined && q.authorization === undefined));
    assert.equal(existsSync(store), false);
  });

  test('anonymous pull denied with a 401 from the token server: exit 1, one line', async () => {
    reset({ anonymous: 'refuse' });
    const ws = await workspace('token-refused');
    const r = await cli(ws, ['--insecure', 'process', `registry://${image.reference}`, `dir://${ws.out('store')}`]);
    const line = assertFailsOneLine(r, ws);
    assert.ok(line.includes(registry.host), line);
    assert.match(line, /--username|credentials|log in|anonymous/i);
  });

  test('anonymous pull allowed by the policy: an anonymous token with scope repository:sample:pull', async () => {
    reset({ allowAnonymousPull: true });
    const ws = await workspace('token-anon');
    await pullOk(ws, image, []);
    assert.ok(tokens.issued().length >= 1);
    for (const q of tokens.requests) {
      assert.equal(q.username, undefined);
      assert.equal(q.service, TOKEN_SERVICE);
      assert.deepEqual(q.scopes, ['repository:sample:pull']);
    }
  });

  test('credentials -> Basic to the token server, scope repository:sample:pull (pull only), one token', async () => {
    reset();
    const ws = await workspace('token-creds');
    await pullOk(ws, image, ['--username', USER.username, '--password', USER.password]);
    const issued = tokens.issued();
    assert.equal(issued.length, 1, `one token for the whole run (cached): ${tokens.requests.map((q) => q.url).join(', ')}`);
    assert.equal(issued[0]?.username, USER.username);
    assert.equal(issued[0]?.authorization, `Basic ${b64(`${USER.username}:${USER.password}`)}`);
    assert.deepEqual(issued[0]?.scopes, ['repository:sample:pull']);
    assert.deepEqual(issued[0]?.granted, [{ type: 'repository', name: 'sample', actions: ['pull'] }]);
  });

  test('the access_token field (no token field)', async () => {
    reset({ tokenField: 'access_token' });
    const ws = await workspace('token-access');
    await pullOk(ws, image, ['--username', USER.username, '--password', USER.password]);
    assert.ok(tokens.issued().length >= 1);
  });

  test('wrong password: the token server says 401 -> exit 1, one line naming the registry', async () => {
    reset();
    const ws = await workspace('token-wrong');
    const r = await cli(ws, ['--insecure', '--username', USER.username, '--password', 'nope-nope', 'process', `registry://${image.reference}`, `dir://${ws.out('store')}`]);
    const line = assertFailsOneLine(r, ws);
    assert.ok(line.includes(registry.host), line);
    assert.match(line, /password|credentials|username/i);
    assert.ok(!r.stderr.includes('nope-nope'));
    assert.ok(tokens.requests.length >= 1 && tokens.requests.every((q) => q.status === 401));
  });

  describe('through a slow proxy', () => {
    let proxy: FaultProxy;
    before(async () => {
      proxy = await startFaultProxy(registry.url);
    });
    after(() => proxy?.stop());

    test('expires_in 1 s and a slow blob: a second token is fetched', async () => {
      reset({ expiresIn: 1 });
      proxy.setRules([{ method: 'GET', path: blobPath(), fault: { kind: 'delay', ms: 1500 } }]);
      const ws = await workspace('token-expiry');
      const ref = { ...image, reference: `${proxy.host}/sample:v1` };
      await pullOk(ws, ref, ['-j', '1', '--username', USER.username, '--password', USER.password]);
      const issued = tokens.issued();
      assert.ok(issued.length >= 2, `a new token after expiry; token requests: ${issued.length}`);
      assert.ok(issued.every((q) => q.username === USER.username && q.scopes.join() === 'repository:sample:pull'));
      const bearers = new Set(proxy.requests.map((q) => q.authorization).filter((a) => a?.startsWith('Bearer ')));
      assert.ok(bearers.size >= 2, 'the registry saw the new token');
    });

    test('a 401 in mid-run (token revoked): the token is refreshed once and the run succeeds', async () => {
      reset();
      const big = [...(sample().layers ?? [])].sort((a, b) => b.size - a.size)[0];
      assert.ok(big);
      proxy.setRules([
        {
          method: 'GET',
          path: blobPath(big.digest),
          fault: {
            kind: 'status',
            status: 401,
            headers: { 'www-authenticate': `Bearer realm="${tokens.realm}",service="${TOKEN_SERVICE}",scope="repository:sample:pull",error="invalid_token"` },
            body: JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }),
          },
        },
      ]);
      proxy.requests.length = 0;
      const ws = await workspace('token-401');
      await pullOk(ws, { ...image, reference: `${proxy.host}/sample:v1` }, ['--username', USER.username, '--password', USER.password]);
      assert.equal(tokens.issued().length, 2, 'the first token, then one refresh');
      const bigGets = proxy.matching(blobPath(big.digest), 'GET');
      assert.deepEqual(
        bigGets.map((q) => q.status),
        [401, 200],
      );
      assert.notEqual(bigGets[0]?.authorization, bigGets[1]?.authorization, 'retried with the new token');
    });
  });
});
