// docker://NAME[:TAG] as a destination: the archive streamed into POST /images/load of real
// daemons the test starts (Debian's dockerd, Podman's service), and of a loopback daemon
// of the test's own that fails the load as a real one would (a full disk, a dropped
// connection).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Daemon, startDockerd, startPodmanService } from '../support/daemons.js';
import { registryWith } from '../support/sample-registry.js';
import type { Registry } from '../registry/harness.js';
import { errorLines, occystrap, strayTempFiles } from './cli-helpers.js';
import { fixtureIndex, fixturePath } from './fixtures.js';

const work = mkdtempSync(path.join(tmpdir(), 'occystrap-daemon-out-'));
after(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => path.join(work, `${n++}-${name}`);
const sample = () => fixtureIndex().sample;

function inspect(daemon: Daemon, ref: string): { Id: string; RootFS: { Layers: string[] } } {
  return (JSON.parse(daemon.cli(['image', 'inspect', ref])) as { Id: string; RootFS: { Layers: string[] } }[])[0] as { Id: string; RootFS: { Layers: string[] } };
}

for (const kind of ['docker', 'podman'] as const) {
  describe(`docker:// into ${kind === 'docker' ? "Debian's dockerd" : "Podman's service"}`, () => {
    let daemon: Daemon;
    before(async () => {
      assert.equal(process.getuid?.(), 0, 'the daemons run as root here; CI runs as root');
      daemon = kind === 'docker' ? await startDockerd() : await startPodmanService();
    });
    after(async () => daemon?.stop());

    test('tar:// -> docker://NAME:TAG: loaded, tagged with the destination name, the diff_ids and config as sent', async () => {
      const r = await occystrap(['process', `tar://${fixturePath('skopeo-legacy.tar')}`, `docker://loaded/sample:v7?socket=${daemon.socket}`]);
      assert.equal(r.code, 0, r.stderr);
      const image = inspect(daemon, 'loaded/sample:v7');
      assert.equal(image.Id.replace(/^sha256:/, ''), sample().configDigest.replace(/^sha256:/, ''));
      assert.deepEqual(image.RootFS.Layers, sample().diffIds);
    });
  });
}

describe("registry:// -> docker:// into Debian's dockerd, then docker run", () => {
  let daemon: Daemon;
  let registry: Registry;
  before(async () => {
    assert.equal(process.getuid?.(), 0, 'dockerd runs as root here; CI runs as root');
    daemon = await startDockerd();
    ({ registry } = await registryWith([]));
    const copy = spawnSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${fixturePath('runnable')}:v1`, `docker://${registry.host}/team/runnable:v1`], { encoding: 'utf8' });
    assert.equal(copy.status, 0, copy.stderr);
  });
  after(async () => {
    await daemon?.stop();
    await registry?.stop();
  });

  test('the image runs and prints what its command prints; with normalize-timestamps too (new diff_ids)', async () => {
    const r = await occystrap(['--insecure', 'process', `registry://${registry.host}/team/runnable:v1`, `docker://runnable:v1?socket=${daemon.socket}`]);
    assert.equal(r.code, 0, r.stderr);
    const run = spawnSync('docker', ['-H', `unix://${daemon.socket}`, 'run', '--rm', '--network', 'none', 'runnable:v1'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^hello from 1000:1000 groups 1000 50 in \/home\/app, /);
    const original = inspect(daemon, 'runnable:v1').RootFS.Layers;

    const f = await occystrap(['--insecure', 'process', `registry://${registry.host}/team/runnable:v1`, `docker://runnable:normalized?socket=${daemon.socket}`, '-f', 'normalize-timestamps:timestamp=0']);
    assert.equal(f.code, 0, f.stderr);
    const normalized = inspect(daemon, 'runnable:normalized').RootFS.Layers;
    assert.equal(normalized.length, original.length);
    assert.notDeepEqual(normalized, original);
    const again = spawnSync('docker', ['-H', `unix://${daemon.socket}`, 'run', '--rm', '--network', 'none', 'runnable:normalized'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /^hello from 1000:1000 groups 1000 50 in \/home\/app, /);
  });
});

// ---- a daemon of our own that fails the load --------------------------------------------

type LoadFailure = 'error-detail' | 'drop';

async function failingDaemon(failure: LoadFailure): Promise<{ socket: string; requests: string[]; close: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(work, 'fake-'));
  const socket = path.join(dir, 'docker.sock');
  const requests: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.url === '/_ping') {
      res.writeHead(200, { 'Api-Version': '1.41' });
      res.end('OK');
      return;
    }
    if (req.method === 'POST' && /^\/v1\.41\/images\/load/.test(req.url ?? '')) {
      let read = 0;
      req.on('data', (c: Buffer) => {
        read += c.length;
        // The daemon's disk fills after 64 KiB of the archive, or its connection drops.
        if (failure === 'drop' && read > 64 * 1024) req.socket.destroy();
      });
      req.on('end', () => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(`${JSON.stringify({ stream: 'Loading layer\n' })}\n${JSON.stringify({ errorDetail: { message: 'write /var/lib/docker/tmp/docker-import-1/layer.tar: no space left on device' }, error: 'write ...: no space left on device' })}\n`);
      });
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ message: `no route ${req.url}` }));
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { socket, requests, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

for (const [failure, phrase] of [
  ['error-detail', /the daemon failed to load the image: write \/var\/lib\/docker\/tmp\/docker-import-1\/layer\.tar: no space left on device$/],
  ['drop', /sending the image to the daemon failed|talking to the Docker daemon at .* failed/],
] as const) {
  test(`a load the daemon fails (${failure}): one line saying why, exit 1, nothing tagged, no temp files`, async () => {
    const dir = fresh(`load-${failure}`);
    mkdirSync(dir);
    const daemon = await failingDaemon(failure);
    try {
      const r = await occystrap(['--temp-dir', path.join(dir, 'tmp'), 'process', `tar://${fixturePath('skopeo-legacy.tar')}`, `docker://loaded/sample:v1?socket=${daemon.socket}`]);
      assert.equal(r.code, 1, r.stderr);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0] as string, phrase);
      // Nothing after the load: no tag, no inspect of a half-loaded image.
      assert.ok(!daemon.requests.some((q) => /\/tag|\/json$/.test(q)), daemon.requests.join(', '));
      assert.deepEqual(readdirSync(dir).filter((e) => e !== 'tmp'), []);
      assert.deepEqual(strayTempFiles(dir), []);
    } finally {
      await daemon.close();
    }
  });
}

test('a digest cannot name a loaded image: usage error, exit 2', async () => {
  const r = await occystrap(['process', `tar://${fixturePath('skopeo-legacy.tar')}`, `docker://x@sha256:${'a'.repeat(64)}?socket=/none`]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(errorLines(r.stderr)[0] as string, /a loaded image is tagged NAME:TAG; a digest cannot be a tag/);
});
