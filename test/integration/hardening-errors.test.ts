// Errors under the right name with what to do (issue 8, item 15): errno errors of the
// destination, store problems met while the source asks what it needs, bad global
// options and a bad --temp-dir (usage errors, exit 2).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, tmpDir } from './fixtures.js';
import { cleanEnv, errorLines, listDir, occystrap, runDirs, strayTempFiles } from './cli-helpers.js';
import { craftedImage, writeValidImage } from './crafted-archives.js';
import { assertCleanFailure, escapeRe, goodArchive, mknod, mountTmpfs, unmountAll } from './hardening-helpers.js';

after(async () => {
  unmountAll();
  await cleanupTmpDirs();
});

describe('errno errors name the endpoint, say what failed and what to do', { concurrency: 1 }, () => {
  test('dir:// under a regular file (ENOTDIR)', async () => {
    const base = await tmpDir('errno-enotdir');
    const archive = goodArchive(base);
    writeFileSync(path.join(base, 'afile'), 'x');
    const dest = path.join(base, 'afile', 'store');
    const r = await occystrap(['--temp-dir', path.join(base, 'tmp'), 'process', `tar://${archive}`, `dir://${dest}`]);
    assertCleanFailure(r.stderr, r.code);
    assert.match(errorLines(r.stderr)[0] as string, new RegExp(`^occystrap: error: dir://${escapeRe(dest)}: .*not a directory \\(ENOTDIR\\); check the path`));
  });

  for (const kind of ['tar', 'dir'] as const) {
    test(`${kind}:// with a name over 255 bytes (ENAMETOOLONG)`, async () => {
      const base = await tmpDir(`errno-long-${kind}`);
      const archive = goodArchive(base);
      const dest = path.join(base, `${'n'.repeat(300)}${kind === 'tar' ? '.tar' : ''}`);
      const r = await occystrap(['--temp-dir', path.join(base, 'tmp'), 'process', `tar://${archive}`, `${kind}://${dest}`]);
      assertCleanFailure(r.stderr, r.code);
      assert.match(errorLines(r.stderr)[0] as string, new RegExp(`^occystrap: error: ${kind}://${escapeRe(dest)}: .*too long \\(ENAMETOOLONG\\); use a shorter path`));
      assert.deepEqual(strayTempFiles(base), []);
    });
  }

  test('tar:// on a read-only file system (EROFS)', async () => {
    const base = await tmpDir('errno-erofs');
    const archive = goodArchive(base);
    const ro = path.join(base, 'ro');
    mountTmpfs(ro, 'ro,size=1m');
    const dest = path.join(ro, 'out.tar');
    const r = await occystrap(['--temp-dir', path.join(base, 'tmp'), 'process', `tar://${archive}`, `tar://${dest}`]);
    assertCleanFailure(r.stderr, r.code);
    assert.match(errorLines(r.stderr)[0] as string, new RegExp(`^occystrap: error: tar://${escapeRe(dest)}: .*read-only \\(EROFS\\); `));
  });

  for (const kind of ['tar', 'dir'] as const) {
    test(`${kind}:// on a full file system (ENOSPC): the destination is named, nothing left behind`, async () => {
      const base = await tmpDir(`errno-enospc-${kind}`);
      const archive = path.join(base, 'big.tar');
      writeValidImage(archive, { layers: 2, files: 1, bytesPerFile: 512 * 1024 });
      const full = path.join(base, 'full');
      mountTmpfs(full, 'size=256k');
      const dest = path.join(full, kind === 'dir' ? 'store' : 'out.tar');
      const r = await occystrap(['--temp-dir', path.join(base, 'tmp'), 'process', `tar://${archive}`, `${kind}://${dest}`]);
      assertCleanFailure(r.stderr, r.code);
      assert.match(errorLines(r.stderr)[0] as string, new RegExp(`^occystrap: error: ${kind}://${escapeRe(dest)}: cannot .*no space left on the device \\(ENOSPC\\); free some space`));
      assert.deepEqual(listDir(full), [], 'nothing left on the full file system');
      assert.deepEqual(runDirs(path.join(base, 'tmp')), []);
    });
  }

  interface FullTempDirRun {
    readonly name: string;
    readonly image: Parameters<typeof writeValidImage>[1];
    /** Size of the tmpfs the --temp-dir is on. */
    readonly tempSize: string;
    readonly kind: 'tar' | 'dir';
    /** The destination's name, beside the temp dir. */
    readonly dest: string;
    readonly extra?: readonly string[];
  }

  /**
   * A run of `image` into `kind://dest` with its --temp-dir on a small tmpfs: it fails
   * cleanly and leaves neither its run directory nor the destination. Returns the temp dir
   * and the error line.
   */
  async function fullTempDirRun(run: FullTempDirRun): Promise<{ temp: string; line: string }> {
    const base = await tmpDir(run.name);
    const archive = path.join(base, 'in.tar');
    writeValidImage(archive, run.image);
    const temp = path.join(base, 'tmp');
    mountTmpfs(temp, `size=${run.tempSize}`);
    const dest = path.join(base, run.dest);
    const r = await occystrap(['--temp-dir', temp, 'process', `tar://${archive}`, `${run.kind}://${dest}`, ...(run.extra ?? [])]);
    assertCleanFailure(r.stderr, r.code);
    assert.deepEqual(listDir(temp), [], 'the run directory is gone');
    assert.ok(!existsSync(dest));
    return { temp, line: errorLines(r.stderr)[0] as string };
  }

  test('a full temp dir met by a filter is the temp dir\'s, not the source\'s', async () => {
    // One 200 KiB layer: it fits in the 300 KiB temp dir once, not twice (the filter's copy).
    const { temp, line } = await fullTempDirRun({
      name: 'errno-temp-full',
      image: { layers: 1, files: 2, bytesPerFile: 100 * 1024 },
      tempSize: '300k',
      kind: 'tar',
      dest: 'out.tar',
      extra: ['-f', 'exclude:pattern=nothing'],
    });
    assert.match(line, new RegExp(`^occystrap: error: temp dir ${escapeRe(temp)}: cannot write.*\\(ENOSPC\\); free some space or choose another --temp-dir`));
  });

  test('a full temp dir met while the input spools a layer is the temp dir\'s', async () => {
    const { temp, line } = await fullTempDirRun({ name: 'errno-temp-spool', image: { layers: 1, files: 1, bytesPerFile: 512 * 1024 }, tempSize: '256k', kind: 'dir', dest: 'store' });
    assert.match(line, new RegExp(`^occystrap: error: temp dir ${escapeRe(temp)}: .*\\(ENOSPC\\); free some space or choose another --temp-dir`));
  });

  test('a store problem found while the input asks what the store needs is the destination\'s', async () => {
    const base = await tmpDir('errno-wants');
    const archive = goodArchive(base);
    const store = path.join(base, 'store');
    mkdirSync(store);
    // A file where the layer's directory belongs: the store's presence check refuses it.
    const img = craftedImage('first');
    const diffId = JSON.parse((img.head[1]?.data as Buffer).toString('utf8')).rootfs.diff_ids[0] as string;
    writeFileSync(path.join(store, diffId.slice('sha256:'.length)), 'in the way');
    const r = await occystrap(['--temp-dir', path.join(base, 'tmp'), 'process', `tar://${archive}`, `dir://${store}`]);
    assertCleanFailure(r.stderr, r.code);
    const hex = diffId.slice('sha256:'.length);
    assert.match(errorLines(r.stderr)[0] as string, new RegExp(`^occystrap: error: dir://${escapeRe(store)}: ${hex} is a regular file, not a directory; remove it`));
  });
});

describe('bad global options are usage errors (exit 2) that name what to fix', { concurrency: 2 }, () => {
  const cases: Array<[string, (base: string) => { args: string[]; env?: Record<string, string> }, RegExp]> = [
    ['--temp-dir is a regular file', (b) => {
      writeFileSync(path.join(b, 'afile'), 'x');
      return { args: ['--temp-dir', path.join(b, 'afile')] };
    }, /--temp-dir .*afile is a regular file, not a directory/],
    ['--temp-dir is a character device', (b) => {
      mknod(path.join(b, 'dev'), 'c');
      return { args: ['--temp-dir', path.join(b, 'dev')] };
    }, /--temp-dir .*dev is a character device, not a directory/],
    ['--temp-dir is empty', () => ({ args: ['--temp-dir', ''] }), /--temp-dir needs a directory path/],
    ['--temp-dir below a regular file', (b) => {
      writeFileSync(path.join(b, 'afile'), 'x');
      return { args: ['--temp-dir', path.join(b, 'afile', 'tmp')] };
    }, /--temp-dir .*afile\/tmp: a part of the path is a file/],
    ['OCCYSTRAP_TEMP_DIR is a regular file', (b) => {
      writeFileSync(path.join(b, 'afile'), 'x');
      return { args: [], env: { OCCYSTRAP_TEMP_DIR: path.join(b, 'afile') } };
    }, /OCCYSTRAP_TEMP_DIR .*afile is a regular file/],
    ['OCCYSTRAP_PARALLEL is not a number', () => ({ args: [], env: { OCCYSTRAP_PARALLEL: 'many' } }), /^occystrap: usage error: OCCYSTRAP_PARALLEL takes a whole number from 1 to 256, got "many"/],
    ['OCCYSTRAP_RETRIES is not a number', () => ({ args: [], env: { OCCYSTRAP_RETRIES: '-1' } }), /^occystrap: usage error: OCCYSTRAP_RETRIES takes/],
    ['OCCYSTRAP_OUTPUT_FORMAT is unknown', () => ({ args: [], env: { OCCYSTRAP_OUTPUT_FORMAT: 'yaml' } }), /^occystrap: usage error: OCCYSTRAP_OUTPUT_FORMAT takes text or json/],
    ['--rate-limit too small for a timer', () => ({ args: ['--rate-limit', '1e-10'] }), /^occystrap: usage error: --rate-limit takes a number of requests per second from 0\.001/],
    ['OCCYSTRAP_RATE_LIMIT too small for a timer', () => ({ args: [], env: { OCCYSTRAP_RATE_LIMIT: '1e-10' } }), /^occystrap: usage error: OCCYSTRAP_RATE_LIMIT takes/],
  ];
  for (const [what, make, expected] of cases) {
    test(what, async () => {
      const base = await tmpDir('usage');
      const archive = goodArchive(base);
      const { args, env } = make(base);
      const dest = path.join(base, 'out.tar');
      const r = await occystrap([...args, 'process', `tar://${archive}`, `tar://${dest}`], { env: cleanEnv(env ?? {}) });
      assertCleanFailure(r.stderr, r.code, 2);
      assert.match(errorLines(r.stderr)[0] as string, expected);
      assert.ok(!existsSync(dest));
    });
  }
});

