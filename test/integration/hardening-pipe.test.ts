// A reader that closes our stdout or stderr (issue 8, item 4): the run stops like it
// would on SIGPIPE (exit 141), with its partial output and temp files removed.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, repoRoot, run, tmpDir } from './fixtures.js';
import { cleanEnv, cliPath, runDirs, strayTempFiles } from './cli-helpers.js';
import { writeValidImage } from './crafted-archives.js';

after(async () => {
  await cleanupTmpDirs();
});

/** Run `occystrap ARGS REDIRECT | head -N` in bash; the CLI's own exit status and head's output. */
async function throughHead(args: readonly string[], redirect: string, lines: number): Promise<{ status: number; head: string; stderr: string }> {
  const quoted = [process.execPath, cliPath, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = await run('bash', ['-c', `${quoted} ${redirect} | head -${lines}; echo "status=\${PIPESTATUS[0]}"`], { env: cleanEnv() });
  const m = /status=(\d+)\s*$/.exec(r.stdout);
  assert.ok(m, r.stdout + r.stderr);
  return { status: Number(m[1]), head: r.stdout.slice(0, m.index), stderr: r.stderr };
}

// Eight 3 MiB layers: the run has a few hundred ms of work left after its first line, so
// the reader is gone long before the next progress line, even on a loaded machine.

/**
 * Start the CLI with stderr on a pipe; after its first line, stop the CLI (SIGSTOP), close
 * our end of the pipe and let it go on (SIGCONT): its next write to stderr meets EPIPE.
 */
function closeStderrAfterFirstLine(args: readonly string[]): Promise<{ code: number | null; firstLine: string; stdout: string }> {
  const child = spawn(process.execPath, [cliPath, ...args], { cwd: repoRoot, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let seen = '';
  let firstLine = '';
  const out: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => {
    if (firstLine) return;
    seen += c.toString('utf8');
    const nl = seen.indexOf('\n');
    if (nl < 0) return;
    child.kill('SIGSTOP');
    firstLine = seen.slice(0, nl + 1);
    child.stderr.destroy();
    child.kill('SIGCONT');
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, firstLine, stdout: Buffer.concat(out).toString('utf8') }));
  });
}

describe('a closed pipe stops the run like SIGPIPE: exit 141, rollback, no temp files', { concurrency: 1 }, () => {
  for (const kind of ['tar', 'dir'] as const) {
    test(`process into ${kind}:// whose stderr reader leaves after the first line`, async () => {
      const base = await tmpDir(`epipe-${kind}`);
      const archive = path.join(base, 'slow.tar');
      writeValidImage(archive, { layers: 8, files: 3, bytesPerFile: 1 << 20 });
      const temp = path.join(base, 'tmp');
      const dest = path.join(base, kind === 'dir' ? 'store' : 'out.tar');
      const r = await closeStderrAfterFirstLine(['--temp-dir', temp, 'process', `tar://${archive}`, `${kind}://${dest}`]);
      assert.equal(r.code, 141, `exit status\n${r.firstLine}${r.stdout}`);
      assert.match(r.firstLine, /^config sha256:/);
      assert.equal(r.stdout, '');
      assert.deepEqual(runDirs(temp), [], 'no run directory left');
      assert.ok(!existsSync(dest), 'no partial output');
      assert.deepEqual(strayTempFiles(base), [], 'no temp file beside the target');
    });
  }

  test('process ... 2>&1 | head -1 in a shell: exit 141, nothing left behind', async () => {
    const base = await tmpDir('epipe-shell');
    const archive = path.join(base, 'slow.tar');
    writeValidImage(archive, { layers: 8, files: 3, bytesPerFile: 1 << 20 });
    const temp = path.join(base, 'tmp');
    const dest = path.join(base, 'out.tar');
    const r = await throughHead(['--temp-dir', temp, 'process', `tar://${archive}`, `tar://${dest}`], '2>&1', 1);
    assert.equal(r.status, 141, `exit status\n${r.head}${r.stderr}`);
    assert.match(r.head, /^config sha256:/);
    assert.deepEqual(runDirs(temp), []);
    assert.ok(!existsSync(dest));
    assert.deepEqual(strayTempFiles(base), []);
  });

  test('search ... | head -1 with a long report: exit 141, nothing on stderr', async () => {
    const base = await tmpDir('epipe-search');
    const archive = path.join(base, 'many.tar');
    writeValidImage(archive, { layers: 2, files: 3000, bytesPerFile: 0 });
    const temp = path.join(base, 'tmp');
    const r = await throughHead(['--temp-dir', temp, 'search', `tar://${archive}`, '*'], '', 1);
    assert.equal(r.status, 141, `exit status\n${r.head}${r.stderr}`);
    assert.equal(r.head.split('\n').filter((l) => l !== '').length, 1);
    assert.equal(r.stderr, '', 'stderr stays quiet');
    assert.deepEqual(runDirs(temp), []);
  });
});

