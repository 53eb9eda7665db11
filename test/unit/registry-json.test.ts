// JSON from token servers, credential files and credential helpers goes through the
// core's parseJsonBytes: more than 100 nesting levels is refused, like any other
// JSON document occystrap reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { RegistryAuth } from '../../src/shell/registry/auth.js';
import { resolveCredentials } from '../../src/shell/registry/credentials.js';
import { HttpClient } from '../../src/shell/registry/http.js';

const deep = (levels: number): string => `${'['.repeat(levels)}1${']'.repeat(levels)}`;

test('a token answer nested 200 levels deep is refused, naming the nesting', async () => {
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(`{"junk":${deep(200)},"token":"t"}`));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const http = new HttpClient({ connections: 1, retries: 0, userAgent: 'test' });
  try {
    const auth = new RegistryAuth(http, 'reg.example', undefined, true);
    const realm = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
    await assert.rejects(auth.handleUnauthorized(`Bearer realm="${realm}",service="reg"`, 'repository:x:pull'), /nested more than 100 levels/);
    assert.deepEqual(auth.headersFor('repository:x:pull'), {});
  } finally {
    await http.close();
    server.close();
  }
});

test('a docker config or credential-helper answer nested 200 levels deep gives no credentials', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'occystrap-deep-creds-'));
  try {
    const auth = Buffer.from('user:pass').toString('base64');
    await writeFile(path.join(dir, 'config.json'), `{"junk":${deep(200)},"auths":{"file.example":{"auth":"${auth}"}},"credHelpers":{"helped.example":"deep"}}`);
    const helper = path.join(dir, 'docker-credential-deep');
    await writeFile(helper, `#!/bin/sh\ncat >/dev/null\necho '{"junk":${deep(200)},"Username":"u","Secret":"s"}'\n`);
    await chmod(helper, 0o755);
    const env = { PATH: `${dir}:${process.env['PATH'] ?? ''}`, DOCKER_CONFIG: path.join(dir), HOME: dir, REGISTRY_AUTH_FILE: path.join(dir, 'none.json') };
    assert.equal(await resolveCredentials('file.example', { env }), undefined, 'the deep config file is refused');
    // The helper is asked only through a readable config: give it one of its own.
    const helperDir = path.join(dir, 'h');
    await rm(helperDir, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(helperDir));
    await writeFile(path.join(helperDir, 'config.json'), JSON.stringify({ credHelpers: { 'helped.example': 'deep' } }));
    assert.equal(await resolveCredentials('helped.example', { env: { ...env, DOCKER_CONFIG: helperDir } }), undefined, 'the deep helper answer is refused');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
