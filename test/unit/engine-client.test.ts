// The Docker Engine API client (src/shell/daemon): which socket, version negotiation, and
// the one-line errors, against a unix-socket HTTP server of the test's own.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { compareApiVersions, daemonMessage, EngineClient, engineEndpoint } from '../../src/shell/daemon/engine.js';

const dir = mkdtempSync(path.join(tmpdir(), 'occystrap-engine-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ socket: string; paths: string[]; close: () => Promise<void> }> {
  const socket = path.join(dir, `d${n++}.sock`);
  const paths: string[] = [];
  const server = createServer((req, res) => {
    paths.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { socket, paths, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const pingWith = (version: string | undefined) => (req: IncomingMessage, res: ServerResponse) => {
  if (req.url === '/_ping') {
    res.writeHead(200, version ? { 'Api-Version': version, Server: 'Fake/1' } : {});
    res.end('OK');
    return;
  }
  res.writeHead(404, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ message: 'No such image: nope:v1' }));
};

test('the socket: ?socket= first, then DOCKER_HOST (unix:// only), then /var/run/docker.sock', () => {
  assert.deepEqual(engineEndpoint('/a.sock', { DOCKER_HOST: 'unix:///b.sock' }), { socket: '/a.sock', from: '?socket=' });
  assert.deepEqual(engineEndpoint(undefined, { DOCKER_HOST: 'unix:///b.sock' }), { socket: '/b.sock', from: 'DOCKER_HOST' });
  assert.deepEqual(engineEndpoint(undefined, {}), { socket: '/var/run/docker.sock', from: 'the default' });
  assert.throws(() => engineEndpoint(undefined, { DOCKER_HOST: 'tcp://1.2.3.4:2375' }), { code: 'EUSAGE', message: /only unix:\/\/ sockets are supported/ });
  assert.throws(() => engineEndpoint(undefined, { DOCKER_HOST: 'unix://' }), { code: 'EUSAGE' });
  assert.throws(() => engineEndpoint('', {}), { code: 'EUSAGE' });
});

test('API versions compare numerically; the daemon message is its JSON message, else the status and text', () => {
  assert.ok(compareApiVersions('1.41', '1.9') > 0);
  assert.equal(compareApiVersions('1.43', '1.43'), 0);
  assert.ok(compareApiVersions('1.24', '1.25') < 0);
  assert.equal(daemonMessage(500, '{"message":"write /var/lib/docker/tmp: no space left on device\\nmore"}'), 'the daemon said: write /var/lib/docker/tmp: no space left on device (HTTP 500)');
  assert.equal(daemonMessage(502, 'Bad gateway\nmore'), 'HTTP 502: Bad gateway');
});

test('the version: the daemon\'s, capped at 1.43; requests go under /v<version>/', async () => {
  for (const [offered, used] of [['1.41', '1.41'], ['1.47', '1.43']] as const) {
    const d = await serve(pingWith(offered));
    const client = await EngineClient.connect({ socket: d.socket, from: '?socket=' }, 'source', 'docker://x');
    try {
      assert.equal(client.apiVersion, used);
      await assert.rejects(client.inspectImage('nope:v1'), { code: 'EINPUT', message: /docker:\/\/x: image nope:v1 is not in the daemon at .*d\d+\.sock/ });
      assert.equal(d.paths.at(-1), `/v${used}/images/nope%3Av1/json`);
    } finally {
      await client.close();
      await d.close();
    }
  }
});

test('refused: a daemon older than 1.25, something that is not an Engine API, no socket; as a destination the errors are EOUTPUT', async () => {
  const old = await serve(pingWith('1.24'));
  await assert.rejects(EngineClient.connect({ socket: old.socket, from: '?socket=' }, 'source', 'docker://x'), { code: 'EINPUT', message: /speaks Engine API 1\.24, older than 1\.25 \(Docker 1\.13\), which occystrap needs; upgrade the daemon/ });
  await old.close();
  const other = await serve(pingWith(undefined));
  await assert.rejects(EngineClient.connect({ socket: other.socket, from: 'DOCKER_HOST' }, 'destination', 'docker://x'), { code: 'EOUTPUT', message: /\(DOCKER_HOST\) did not answer as a Docker Engine API/ });
  await other.close();
  await assert.rejects(EngineClient.connect({ socket: path.join(dir, 'none.sock'), from: 'the default' }, 'source', 'docker://x'), {
    code: 'EINPUT',
    message: /no Docker daemon socket at .*none\.sock \(the default\); start dockerd/,
  });
});

test("an error the daemon reports while exporting: its message, in one line", async () => {
  const d = await serve((req, res) => {
    if (req.url === '/_ping') return pingWith('1.41')(req, res);
    res.writeHead(500, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ message: 'open /var/lib/docker/image: permission denied' }));
  });
  const client = await EngineClient.connect({ socket: d.socket, from: '?socket=' }, 'source', 'docker://x');
  try {
    await assert.rejects(client.exportImage('sample:v1'), { code: 'EINPUT', message: 'docker://x: exporting sample:v1: the daemon said: open /var/lib/docker/image: permission denied (HTTP 500)' });
  } finally {
    await client.close();
    await d.close();
  }
});
