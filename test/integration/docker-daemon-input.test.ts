// docker://NAME[:TAG] as a source, against real daemons the test starts (Debian's dockerd,
// Podman's Docker-compatible service) and a loopback daemon of our own for what the real
// ones here cannot show (Docker 25+'s OCI-layout export, an export cut short, a config
// that is not the inspected image, layers reaching the output before manifest.json).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tarStream from 'tar-stream';
import { after, before, describe, test } from 'node:test';
import { type Daemon, startDockerd, startPodmanService } from '../support/daemons.js';
import { cleanEnv, errorLines, occystrap, strayTempFiles } from './cli-helpers.js';
import { mountTmpfs, unmountAll } from './hardening-helpers.js';
import { fixtureIndex, fixturePath } from './fixtures.js';
import { type ArchiveEntry, manifestBytes, sha256Hex, tarBytes } from './archive-builder.js';

const work = mkdtempSync(path.join(tmpdir(), 'occystrap-daemon-in-'));
after(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => path.join(work, `${n++}-${name}`);
const sha256File = (file: string) => `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;
const sample = () => fixtureIndex().sample;

/** The diff_ids of a docker-loadable archive, as skopeo reads it. */
function archiveDiffIds(file: string): string[] {
  const r = spawnSync('skopeo', ['inspect', '--config', `docker-archive:${file}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
}

/** The layer files of a dir:// store, each hashed: the diff_ids, in manifest order. */
function storeDiffIds(store: string): string[] {
  const manifest = JSON.parse(readFileSync(path.join(store, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
  return (manifest[0] as { Layers: string[] }).Layers.map((l) => sha256File(path.join(store, l)));
}

for (const kind of ['docker', 'podman'] as const) {
  describe(`docker:// from ${kind === 'docker' ? "Debian's dockerd" : "Podman's service"}`, () => {
    let daemon: Daemon;
    before(async () => {
      assert.equal(process.getuid?.(), 0, 'the daemons run as root here; CI runs as root');
      daemon = kind === 'docker' ? await startDockerd() : await startPodmanService();
      daemon.cli(['load', '-i', fixturePath('docker-classic.tar')]);
    });
    after(async () => daemon?.stop());

    test('-> tar://: the archive holds the image (its diff_ids), and loads back into the daemon as the same image', async () => {
      const out = fresh(`${kind}.tar`);
      const r = await occystrap(['process', `docker://sample:v1?socket=${daemon.socket}`, `tar://${out}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(archiveDiffIds(out), sample().diffIds);
      daemon.cli(['rmi', 'sample:v1']);
      daemon.cli(['load', '-i', out]);
      const id = daemon.cli(['image', 'inspect', '--format', '{{.Id}}', 'sample:v1']).trim();
      assert.equal(id.replace(/^sha256:/, ''), sample().configDigest.replace(/^sha256:/, ''));
    });

    test('-> dir://: every layer file hashes to its diff_id; DOCKER_HOST names the socket', async () => {
      const store = fresh(`${kind}-store`);
      const r = await occystrap(['process', 'docker://sample:v1', `dir://${store}`], { env: cleanEnv({ DOCKER_HOST: `unix://${daemon.socket}` }) });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(storeDiffIds(store), sample().diffIds);
    });

    test('with a filter: normalize-timestamps rewrites the layers; the archive loads into the daemon', async () => {
      const out = fresh(`${kind}-normalized.tar`);
      const r = await occystrap(['process', `docker://sample:v1?socket=${daemon.socket}`, `tar://${out}?name=normalized:v1`, '-f', 'normalize-timestamps:timestamp=0']);
      assert.equal(r.code, 0, r.stderr);
      const ids = archiveDiffIds(out);
      assert.equal(ids.length, sample().diffIds.length);
      assert.notDeepEqual(ids, sample().diffIds, 'the layers were rewritten');
      daemon.cli(['load', '-i', out]);
      assert.match(daemon.cli(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', 'normalized:v1']), new RegExp(ids[0]!.slice(7)));
    });

    test('info and check read the image from the daemon (a layer listed twice, none of them needed)', async () => {
      const info = await occystrap(['info', `docker://sample:v1?socket=${daemon.socket}`]);
      assert.equal(info.code, 0, info.stderr);
      assert.ok(info.stdout.includes(sample().diffIds[0]!.slice(7, 19)), info.stdout);
      const check = await occystrap(['check', '--fast', `docker://sample:v1?socket=${daemon.socket}`]);
      assert.equal(check.code, 0, `${check.stdout}\n${check.stderr}`);
    });

    test('an image the daemon does not have: one line naming it and the socket, exit 1, nothing written', async () => {
      const dir = fresh(`${kind}-missing`);
      mkdirSync(dir);
      const r = await occystrap(['--temp-dir', path.join(dir, 'tmp'), 'process', `docker://nope:v9?socket=${daemon.socket}`, `tar://${dir}/out.tar`]);
      assert.equal(r.code, 1, r.stderr);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0] as string, new RegExp(`image nope:v9 is not in the daemon at ${daemon.socket.replace(/[.]/g, '\\.')}`));
      assert.deepEqual(readdirSync(dir).filter((e) => e !== 'tmp'), []);
      assert.deepEqual(strayTempFiles(dir), []);
    });
  });
}

test('no daemon at the socket: one line naming it and what to do, exit 1, nothing written', async () => {
  const dir = fresh('nosocket');
  mkdirSync(dir);
  const r = await occystrap(['process', `docker://sample:v1?socket=${dir}/none.sock`, `dir://${dir}/store`]);
  assert.equal(r.code, 1, r.stderr);
  const lines = errorLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] as string, /no Docker daemon socket at .*none\.sock \(\?socket=\); start dockerd \(or podman system service\), or give \?socket=PATH or DOCKER_HOST=unix:\/\/PATH/);
  assert.deepEqual(readdirSync(dir), []);
});

test('DOCKER_HOST that is not unix://: a usage error, exit 2', async () => {
  const r = await occystrap(['process', 'docker://sample:v1', `tar://${fresh('x.tar')}`], { env: cleanEnv({ DOCKER_HOST: 'tcp://127.0.0.1:2375' }) });
  assert.equal(r.code, 2, r.stderr);
  assert.match(errorLines(r.stderr)[0] as string, /DOCKER_HOST=tcp:\/\/127\.0\.0\.1:2375: only unix:\/\/ sockets are supported/);
});

// ---- a daemon of our own ---------------------------------------------------------------

interface FakeBehaviour {
  /** The archive the export streams. */
  readonly archive: string;
  /** What the inspect says: the image's Id and diff_ids. */
  readonly id: string;
  readonly diffIds: readonly string[];
  /** Cut the export after this many bytes (the connection is destroyed). */
  readonly cutAfter?: number;
  /** Hold back the archive's last `holdLast` bytes until `release()` resolves. */
  readonly holdLast?: number;
  readonly release?: () => Promise<void>;
}

async function fakeDaemon(behaviour: FakeBehaviour): Promise<{ socket: string; close: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(work, 'fake-'));
  const socket = path.join(dir, 'docker.sock');
  const server: Server = createServer((req, res: ServerResponse) => {
    const url = req.url ?? '';
    if (url === '/_ping') {
      res.writeHead(200, { 'Api-Version': '1.41', 'Content-Type': 'text/plain' });
      res.end('OK');
      return;
    }
    if (/^\/v1\.41\/images\/[^/]+\/json$/.test(url)) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ Id: behaviour.id, RepoTags: ['sample:v1'], RootFS: { Type: 'layers', Layers: behaviour.diffIds } }));
      return;
    }
    if (/^\/v1\.41\/images\/[^/]+\/get$/.test(url)) {
      res.writeHead(200, { 'Content-Type': 'application/x-tar' });
      const size = statSync(behaviour.archive).size;
      const first = behaviour.cutAfter ?? (behaviour.holdLast ? size - behaviour.holdLast : size);
      const head = createReadStream(behaviour.archive, { start: 0, end: first - 1 });
      head.pipe(res, { end: false });
      head.on('end', () => {
        if (behaviour.cutAfter !== undefined) {
          res.socket?.destroy();
          return;
        }
        if (!behaviour.holdLast) {
          res.end();
          return;
        }
        void (behaviour.release as () => Promise<void>)().then(() => createReadStream(behaviour.archive, { start: first }).pipe(res));
      });
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ message: `no route ${url}` }));
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { socket, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Where the tar header of entry `name` starts in `archive` (a plain ustar archive). */
function headerOffset(archive: string, name: string): number {
  const bytes = readFileSync(archive);
  for (let at = 0; at + 512 <= bytes.length; ) {
    const entryName = bytes.subarray(at, at + 100).toString('utf8').replace(/\0.*$/s, '');
    if (entryName === '') break;
    if (entryName === name) return at;
    const size = parseInt(bytes.subarray(at + 124, at + 136).toString('utf8').replace(/\0.*$/s, '').trim() || '0', 8);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${name} is not in ${archive}`);
}

const plain = () => {
  const facts = fixtureIndex().fixtures['docker25-plain.tar']?.images?.[0] as { diffIds: string[] };
  return { archive: fixturePath('docker25-plain.tar'), id: sample().configDigest, diffIds: facts.diffIds };
};

test("Docker 25+'s OCI-layout export: layers reach dir:// before manifest.json has arrived", async () => {
  const store = fresh('early-store');
  const firstLayer = path.join(store, sample().diffIds[0]!.slice(7), 'layer.tar');
  let seenEarly = false;
  const daemon = await fakeDaemon({
    ...plain(),
    // Everything from manifest.json's header on (the config and the layers come before it).
    holdLast: statSync(plain().archive).size - headerOffset(plain().archive, 'manifest.json'),
    release: async () => {
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && !existsSync(firstLayer)) await new Promise((r) => setTimeout(r, 20));
      seenEarly = existsSync(firstLayer);
    },
  });
  try {
    const r = await occystrap(['process', `docker://sample:v1?socket=${daemon.socket}`, `dir://${store}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(seenEarly, 'the first layer was in the store before the export sent manifest.json');
    assert.deepEqual(storeDiffIds(store), sample().diffIds);
  } finally {
    await daemon.close();
  }
});

test('an export cut short: one line saying the archive is truncated, exit 1, nothing left', async () => {
  const dir = fresh('cut');
  mkdirSync(dir);
  const daemon = await fakeDaemon({ ...plain(), cutAfter: 600 * 1024 });
  try {
    const r = await occystrap(['--temp-dir', path.join(dir, 'tmp'), 'process', `docker://sample:v1?socket=${daemon.socket}`, `tar://${dir}/out.tar`]);
    assert.equal(r.code, 1, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] as string, /truncated|terminated|closed/);
    assert.deepEqual(readdirSync(dir).filter((e) => e !== 'tmp'), []);
    assert.deepEqual(strayTempFiles(dir), []);
  } finally {
    await daemon.close();
  }
});

test('an export whose config is not the image the daemon inspected: EDIGEST, exit 1, nothing written', async () => {
  const dir = fresh('other-id');
  mkdirSync(dir);
  const daemon = await fakeDaemon({ ...plain(), id: `sha256:${'a'.repeat(64)}` });
  try {
    const r = await occystrap(['process', `docker://sample:v1?socket=${daemon.socket}`, `dir://${dir}/store`]);
    assert.equal(r.code, 1, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] as string, /the daemon exported config sha256:[0-9a-f]{64}, but the image it inspected is sha256:a{64}|but the daemon named sha256:a{64}/);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    await daemon.close();
  }
});

/** A legacy export of one 12 MiB random layer and a small one, the config last (Docker 20.10's order for this one). */
async function largeLayerArchive(): Promise<{ archive: string; image: { id: string; diffIds: string[] } }> {
  const layers = [await tarBytes([{ name: 'big.bin', data: randomBytes(12 << 20) }]), await tarBytes([{ name: 'small.txt', data: Buffer.from('small') }])];
  const diffIds = layers.map((l) => `sha256:${sha256Hex(l)}`);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const configHex = sha256Hex(config);
  const names = layers.map((_, i) => `${'e'.repeat(63)}${i}/layer.tar`);
  const archive = fresh('large-layer.tar');
  writeFileSync(
    archive,
    await tarBytes([
      ...layers.map((data, i) => ({ name: names[i] as string, data })),
      { name: `${configHex}.json`, data: config },
      { name: 'manifest.json', data: manifestBytes([{ Config: `${configHex}.json`, RepoTags: ['sample:v1'], Layers: names }]) },
    ]),
  );
  return { archive, image: { id: `sha256:${configHex}`, diffIds } };
}

/** `archive`'s entries with those `first` names moved to the front (a daemon whose export puts the config first). */
async function reordered(archive: string, first: (name: string) => boolean): Promise<string> {
  const entries: ArchiveEntry[] = [];
  const extract = tarStream.extract();
  createReadStream(archive).pipe(extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    const h = entry.header;
    entries.push({ name: h.name, type: h.type === 'directory' ? 'directory' : h.type === 'symlink' ? 'symlink' : 'file', data: Buffer.concat(chunks), ...(h.linkname ? { linkname: h.linkname } : {}) });
  }
  const out = fresh('reordered.tar');
  writeFileSync(out, await tarBytes([...entries.filter((e) => first(e.name)), ...entries.filter((e) => !first(e.name))]));
  return out;
}

test('docker:// -> tar:// writes each layer once, straight into the archive: with a 256 KiB --temp-dir, every export flavour (legacy with the config last or first, Docker 25+ plain, gzip, zstd) gives the image, and nothing is left', async () => {
  assert.equal(process.getuid?.(), 0, 'the small temp dir is a tmpfs mount; CI runs as root');
  const dir = fresh('straight');
  const small = path.join(dir, 'tmp');
  // The sample's largest layer is ~2 MB: spooled to a temp file, it would fill this tmpfs (ENOSPC).
  mountTmpfs(small, 'size=256k');
  try {
    const configHex = sample().configDigest.replace(/^sha256:/, '');
    const theSample = { id: sample().configDigest, diffIds: sample().diffIds };
    const flavours = [
      { flavour: 'legacy, config last', archive: fixturePath('docker-classic.tar'), image: theSample },
      { flavour: 'legacy, config first', archive: await reordered(fixturePath('docker-classic.tar'), (n) => n === `${configHex}.json`), image: theSample },
      { flavour: 'Docker 25+ plain', archive: fixturePath('docker25-plain.tar'), image: theSample },
      { flavour: 'Docker 25+ gzip', archive: fixturePath('docker25-gzip.tar'), image: theSample },
      { flavour: 'Docker 25+ zstd', archive: fixturePath('docker25-zstd.tar'), image: theSample },
      { flavour: 'legacy, a 12 MiB layer (written with O_DIRECT)', ...(await largeLayerArchive()) },
    ];
    for (const { flavour, archive, image } of flavours) {
      const daemon = await fakeDaemon({ archive, id: image.id, diffIds: image.diffIds });
      try {
        const out = path.join(dir, `${flavour.replace(/[^a-z0-9]+/gi, '-')}.tar`);
        const r = await occystrap(['--temp-dir', small, 'process', `docker://sample:v1?socket=${daemon.socket}`, `tar://${out}`]);
        assert.equal(r.code, 0, `${flavour}: ${r.stderr}`);
        assert.deepEqual(archiveDiffIds(out), image.diffIds, flavour);
        assert.deepEqual(readdirSync(small), [], `${flavour}: nothing left in the temp dir`);
      } finally {
        await daemon.close();
      }
    }
  } finally {
    unmountAll();
  }
});
