// SIGINT / SIGTERM in the middle of a run on a big (~200 MB layer) archive
// made on the fly: exit 130 / 143, no destination, no temp files, no
// `.occystrap-*` file beside the target. Also: global options before and
// after the command and from the environment.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, fixture, fixturePath, run, sha256File, tmpDir, type ImageFacts } from './fixtures.js';
import {
  cleanEnv,
  cliPath,
  errorLines,
  hexOf,
  identity,
  jsonSummary,
  listDir,
  makeBigArchive,
  occystrap,
  runDirs,
  startOccystrap,
  strayTempFiles,
  summaryLines,
  waitFor,
  type BigArchive,
} from './cli-helpers.js';

/** Size of the big layer's one file (the layer tar is a little larger). */
const BIG_DATA_BYTES = 200 * 1024 * 1024;

let big: BigArchive;
let bigDir = '';

before(async () => {
  bigDir = await tmpDir('big-archive');
  big = await makeBigArchive(path.join(bigDir, 'big.tar'), BIG_DATA_BYTES);
});

after(async () => {
  await cleanupTmpDirs();
});

/** A file in the run dir under `temp` that already holds more than `min` bytes. */
function spoolingFile(temp: string, min = 1 << 20): string | undefined {
  for (const rd of runDirs(temp)) {
    const dir = path.join(temp, rd);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        if (statSync(path.join(dir, n)).size > min) return path.join(dir, n);
      } catch {
        // removed meanwhile
      }
    }
  }
  return undefined;
}

/** The temp archive beside a tar:// target, once it holds more than `min` bytes. */
function besideFile(dir: string, min = 1 << 20): string | undefined {
  for (const n of strayTempFiles(dir)) {
    try {
      if (statSync(path.join(dir, n)).size > min) return path.join(dir, n);
    } catch {
      // removed meanwhile
    }
  }
  return undefined;
}

type Sig = 'SIGINT' | 'SIGTERM';
const EXIT: Record<Sig, number> = { SIGINT: 130, SIGTERM: 143 };

async function interrupt(opts: { kind: 'dir' | 'tar'; signal: Sig; when: 'spooling' | 'archiving'; store?: string }): Promise<void> {
  const base = await tmpDir(`int-${opts.kind}-${opts.signal}`);
  const temp = path.join(base, 'tmp');
  const dest = opts.store ?? path.join(base, opts.kind === 'dir' ? 'store' : 'out.tar');
  const destDir = path.dirname(dest);
  const listingBefore = listDir(destDir);
  const started = startOccystrap(['--temp-dir', temp, 'process', `tar://${big.file}`, `${opts.kind}://${dest}`]);
  try {
    const probe = opts.when === 'spooling' ? () => spoolingFile(temp) : () => besideFile(destDir);
    const seen = await Promise.race([
      waitFor(`the run to be ${opts.when}`, probe),
      started.exited.then((r) => {
        throw new Error(`the run ended before it could be interrupted (exit ${String(r.code)}): ${r.stderr}`);
      }),
    ]);
    assert.ok(seen);
    started.child.kill(opts.signal);
  } catch (e) {
    started.child.kill('SIGKILL');
    throw e;
  }
  const r = await started.exited;
  assert.equal(r.signal, null, `the CLI handles ${opts.signal} itself\n${r.stderr}`);
  assert.equal(r.code, EXIT[opts.signal], `exit status\n${r.stderr}`);
  const lines = r.stderr.split('\n');
  assert.ok(lines.includes(`occystrap: interrupted by ${opts.signal}; partial output and temp files removed`), r.stderr);
  assert.deepEqual(errorLines(r.stderr), []);
  assert.deepEqual(summaryLines(r.stderr), [], 'no summary for an interrupted run');
  assert.deepEqual(listDir(temp), [], 'temp dir empty');
  if (opts.store === undefined) assert.equal(existsSync(dest), false, `${dest} must not exist`);
  assert.deepEqual(strayTempFiles(destDir), [], 'no temp file beside the target');
  if (opts.store === undefined) assert.deepEqual(listDir(base), ['tmp']);
  else assert.deepEqual(listDir(destDir), listingBefore);
}

describe('interrupting a run on a ~200 MB layer', () => {
  test('archive made on the fly is what it claims', () => {
    assert.ok(big.layerSize > BIG_DATA_BYTES);
    assert.equal(statSync(big.file).size, big.archiveSize);
    assert.ok(big.archiveSize > big.layerSize);
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    for (const kind of ['dir', 'tar'] as const) {
      test(`${signal} while the layer is spooled (${kind}://) -> exit ${EXIT[signal]}, nothing left`, async () => {
        await interrupt({ kind, signal, when: 'spooling' });
      });
    }
    test(`${signal} while the tar:// archive is being written beside the target -> exit ${EXIT[signal]}, nothing left`, async () => {
      await interrupt({ kind: 'tar', signal, when: 'archiving' });
    });
  }

  test('SIGINT into an existing store leaves the store as it was', async () => {
    const base = await tmpDir('int-existing');
    const store = path.join(base, 'store');
    const ok = await occystrap(['--temp-dir', path.join(base, 'tmp'), 'process', `tar://${fixturePath('skopeo-legacy.tar')}`, `dir://${store}`]);
    assert.equal(ok.code, 0, ok.stderr);
    const files = listDir(store).filter((n) => n.endsWith('.json'));
    const before = Object.fromEntries(files.map((n) => [n, readFileSync(path.join(store, n), 'utf8')]));
    const listing = listDir(store);
    await interrupt({ kind: 'dir', signal: 'SIGINT', when: 'spooling', store });
    assert.deepEqual(listDir(store), listing);
    assert.deepEqual(Object.fromEntries(files.map((n) => [n, readFileSync(path.join(store, n), 'utf8')])), before);
  });

  test('SIGINT as soon as the run dir appears -> exit 130 and the run dir is removed (repeated)', async () => {
    // Races the window between the run dir being made and the signal
    // handlers being installed: the signal may land at any point after the
    // run dir exists, and must still leave nothing behind.
    // Stops at the first failure; a fixed CLI costs ~15 short runs.
    const attempts = 15;
    const failures: string[] = [];
    for (let i = 0; i < attempts && failures.length === 0; i++) {
      const base = await tmpDir('int-early');
      const temp = path.join(base, 'tmp');
      const dest = path.join(base, 'store');
      const started = startOccystrap(['--temp-dir', temp, 'process', `tar://${big.file}`, `dir://${dest}`]);
      // Busy-poll (no timer granularity): signal the moment the run dir exists.
      const deadline = Date.now() + 20_000;
      while (runDirs(temp).length === 0 && Date.now() < deadline && started.child.exitCode === null) {
        // spin
      }
      started.child.kill('SIGINT');
      const r = await started.exited;
      const leftover = listDir(temp);
      if (r.code !== 130 || leftover.length > 0 || existsSync(dest)) {
        failures.push(
          `attempt ${i}: exit ${String(r.code)} signal ${String(r.signal)}, temp dir holds [${leftover.join(', ')}], destination ${existsSync(dest) ? 'exists' : 'absent'}`,
        );
      }
      await cleanupTmpDirs(base);
    }
    assert.deepEqual(failures, [], `a SIGINT right after the run dir appears must still clean up:\n${failures.join('\n')}`);
  });
});

describe('interrupting twice', () => {
  test('SIGINT twice in a row (Ctrl-C, Ctrl-C) -> exit 130, no destination, no temp files (repeated)', async () => {
    // The second signal makes the CLI stop waiting for the stages; it must
    // still not leave the partial destination behind.
    const attempts = 8;
    const failures: string[] = [];
    for (let i = 0; i < attempts && failures.length === 0; i++) {
      const base = await tmpDir('int-twice');
      const temp = path.join(base, 'tmp');
      const dest = path.join(base, 'store');
      const started = startOccystrap(['--temp-dir', temp, 'process', `tar://${big.file}`, `dir://${dest}`]);
      try {
        await waitFor('the store and a spool file', () => (existsSync(dest) && spoolingFile(temp, 0) !== undefined ? true : undefined), 30_000, 1);
      } catch (e) {
        started.child.kill('SIGKILL');
        throw e;
      }
      started.child.kill('SIGINT');
      started.child.kill('SIGINT');
      const r = await started.exited;
      const leftover = listDir(temp);
      if (r.code !== 130 || leftover.length > 0 || existsSync(dest) || strayTempFiles(base).length > 0) {
        failures.push(
          `attempt ${i}: exit ${String(r.code)} signal ${String(r.signal)}, temp dir holds [${leftover.join(', ')}], destination ${existsSync(dest) ? `exists: [${listDir(dest).join(', ')}]` : 'absent'}, stderr ${JSON.stringify(r.stderr.trim().split('\n').pop())}`,
        );
      }
      await cleanupTmpDirs(base);
    }
    assert.deepEqual(failures, [], failures.join('\n'));
  });
});

describe('global options before and after the command, and from the environment', () => {
  const image = () => fixture('skopeo-legacy.tar').images[0] as ImageFacts;

  async function check(args: (ws: { temp: string; out: string }) => string[], env: Record<string, string> = {}, expectJson = false): Promise<void> {
    const base = await tmpDir('globals');
    const ws = { temp: path.join(base, 'tmp'), out: path.join(base, 'store') };
    const r = await occystrap(args(ws), { env: cleanEnv(env) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(summaryLines(r.stderr)[0] ?? '', new RegExp(`^Summary: 1/1 images, ${image().layerCount} layers`));
    if (expectJson) assert.equal(jsonSummary(r.stdout).layers, image().layerCount);
    else assert.equal(r.stdout, '');
    for (const d of new Set(image().diffIds)) assert.equal(await sha256File(path.join(ws.out, hexOf(d), 'layer.tar')), d);
    assert.deepEqual(listDir(ws.temp), []);
  }
  const src = () => `tar://${fixturePath('skopeo-legacy.tar')}`;

  test('-j 2 before the command', () => check((ws) => ['-j', '2', '--temp-dir', ws.temp, 'process', src(), `dir://${ws.out}`]));
  test('-j 2 after the command', () => check((ws) => ['process', src(), `dir://${ws.out}`, '-j', '2', '--temp-dir', ws.temp]));
  test('-j2 and --parallel=2 forms', async () => {
    await check((ws) => ['-j2', `--temp-dir=${ws.temp}`, 'process', src(), `dir://${ws.out}`]);
    await check((ws) => ['--parallel=2', '--temp-dir', ws.temp, 'process', src(), `dir://${ws.out}`]);
  });
  test('OCCYSTRAP_PARALLEL=2', () => check((ws) => ['--temp-dir', ws.temp, 'process', src(), `dir://${ws.out}`], { OCCYSTRAP_PARALLEL: '2' }));
  test('the command line wins over OCCYSTRAP_PARALLEL', () =>
    check((ws) => ['--temp-dir', ws.temp, 'process', src(), `dir://${ws.out}`, '-j', '1'], { OCCYSTRAP_PARALLEL: '0' }));
  test('OCCYSTRAP_PARALLEL=0 alone is a usage error', async () => {
    const base = await tmpDir('globals-bad-env');
    const r = await occystrap(['--temp-dir', path.join(base, 'tmp'), 'process', src(), `dir://${path.join(base, 'store')}`], {
      env: cleanEnv({ OCCYSTRAP_PARALLEL: '0' }),
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^occystrap: usage error: OCCYSTRAP_PARALLEL takes a whole number/);
    assert.equal(existsSync(path.join(base, 'store')), false);
  });
  test('-O json before, after, and from OCCYSTRAP_OUTPUT_FORMAT', async () => {
    await check((ws) => ['-O', 'json', '--temp-dir', ws.temp, 'process', src(), `dir://${ws.out}`], {}, true);
    await check((ws) => ['--temp-dir', ws.temp, 'process', src(), `dir://${ws.out}`, '-O', 'json'], {}, true);
    await check((ws) => ['--temp-dir', ws.temp, 'process', src(), `dir://${ws.out}`, '--output-format=json'], {}, true);
    await check((ws) => ['--temp-dir', ws.temp, 'process', src(), `dir://${ws.out}`], { OCCYSTRAP_OUTPUT_FORMAT: 'json' }, true);
  });
  test('OCCYSTRAP_TEMP_DIR and --verbose / OCCYSTRAP_VERBOSE: the run dir is made there and removed', async () => {
    const base = await tmpDir('globals-temp');
    const temp = path.join(base, 'env-tmp');
    const out = path.join(base, 'store');
    const r = await occystrap(['process', src(), `dir://${out}`], { env: cleanEnv({ OCCYSTRAP_TEMP_DIR: temp, OCCYSTRAP_VERBOSE: '1' }) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`temp files in ${temp.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/occystrap-`));
    assert.deepEqual(listDir(temp), []);
    const r2 = await occystrap(['--verbose', '--temp-dir', temp, 'process', src(), `dir://${out}`]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stderr, /temp files in /);
    assert.deepEqual(listDir(temp), []);
  });
});

describe('disk writes of a tar:// -> dir:// run (measured, not asserted)', () => {
  test('bytes written vs layer bytes (/usr/bin/time %O)', async (t) => {
    if (!existsSync('/usr/bin/time')) {
      t.skip('/usr/bin/time (GNU time) is not installed');
      return;
    }
    // Temp dir and store side by side: one filesystem, so layers are renamed.
    const base = await tmpDir('measure');
    const temp = path.join(base, 'tmp');
    const out = path.join(base, 'store');
    const r = await run('/usr/bin/time', ['-f', 'TIME %e s %M KB %O blocks', process.execPath, cliPath, '--temp-dir', temp, '-O', 'json', 'process', `tar://${big.file}`, `dir://${out}`], {
      env: cleanEnv(),
    });
    assert.equal(r.code, 0, r.stderr);
    const summary = jsonSummary(r.stdout);
    assert.equal(summary.copiedAcrossDevices, 0);
    assert.equal(summary.bytes, big.layerSize);
    const layer = path.join(out, hexOf(big.diffId), 'layer.tar');
    assert.equal(await sha256File(layer), big.diffId);
    assert.deepEqual(listDir(temp), []);
    const m = /TIME ([\d.]+) s (\d+) KB (\d+) blocks/.exec(r.stderr);
    assert.ok(m, r.stderr);
    const blocks = Number(m[3]);
    const written = blocks * 512;
    t.diagnostic(
      `tar->dir ${big.layerSize} layer bytes: ${m[1]} s, max RSS ${m[2]} KB, ${blocks} blocks written = ${written} bytes = ${(written / big.layerSize).toFixed(3)}x the layer (inode ${identity(layer).ino})`,
    );
  });
});
