// A dir:// store's contents are not trusted: the real CLI runs into stores where
// symlinks, garbage, special files and deep JSON have been planted, and into one store
// from several processes at once.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, fixture, fixturePath, sha256File, tmpDir } from './fixtures.js';
import { cleanEnv, cliPath, errorLines, hexOf, jsonSummary, listDir, makeBigArchive, occystrap, startOccystrap, strayTempFiles, waitFor } from './cli-helpers.js';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import * as tarStream from 'tar-stream';
import { repoRoot } from './fixtures.js';

after(async () => {
  await cleanupTmpDirs();
});

const SOURCE = 'skopeo-legacy.tar';
const facts = () => fixture(SOURCE);

interface Workspace {
  base: string;
  store: string;
  temp: string;
  /** A private 0600 file outside the store. */
  secret: string;
  secretText: string;
}

async function workspace(name: string): Promise<Workspace> {
  const base = await tmpDir(name);
  const store = path.join(base, 'store');
  mkdirSync(store);
  const secret = path.join(base, 'secret.txt');
  const secretText = `{"token": "SECRET-${randomBytes(8).toString('hex')}"}`;
  writeFileSync(secret, secretText, { mode: 0o600 });
  chmodSync(secret, 0o600);
  return { base, store, temp: path.join(base, 'tmp'), secret, secretText };
}

const processArgs = (ws: Workspace, source = fixturePath(SOURCE)) => ['--temp-dir', ws.temp, '-O', 'json', 'process', `tar://${source}`, `dir://${ws.store}`];

/** Every regular file under dir, found without following links. */
function regularFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...regularFiles(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

function assertSecretSafe(ws: Workspace): void {
  const st = statSync(ws.secret);
  assert.equal(st.mode & 0o777, 0o600, 'the private file keeps mode 0600');
  assert.equal(readFileSync(ws.secret, 'utf8'), ws.secretText, 'the private file is unchanged');
  for (const f of regularFiles(ws.store)) {
    assert.ok(!readFileSync(f).toString('latin1').includes(ws.secretText.slice(12, 40)), `${f} must not contain the private file's bytes`);
  }
}

function assertOneStoreError(r: { code: number; stderr: string }, ws: Workspace, name: string): string {
  assert.equal(r.code, 1, r.stderr);
  const lines = errorLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  const line = lines[0] as string;
  assert.ok(line.startsWith(`occystrap: error: dir://${ws.store}: `), `names the URI first: ${line}`);
  assert.ok(line.includes(name), `names ${name}: ${line}`);
  assert.ok(!/\n\s+at /.test(r.stderr), 'no stack trace');
  assert.deepEqual(strayTempFiles(ws.store), [], 'no temp files left');
  return line;
}

/** Layers and config of the fixture are in the store, each hashing to its name. */
async function assertImageStored(store: string): Promise<void> {
  const f = facts();
  assert.equal(await sha256File(path.join(store, `${hexOf(f.configDigest as string)}.json`)), f.configDigest);
  for (const d of new Set(f.diffIds)) {
    const p = path.join(store, hexOf(d), 'layer.tar');
    assert.ok(lstatSync(p).isFile(), `${p} is a regular file`);
    assert.equal(await sha256File(p), d);
  }
  assert.ok(lstatSync(path.join(store, 'manifest.json')).isFile());
}

interface Bounded {
  code: number | null;
  stderr: string;
  timedOut: boolean;
  /** Largest resident set seen, in KiB. */
  maxRssKiB: number;
}

/**
 * Runs the CLI, sampling its RSS; SIGKILLs it after `timeoutMs` or above 1 GiB, so a
 * hang or a runaway read fails the test instead of the machine.
 */
function boundedRun(args: readonly string[], timeoutMs = 20_000): Promise<Bounded> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd: repoRoot, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    const err: Buffer[] = [];
    child.stderr.on('data', (c: Buffer) => err.push(c));
    let maxRssKiB = 0;
    let timedOut = false;
    const sample = setInterval(() => {
      try {
        const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) maxRssKiB = Math.max(maxRssKiB, Number(m[1]));
        if (maxRssKiB > 1024 * 1024) child.kill('SIGKILL');
      } catch {
        // exited
      }
    }, 20);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sample);
      clearTimeout(timer);
      resolve({ code, stderr: Buffer.concat(err).toString('utf8'), timedOut, maxRssKiB });
    });
  });
}

describe('dir:// never follows links planted in the store', () => {
  test('a symlinked <diff_id> directory is refused; nothing lands outside the store', async () => {
    const ws = await workspace('link-layer-dir');
    const outside = path.join(ws.base, 'outside');
    mkdirSync(outside);
    const hex = hexOf(facts().diffIds[1] as string);
    symlinkSync(outside, path.join(ws.store, hex));
    const r = await occystrap(processArgs(ws));
    const line = assertOneStoreError(r, ws, hex);
    assert.match(line, /symbolic link/);
    assert.deepEqual(listDir(outside), [], 'no layer written through the link');
    assert.ok(lstatSync(path.join(ws.store, hex)).isSymbolicLink(), 'the link itself is left alone');
    assert.ok(!existsSync(path.join(ws.store, 'manifest.json')), 'no manifest');
    assert.ok(!existsSync(path.join(ws.store, 'catalog.json')), 'no catalog');
  });

  for (const name of ['catalog.json', 'manifest.json']) {
    test(`${name} symlinked to a private file is refused and never read`, async () => {
      const ws = await workspace(`link-${name}`);
      symlinkSync(ws.secret, path.join(ws.store, name));
      const r = await occystrap(processArgs(ws));
      const line = assertOneStoreError(r, ws, name);
      assert.match(line, /symbolic link/);
      assertSecretSafe(ws);
      assert.ok(lstatSync(path.join(ws.store, name)).isSymbolicLink(), 'the link is left as it was');
      assert.deepEqual(listDir(ws.store), [name], 'the failed run removed what it added');
    });
  }

  test('a manifest.json symlink planted with unique names (restore path) leaks nothing', async () => {
    // With unique names the manifest is manifest-<image>-<tag>.json: plant that one.
    const ws = await workspace('link-unique-manifest');
    const name = 'manifest-docker.io_library_sample-v1.json';
    symlinkSync(ws.secret, path.join(ws.store, name));
    const r = await occystrap(['--temp-dir', ws.temp, 'process', `tar://${fixturePath(SOURCE)}`, `dir://${ws.store}?unique_names=true`]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(errorLines(r.stderr).length, 1, r.stderr);
    assert.ok(errorLines(r.stderr)[0]?.includes(name), r.stderr);
    assertSecretSafe(ws);
  });

  test('a layer.tar or config symlinked to a private file is replaced by the real file, the target untouched', async () => {
    const ws = await workspace('link-layer-file');
    const f = facts();
    const hex = hexOf(f.diffIds[0] as string);
    mkdirSync(path.join(ws.store, hex));
    symlinkSync(ws.secret, path.join(ws.store, hex, 'layer.tar'));
    symlinkSync(ws.secret, path.join(ws.store, `${hexOf(f.configDigest as string)}.json`));
    const r = await occystrap(processArgs(ws));
    assert.equal(r.code, 0, r.stderr);
    await assertImageStored(ws.store);
    assertSecretSafe(ws);
  });
});

describe('dir:// verifies what it counts as present', () => {
  test('a garbage layer.tar and a wrong config are replaced, not kept', async () => {
    const ws = await workspace('garbage');
    const f = facts();
    const hex = hexOf(f.diffIds[0] as string);
    mkdirSync(path.join(ws.store, hex));
    writeFileSync(path.join(ws.store, hex, 'layer.tar'), 'not the layer');
    writeFileSync(path.join(ws.store, `${hexOf(f.configDigest as string)}.json`), '{"not":"the config"}');
    const r = await occystrap(processArgs(ws));
    assert.equal(r.code, 0, r.stderr);
    await assertImageStored(ws.store);
    const summary = jsonSummary(r.stdout);
    // The repeated layer is the only one skipped: the garbage one was stored again.
    assert.equal(summary.layersSkipped, f.diffIds.length - new Set(f.diffIds).size, r.stdout);
  });

  test('a verified layer is kept and counted as skipped', async () => {
    const ws = await workspace('verified');
    const f = facts();
    assert.equal((await occystrap(processArgs(ws))).code, 0);
    const layer = path.join(ws.store, hexOf(f.diffIds[0] as string), 'layer.tar');
    const before = statSync(layer).ino;
    const r = await occystrap(processArgs(ws));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonSummary(r.stdout).layersSkipped, f.diffIds.length);
    assert.equal(statSync(layer).ino, before, 'the stored file was kept');
  });

  test('a FIFO or a directory at layer.tar: the FIFO is replaced without blocking, the directory refused', async () => {
    const ws = await workspace('special-layer');
    const f = facts();
    const hex = hexOf(f.diffIds[0] as string);
    mkdirSync(path.join(ws.store, hex));
    execFileSync('mkfifo', [path.join(ws.store, hex, 'layer.tar')]);
    const r = await boundedRun(['--temp-dir', ws.temp, 'process', `tar://${fixturePath(SOURCE)}`, `dir://${ws.store}`]);
    assert.equal(r.timedOut, false, 'must not hang on a FIFO');
    assert.equal(r.code, 0, r.stderr);
    await assertImageStored(ws.store);

    const ws2 = await workspace('dir-layer');
    mkdirSync(path.join(ws2.store, hex, 'layer.tar'), { recursive: true });
    const r2 = await occystrap(processArgs(ws2));
    assertOneStoreError(r2, ws2, `${hex}/layer.tar`);
  });
});

describe('dir:// reads only regular files from a store, never blocking', () => {
  for (const name of ['catalog.json', 'manifest.json']) {
    for (const kind of ['fifo', 'char device'] as const) {
      test(`${name} as a ${kind} fails fast with one line and bounded memory`, { timeout: 30_000 }, async () => {
        const ws = await workspace(`special-${name}-${kind}`);
        const p = path.join(ws.store, name);
        if (kind === 'fifo') execFileSync('mkfifo', [p]);
        else execFileSync('mknod', [p, 'c', '1', '5']); // like /dev/zero, in our own temp dir
        const r = await boundedRun(['--temp-dir', ws.temp, 'process', `tar://${fixturePath(SOURCE)}`, `dir://${ws.store}`]);
        assert.equal(r.timedOut, false, `must not hang (stderr: ${r.stderr})`);
        assert.ok(r.maxRssKiB < 512 * 1024, `RSS stayed small: ${r.maxRssKiB} KiB`);
        assertOneStoreError({ code: r.code ?? -1, stderr: r.stderr }, ws, name);
        assert.match(errorLines(r.stderr)[0] as string, kind === 'fifo' ? /FIFO/ : /character device/);
        assert.deepEqual(listDir(ws.store), [name], 'the failed run removed what it added');
      });
    }
  }

  test('a catalog.json over 4 MiB is refused by bytes read', async () => {
    const ws = await workspace('big-catalog');
    writeFileSync(path.join(ws.store, 'catalog.json'), Buffer.alloc(4 * 1024 * 1024 + 1, 0x20));
    const r = await occystrap(processArgs(ws));
    assert.match(assertOneStoreError(r, ws, 'catalog.json'), /over 4194304 bytes/);
  });

  for (const [label, text] of [
    ['arrays', `${'['.repeat(200_000)}${']'.repeat(200_000)}`],
    ['objects', `${'{"a":'.repeat(200_000)}1${'}'.repeat(200_000)}`],
  ] as const) {
    test(`a deeply nested catalog.json (${label}) gives one line naming the URI and the file`, async () => {
      const ws = await workspace(`deep-${label}`);
      writeFileSync(path.join(ws.store, 'catalog.json'), text);
      const r = await occystrap(processArgs(ws));
      const line = assertOneStoreError(r, ws, 'catalog.json');
      assert.match(line, /fix or remove catalog\.json/);
      assert.doesNotMatch(r.stderr, /Maximum call stack/);
      assert.deepEqual(listDir(ws.store), ['catalog.json']);
    });
  }
});

describe('dir:// concurrent runs into one store', () => {
  test('4 runs at once, 5 times: every catalog entry survives', { timeout: 300_000 }, async () => {
    const base = await tmpDir('concurrent');
    const archives: string[] = [];
    for (let i = 0; i < 4; i++) {
      const file = path.join(base, `img${i}.tar`);
      await makeBigArchive(file, 4096 + i * 512, `race/img${i}:v${i}`);
      archives.push(file);
    }
    for (let round = 0; round < 5; round++) {
      const store = path.join(base, `store${round}`);
      const temp = path.join(base, `tmp${round}`);
      const runs = await Promise.all(archives.map((a) => occystrap(['--temp-dir', temp, 'process', `tar://${a}`, `dir://${store}?unique_names=true`])));
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      const catalog = JSON.parse(readFileSync(path.join(store, 'catalog.json'), 'utf8')) as Record<string, Record<string, string>>;
      const expected = Object.fromEntries(archives.map((_, i) => [`race/img${i}`, { [`v${i}`]: `manifest-race_img${i}-v${i}.json` }]));
      assert.deepEqual(catalog, expected, `round ${round}: every run's entry is in catalog.json`);
      assert.ok(!existsSync(path.join(store, '.occystrap.lock')), 'the lock is released');
      assert.deepEqual(strayTempFiles(store), []);
    }
  });

  test('a stale lock of a dead process is broken; a live one is waited for', { timeout: 60_000 }, async () => {
    const ws = await workspace('stale-lock');
    // A pid that is surely not running: a child that has exited.
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => dead.on('close', r));
    const lock = path.join(ws.store, '.occystrap.lock');
    writeFileSync(lock, JSON.stringify({ pid: dead.pid, host: hostname(), nonce: 'x' }));
    const r = await occystrap(processArgs(ws));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(lock), 'the stale lock is gone');

    // Held by this (live) test process for a second: the run waits, then succeeds.
    const ws2 = await workspace('live-lock');
    const lock2 = path.join(ws2.store, '.occystrap.lock');
    writeFileSync(lock2, JSON.stringify({ pid: process.pid, host: hostname(), nonce: 'y' }));
    const started = Date.now();
    const releaseLater = setTimeout(() => execFileSync('rm', ['-f', lock2]), 1500);
    const r2 = await occystrap(processArgs(ws2));
    clearTimeout(releaseLater);
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok(Date.now() - started >= 1400, 'the run waited for the lock');
    assert.ok(existsSync(path.join(ws2.store, 'catalog.json')));
  });
});

/** A tar of one file: a layer. */
async function layerTar(name: string, content: string): Promise<Buffer> {
  const pack = tarStream.pack();
  pack.entry({ name, size: Buffer.byteLength(content), mode: 0o644, mtime: new Date(0) }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/**
 * A docker-save archive (manifest first) with these layers; `lie` makes the config's
 * diff_id for the last layer wrong, so the input fails after the others were stored.
 */
async function docker110Archive(file: string, repoTag: string, layers: Buffer[], lie = false): Promise<{ diffIds: string[] }> {
  const diffIds = layers.map((l, i) => `sha256:${lie && i === layers.length - 1 ? sha('a lie') : sha(l)}`);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds }, history: layers.map(() => ({ created_by: 'test' })) }));
  const configName = `${sha(config)}.json`;
  const ids = layers.map((l, i) => sha(`${i}:${sha(l)}`));
  const pack = tarStream.pack();
  const add = (name: string, data: Buffer) => new Promise<void>((res, rej) => pack.entry({ name, size: data.length, mode: 0o644, mtime: new Date(0) }, data, (e) => (e ? rej(e) : res())));
  const out: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as unknown as AsyncIterable<Buffer>) out.push(c);
  })();
  await add('manifest.json', Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: ids.map((id) => `${id}/layer.tar`) }])));
  await add(configName, config);
  for (let i = 0; i < layers.length; i++) await add(`${ids[i]}/layer.tar`, layers[i] as Buffer);
  pack.finalize();
  await collected;
  writeFileSync(file, Buffer.concat(out));
  return { diffIds };
}

describe('dir:// store lock file planted as a link', () => {
  test('a symlinked .occystrap.lock is refused with one line; its target is untouched', { timeout: 30_000 }, async () => {
    const ws = await workspace('link-lock');
    symlinkSync(ws.secret, path.join(ws.store, '.occystrap.lock'));
    const r = await occystrap(processArgs(ws));
    assert.match(assertOneStoreError(r, ws, '.occystrap.lock'), /not a regular file; remove /);
    assertSecretSafe(ws);
    assert.ok(lstatSync(path.join(ws.store, '.occystrap.lock')).isSymbolicLink());
  });
});

describe('dir:// a failed run spares what another run committed meanwhile', () => {
  test('a layer added by a failing run and used by a run that finished first stays', { timeout: 60_000 }, async () => {
    const base = await tmpDir('spare');
    const store = path.join(base, 'store');
    mkdirSync(store);
    const shared = await layerTar('shared.txt', 'shared layer');
    const a = await docker110Archive(path.join(base, 'a.tar'), 'spare/a:v1', [shared, await layerTar('bad.txt', 'bad layer')], true);
    await docker110Archive(path.join(base, 'b.tar'), 'spare/b:v1', [shared]);
    const sharedFile = path.join(store, hexOf(a.diffIds[0] as string), 'layer.tar');
    // The test holds the store lock: A's rollback has to wait for it.
    const lock = path.join(store, '.occystrap.lock');
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), nonce: 'test' }));
    const runA = startOccystrap(['--temp-dir', path.join(base, 'tmpA'), 'process', `tar://${path.join(base, 'a.tar')}`, `dir://${store}?unique_names=true`]);
    let aExited = false;
    void runA.exited.then(() => (aExited = true));
    await waitFor('A to store the shared layer', () => (existsSync(sharedFile) || aExited ? true : undefined));
    assert.ok(!aExited, 'A is still waiting to roll back');
    runA.child.kill('SIGSTOP');
    try {
      // B finds the shared layer present, and waits for the lock to commit.
      const runB = startOccystrap(['--temp-dir', path.join(base, 'tmpB'), '-O', 'json', 'process', `tar://${path.join(base, 'b.tar')}`, `dir://${store}?unique_names=true`]);
      await new Promise((r) => setTimeout(r, 500));
      execFileSync('rm', ['-f', lock]);
      const b = await runB.exited;
      assert.equal(b.code, 0, b.stderr);
      assert.equal(jsonSummary(b.stdout).layersSkipped, 1, 'B used the layer A had stored');
    } finally {
      runA.child.kill('SIGCONT');
    }
    const resultA = await runA.exited;
    assert.equal(resultA.code, 1, resultA.stderr);
    assert.match(resultA.stderr, /diff_id/);
    assert.ok(lstatSync(sharedFile).isFile(), 'the layer B names is still there');
    assert.equal(await sha256File(sharedFile), a.diffIds[0]);
    const manifestB = JSON.parse(readFileSync(path.join(store, 'manifest-spare_b-v1.json'), 'utf8')) as { Layers: string[] }[];
    assert.deepEqual(manifestB[0]?.Layers, [`${hexOf(a.diffIds[0] as string)}/layer.tar`]);
    assert.ok(!existsSync(path.join(store, 'manifest-spare_a-v1.json')), 'A left no manifest');
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(path.join(store, 'catalog.json'), 'utf8')) as object), ['spare/b']);
    assert.ok(!existsSync(path.join(store, hexOf(a.diffIds[1] as string))), 'A removed what only it used');
    assert.ok(!existsSync(lock));
  });
});
