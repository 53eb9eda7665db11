// Live progress as a user sees it: `occystrap process` in a pseudo-terminal (util-linux
// `script`, 80 columns) pulling from a real docker-registry through a loopback proxy that
// throttles blob bodies. The layer lines must show bytes done of the total with a rate
// while the download is under way, be redrawn in place within the terminal's width, and
// leave each layer's finished line and the summary; without a terminal and with --quiet
// the output stays plain.
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { blobPath } from '../registry/harness.js';
import { isolatedEnv, workspace, assertTempEmpty, type Workspace } from '../registry/cli.js';
import { bigLayer, sample, sampleBehindFaultProxy } from '../support/sample-registry.js';
import { Screen } from '../support/terminal.js';
import { cliPath, occystrap } from './cli-helpers.js';
import { repoRoot } from './fixtures.js';

const suite = sampleBehindFaultProxy();
const COLUMNS = 80;
/** The big layer (about 2.1 MB) then takes about three seconds. */
const BYTES_PER_SECOND = 700_000;

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Run the CLI in a pseudo-terminal; everything it wrote to the terminal, in order. */
function inTerminal(ws: Workspace, args: readonly string[]): Promise<{ code: number | null; output: string }> {
  const command = `stty cols ${COLUMNS} rows 40; exec ${[process.execPath, cliPath, '--temp-dir', ws.temp, ...args].map(quote).join(' ')}`;
  const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: repoRoot, env: isolatedEnv(ws), stdio: ['pipe', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stderr.on('data', (c: Buffer) => chunks.push(c));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: Buffer.concat(chunks).toString('utf8') });
    });
  });
}

function throttleBlobs(): void {
  suite.proxy.setRules([{ method: 'GET', path: blobPath(), times: Infinity, fault: { kind: 'throttle', bytesPerSecond: BYTES_PER_SECOND } }]);
}

const MB = /(\d+(?:\.\d)?) (B|KB|MB)/;
const bytesOf = (n: string, unit: string) => Number(n) * (unit === 'MB' ? 1e6 : unit === 'KB' ? 1e3 : 1);

describe('progress in a terminal', () => {
  test('layer lines with bytes done of the total and a rate appear while downloading, redrawn in place within 80 columns', async () => {
    throttleBlobs();
    const ws = await workspace('progress-tty');
    const big = bigLayer();
    const bigIndex = (sample().layers ?? []).findIndex((l) => l.digest === big.digest);
    const r = await inTerminal(ws, ['--insecure', 'process', `registry://${suite.ref()}`, `tar://${ws.out('out.tar')}`]);
    assert.equal(r.code, 0, r.output);
    const screen = new Screen(COLUMNS);
    screen.write(r.output);

    // While the big layer downloads: "layer N of 5 blob sha256:… X / 2.1 MB  R/s", X short of the total.
    const head = `layer ${bigIndex} of 5 blob ${big.digest.slice(0, 19)} `;
    const partial = screen.drawn.filter((l) => {
      if (!l.startsWith(head)) return false;
      const m = new RegExp(`^${MB.source} / ${MB.source}  ${MB.source}/s`).exec(l.slice(head.length));
      return m !== null && bytesOf(m[1] as string, m[2] as string) < bytesOf(m[3] as string, m[4] as string);
    });
    assert.ok(partial.length >= 2, `progress of layer ${bigIndex} drawn mid-download, more than once:\n${screen.drawn.join('\n')}`);
    assert.ok(
      screen.drawn.some((l) => /^\d of 5 layers stored, [\d.]+ (B|KB|MB) of [\d.]+ MB fetched, [\d.]+ (B|KB|MB)\/s, ETA \d+s$/.test(l)),
      `an overall line with a rate and an ETA:\n${screen.drawn.join('\n')}`,
    );
    assert.ok(/\x1b\[\d+A\x1b\[J/.test(r.output), 'the block is redrawn in place (cursor up, clear below)');
    // The block's lines (drawn, then redrawn away); the lines that stay may wrap.
    const stays = new Set(screen.lines);
    for (const line of screen.drawn.filter((l) => !stays.has(l))) assert.ok(line.length < COLUMNS, `a block line as wide as the terminal would wrap: ${line}`);

    // What stays: the config line, one finished line per layer, then the summary.
    assert.equal(screen.lines[0], `config ${sample().configDigest?.slice(0, 19)} ${suite.ref()}, 5 layers`);
    const finished = screen.lines.filter((l) => /^layer \d of 5 blob sha256:[0-9a-f]{12} (done|skipped)/.test(l));
    assert.deepEqual(finished.map((l) => Number(/^layer (\d)/.exec(l)?.[1])).sort(), [0, 1, 2, 3, 4]);
    assert.match(screen.lines[screen.lines.length - 1] as string, /^Summary: 1\/1 images, 5 layers( \(\d skipped\))?, [\d.]+ (KB|MB) written \([\d.]+ (KB|MB) downloaded\), [\d.]+s at [\d.]+ (KB|MB)\/s$/);
    assert.equal(screen.lines.length, finished.length + 2, `nothing else is left on the screen:\n${screen.lines.join('\n')}`);
    assertTempEmpty(ws);
  });

  test('at most a few redraws a second', async () => {
    throttleBlobs();
    const ws = await workspace('progress-rate');
    const started = Date.now();
    const r = await inTerminal(ws, ['--insecure', 'process', `registry://${suite.ref()}`, `dir://${ws.out('store')}`]);
    const seconds = (Date.now() - started) / 1000;
    assert.equal(r.code, 0, r.output);
    const redraws = r.output.match(/\x1b\[\d+A/g)?.length ?? 0;
    // Four a second from the timer, one per log line (the summary) and the last one.
    assert.ok(redraws > 0 && redraws <= Math.ceil(seconds * 4) + 3, `${redraws} redraws in ${seconds.toFixed(1)} s`);
  });

  test('--quiet: no progress and no summary, in a terminal too', async () => {
    const ws = await workspace('progress-quiet');
    const r = await inTerminal(ws, ['--insecure', '-q', 'process', `registry://${suite.ref()}`, `tar://${ws.out('out.tar')}`]);
    assert.equal(r.code, 0, r.output);
    assert.equal(r.output, '');
  });

  test('without a terminal: plain lines, no escape sequences, one per layer by manifest position', async () => {
    const ws = await workspace('progress-plain');
    const r = await occystrap(['--temp-dir', ws.temp, '--insecure', 'process', `registry://${suite.ref()}`, `tar://${path.join(ws.base, 'out.tar')}`], { env: isolatedEnv(ws) });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /\x1b/);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines[0], `config ${sample().configDigest?.slice(0, 19)} ${suite.ref()}, 5 layers`);
    const layers = lines.filter((l) => l.startsWith('layer '));
    assert.deepEqual(
      layers.map((l) => /^layer (\d) of 5 blob (sha256:[0-9a-f]{12}) (done|skipped)/.exec(l)?.slice(1, 3)),
      (sample().layers ?? []).map((l, i) => [String(i), l.digest.slice(0, 19)]),
      'tar:// stores in manifest order, each line names its position and blob',
    );
    assert.match(lines[lines.length - 1] as string, /^Summary: 1\/1 images, 5 layers/);
  });
});
