/**
 * The progress display of `process` (src/shell/progress.ts) and the reporter's live block
 * (src/shell/log.ts), driven with a fake clock and a fake terminal that interprets the
 * two escape sequences the reporter writes (up N lines; clear to the end of the screen).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Digest } from '../../src/core/digest.js';
import type { ConfigElement, LayerDescriptor, LayerElement } from '../../src/core/element.js';
import { formatSummary, Reporter } from '../../src/shell/log.js';
import { formatEta, layerDigestLabel, RunProgress } from '../../src/shell/progress.js';
import { Screen } from '../support/terminal.js';

const digest = (c: string) => `sha256:${c.repeat(64)}` as Digest;

function descriptor(index: number, size: number, withBlob = true): LayerDescriptor {
  const blob = { digest: digest(String.fromCharCode(97 + index)), size, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
  return { index, sourceId: String(index), diffId: digest(String(index)), mediaType: blob.mediaType, size, ...(withBlob ? { blob } : {}) } as LayerDescriptor;
}

function config(layers: LayerDescriptor[]): ConfigElement {
  return { _tag: 'Config', image: { name: 'team/app', tag: 'v1' }, digest: digest('c'), raw: new Uint8Array(), config: {} as never, layers };
}

const stored = (layer: LayerDescriptor, size: number): LayerElement => ({ _tag: 'Layer', layer, payload: { _tag: 'Tar', tar: { file: { id: 1, path: '/x' } as never, size } } }) as LayerElement;

function live(columns = 100) {
  const screen = new Screen(columns);
  let now = 0;
  const reporter = new Reporter('normal', screen as unknown as NodeJS.WriteStream);
  const progress = new RunProgress(reporter, { mode: 'live', now: () => now });
  return { screen, reporter, progress, advance: (ms: number) => void (now += ms) };
}

describe('live progress on a terminal', () => {
  test('a line per layer under way with bytes, total, rate and ETA, and an overall line; redrawn in place', () => {
    const { screen, reporter, progress, advance } = live();
    const layers = [descriptor(0, 10_000_000), descriptor(1, 4_000_000)];
    progress.config(config(layers));
    progress.fetched(0, 0, 10_000_000);
    advance(1000);
    progress.fetched(0, 2_000_000, 10_000_000);
    progress.fetched(1, 1_000_000, 4_000_000);
    reporter.redraw();
    advance(1000);
    progress.fetched(0, 4_000_000, 10_000_000);
    reporter.redraw();
    const lines = screen.lines;
    assert.equal(lines.length, 4, lines.join('\n'));
    assert.equal(lines[0], `config ${digest('c').slice(0, 19)} team/app:v1, 2 layers`);
    lines.shift();
    assert.equal(lines[0], 'layer 0 of 2 blob sha256:aaaaaaaaaaaa 4.0 MB / 10.0 MB  2.0 MB/s  ETA 3s');
    assert.match(lines[1] as string, /^layer 1 of 2 blob sha256:bbbbbbbbbbbb 1\.0 MB \/ 4\.0 MB/);
    assert.equal(lines[2], '0 of 2 layers stored, 5.0 MB of 14.0 MB fetched, 2.5 MB/s, ETA 4s');
    progress.stop();
  });

  test("a finished layer's line is printed above the block and stays; the block goes at the end", () => {
    const { screen, reporter, progress, advance } = live();
    const layers = [descriptor(0, 1000), descriptor(1, 2000)];
    progress.config(config(layers));
    progress.fetched(1, 500, 2000);
    progress.fetched(0, 1000, 1000);
    progress.writing(stored(layers[0] as LayerDescriptor, 3000));
    advance(2000);
    progress.written(stored(layers[0] as LayerDescriptor, 3000));
    reporter.redraw();
    const configLine = `config ${digest('c').slice(0, 19)} team/app:v1, 2 layers`;
    assert.equal(screen.lines[0], configLine);
    assert.equal(screen.lines[1], 'layer 0 of 2 blob sha256:aaaaaaaaaaaa done: 1.0 KB fetched, 3.0 KB stored in 2.0s');
    assert.match(screen.lines[2] as string, /^layer 1 of 2 .* 500 B \/ 2\.0 KB/);
    reporter.line('a warning');
    assert.equal(screen.lines[2], 'a warning', 'a log line goes above the block, under the finished lines');
    assert.match(screen.lines[3] as string, /^layer 1 of 2/);
    progress.stop();
    assert.deepEqual(screen.lines, [configLine, screen.lines[1], 'a warning'], 'only the finished lines and the log line remain');
  });

  test('lines are cut to the terminal width (no wrapped line breaks the redraw)', () => {
    const { screen, reporter, progress } = live(40);
    const layers = [descriptor(0, 10_000_000)];
    progress.config(config(layers));
    progress.fetched(0, 1, 10_000_000);
    reporter.redraw();
    reporter.redraw();
    // The block's lines (not the config line above it, which stays and may wrap).
    for (const line of screen.lines.slice(1)) assert.ok(line.length < 40, `${line.length}: ${line}`);
    assert.equal(screen.lines.length, 3);
    progress.stop();
  });

  test('a source without blobs shows the diff_id, labelled', () => {
    assert.equal(layerDigestLabel(descriptor(3, 1, false)), 'diff_id sha256:333333333333');
    assert.equal(layerDigestLabel(descriptor(3, 1)), 'blob sha256:dddddddddddd');
  });

  test('an interrupt clears the block and nothing is drawn after it', () => {
    const { screen, reporter, progress } = live();
    progress.config(config([descriptor(0, 100)]));
    progress.fetched(0, 10, 100);
    reporter.redraw();
    assert.equal(screen.lines.length, 3);
    reporter.clearProgress();
    assert.equal(screen.lines.length, 1, 'the config line stays; the block is gone');
    const writes = screen.writes;
    reporter.redraw();
    progress.stop();
    assert.equal(screen.writes, writes);
  });
});

describe('progress without a terminal', () => {
  test('plain lines: the config, then one per stored layer by manifest position', () => {
    const out: string[] = [];
    const stream = { isTTY: false, write: (s: string) => (out.push(s), true) } as unknown as NodeJS.WriteStream;
    const progress = new RunProgress(new Reporter('normal', stream), { mode: 'lines' });
    const layers = [descriptor(0, 1000), descriptor(1, 2000)];
    progress.config(config(layers));
    progress.fetched(1, 2000, 2000);
    progress.writing(stored(layers[1] as LayerDescriptor, 5000));
    progress.written(stored(layers[1] as LayerDescriptor, 5000));
    progress.stop();
    assert.deepEqual(out, [
      `config ${digest('c').slice(0, 19)} team/app:v1, 2 layers\n`,
      'layer 1 of 2 blob sha256:bbbbbbbbbbbb done: 2.0 KB fetched, 5.0 KB stored; 5.0 KB so far\n',
    ]);
  });

  test('plain lines: a stand-in layer list (a daemon export with a layer before the config) shows no digest; the final config does', () => {
    const out: string[] = [];
    const stream = { isTTY: false, write: (s: string) => (out.push(s), true) } as unknown as NodeJS.WriteStream;
    const progress = new RunProgress(new Reporter('normal', stream), { mode: 'lines' });
    const layers = [descriptor(0, 1000)];
    progress.config({ ...config(layers), digest: digest('9'), provisional: true, standIn: true });
    progress.config(config(layers));
    progress.stop();
    assert.deepEqual(out, ['layer list team/app:v1, 1 layer (the config follows them)\n', `final config ${digest('c').slice(0, 19)} team/app:v1, 1 layer\n`]);
  });

  test('--quiet: nothing', () => {
    const out: string[] = [];
    const stream = { isTTY: true, write: (s: string) => (out.push(s), true) } as unknown as NodeJS.WriteStream;
    const progress = new RunProgress(new Reporter('quiet', stream), { mode: 'silent' });
    progress.config(config([descriptor(0, 1)]));
    progress.written(stored(descriptor(0, 1), 1));
    progress.stop();
    assert.deepEqual(out, []);
    assert.equal(progress.imageName, 'team/app:v1');
  });
});

test('ETA and the summary line', () => {
  assert.equal(formatEta(0.2), '1s');
  assert.equal(formatEta(75), '1m15s');
  assert.equal(formatEta(7260), '2h01m');
  assert.equal(
    formatSummary({ images: { done: 1, total: 1 }, layers: 3, layersSkipped: 1, bytes: 273_000_000, downloaded: 162_000_000, seconds: 38.1, copiedAcrossDevices: 0, retries: 2, rateLimited: 0 }),
    'Summary: 1/1 images, 3 layers (1 skipped), 273.0 MB written (162.0 MB downloaded), 38.1s at 4.3 MB/s, 2 retries',
  );
  assert.equal(
    formatSummary({ images: { done: 1, total: 1 }, layers: 1, layersSkipped: 0, bytes: 2000, seconds: 2, copiedAcrossDevices: 0, retries: 0, rateLimited: 0 }),
    'Summary: 1/1 images, 1 layer, 2.0 KB written, 2.0s at 1.0 KB/s',
  );
});
