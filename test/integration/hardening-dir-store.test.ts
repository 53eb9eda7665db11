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
import { cleanEnv, cliPath, errorLines, hexOf, jsonSummary, listDir, occystrap, strayTempFiles } from './cli-helpers.js';
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
