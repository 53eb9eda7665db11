/**
 * The progress of a `process` run, as a {@link ProgressObserver}. On a terminal: a live
 * block redrawn in place at most four times a second, one line per layer under way
 * (bytes done / total, rate, ETA) and an overall line; a finished layer's line is printed
 * above the block and stays. Elsewhere: one plain line per config and per stored layer.
 *
 * Written here rather than taken from a progress library: the block has to share stderr
 * with log lines (the {@link Reporter} clears and redraws it around each), be cleared by
 * the signal handler before the exit line, and install no signal or exit hooks of its own
 * (log-update and cli-progress do, through restore-cursor/signal-exit or their own timers
 * on process.stdout).
 *
 * @module
 */
import { type ConfigElement, type LayerDescriptor, type LayerElement, payloadBytes } from '../core/element.js';
import type { ProgressObserver } from '../core/pipeline/types.js';
import { printable } from '../core/printable.js';
import { formatBytes, formatRate, plural, type LiveBlock, type Reporter } from './log.js';

/** Redraws at most this often. */
export const REDRAW_MS = 250;
/** Rates are measured over this much of the recent past. */
const RATE_WINDOW_MS = 5000;

/** The digest a layer is shown by, labelled: the blob (what is downloaded) when the source has one, else the diff_id. */
export function layerDigestLabel(layer: LayerDescriptor): string {
  return layer.blob ? `blob ${shortDigest(layer.blob.digest)}` : `diff_id ${shortDigest(layer.diffId)}`;
}

const shortDigest = (d: string) => d.slice(0, d.indexOf(':') + 13);

/** Bytes per second over a sliding window of samples. */
class RateMeter {
  private readonly samples: { t: number; bytes: number }[] = [];
  add(t: number, bytes: number): void {
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && (this.samples[1] as { t: number }).t < t - RATE_WINDOW_MS) this.samples.shift();
  }
  /** Undefined until half a second of samples. */
  rate(now: number): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last) return undefined;
    const span = Math.max(now, last.t) - first.t;
    return span < 500 ? undefined : ((last.bytes - first.bytes) * 1000) / span;
  }
}

type Phase = 'waiting' | 'fetching' | 'fetched' | 'writing' | 'done';

interface LayerState {
  readonly index: number;
  label: string;
  total: number | undefined;
  fetched: number;
  phase: Phase;
  readonly meter: RateMeter;
  started: number | undefined;
}

export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export interface RunProgressOptions {
  /** A live block (a terminal), plain lines, or nothing shown (`--quiet`; the facts are still kept). */
  readonly mode: 'live' | 'lines' | 'silent';
  /** The clock, in ms (tests pass their own). */
  readonly now?: () => number;
}

/**
 * Progress for one image. `stop()` ends the live block (its timer and its lines); call it
 * once the run is over, whatever the outcome.
 */
export class RunProgress implements ProgressObserver, LiveBlock {
  private readonly layers = new Map<number, LayerState>();
  private readonly now: () => number;
  private readonly overall = new RateMeter();
  private image = '';
  private layerCount: number | undefined;
  private configs = 0;
  private stored = 0;
  private storedBytes = 0;
  /** Blob bytes fetched so far, every layer together. */
  private overallFetched = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private dirty = false;
  /** Finished lines not yet printed above the block. */
  private readonly finished: string[] = [];
  private readonly live: boolean;

  constructor(
    private readonly reporter: Reporter,
    private readonly options: RunProgressOptions,
  ) {
    this.live = options.mode === 'live';
    this.now = options.now ?? (() => performance.now());
    if (this.live) {
      reporter.attach(this);
      this.timer = setInterval(() => this.tick(), REDRAW_MS);
      this.timer.unref?.();
    }
  }

  config(config: ConfigElement): void {
    this.configs++;
    this.image = printable(`${config.image.name}:${config.image.tag}`);
    this.layerCount = config.layers.length;
    for (const d of config.layers) {
      const s = this.state(d.index);
      if (s.phase === 'waiting') s.total = d.blob?.size ?? d.size;
      s.label = layerDigestLabel(d);
    }
    const kind = config.provisional ? 'config (layers to be rewritten)' : this.configs > 1 ? 'final config' : 'config';
    // A stand-in has no digest of the image's to show: the config follows the layers.
    const line = config.standIn
      ? `layer list ${this.image}, ${plural(config.layers.length, 'layer')} (the config follows them)`
      : `${kind} ${config.digest.slice(0, 19)} ${this.image}, ${plural(config.layers.length, 'layer')}`;
    if (this.options.mode === 'lines') this.reporter.line(line);
    else if (this.live) this.finished.push(line);
    this.dirty = true;
  }

  fetched(index: number, bytes: number, total: number | undefined): void {
    const s = this.state(index);
    const t = this.now();
    if (s.started === undefined) s.started = t;
    const delta = bytes - s.fetched;
    s.fetched = bytes;
    if (total !== undefined) s.total = total;
    if (s.phase === 'waiting') s.phase = 'fetching';
    if (s.total !== undefined && bytes >= s.total && s.phase === 'fetching') s.phase = 'fetched';
    s.meter.add(t, bytes);
    this.overallFetched += Math.max(0, delta);
    this.overall.add(t, this.overallFetched);
    this.dirty = true;
  }

  /** The image the run carries (`NAME:TAG`), once its config arrived. */
  get imageName(): string | undefined {
    return this.image || undefined;
  }

  writing(element: LayerElement): void {
    const s = this.state(element.layer.index);
    s.label = layerDigestLabel(element.layer);
    s.phase = 'writing';
    s.started ??= this.now();
    this.dirty = true;
  }

  written(element: LayerElement): void {
    const s = this.state(element.layer.index);
    s.phase = 'done';
    this.stored++;
    const p = element.payload;
    const size = payloadBytes(p);
    this.storedBytes += size;
    let line: string;
    if (p._tag === 'Skipped') {
      line = `${this.head(s)} skipped (${p.reason})`;
    } else {
      const seconds = s.started !== undefined ? (this.now() - s.started) / 1000 : undefined;
      const fetchedPart = s.fetched > 0 ? `${formatBytes(s.fetched)} fetched, ` : '';
      const timing = seconds !== undefined && seconds >= 0.1 && this.live ? ` in ${seconds.toFixed(1)}s` : '';
      line = `${this.head(s)} done: ${fetchedPart}${formatBytes(size)} stored${timing}`;
    }
    if (this.live) {
      this.finished.push(line);
      this.dirty = true;
    } else if (this.options.mode === 'lines') {
      this.reporter.line(`${line}; ${formatBytes(this.storedBytes)} so far`);
    }
  }

  /** The block's lines now (for the reporter's redraw), each at most `columns - 1` wide. */
  lines(columns: number): string[] {
    const now = this.now();
    const width = Math.max(20, columns - 1);
    const clip = (text: string) => {
      const p = printable(text);
      return p.length > width ? `${p.slice(0, width - 1)}…` : p;
    };
    const out: string[] = [];
    const active = [...this.layers.values()].filter((s) => s.phase === 'fetching' || s.phase === 'fetched' || s.phase === 'writing').sort((a, b) => a.index - b.index);
    for (const s of active) out.push(clip(this.layerLine(s, now)));
    const summary = this.overallLine(now);
    if (summary) out.push(clip(summary));
    return out;
  }

  /** Finished lines to print above the block (taken once). */
  takeFinished(): string[] {
    return this.finished.splice(0, this.finished.length);
  }

  /** End the live block: print what finished, remove the block, stop redrawing. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.live) this.reporter.detach(this);
  }

  private tick(): void {
    if (!this.dirty && this.layersMoving() === 0) return;
    this.dirty = false;
    this.reporter.redraw();
  }

  private layersMoving(): number {
    let n = 0;
    for (const s of this.layers.values()) if (s.phase === 'fetching') n++;
    return n;
  }

  /** `layer 2 of 5 blob sha256:…`: how every line names a layer. */
  private head(s: LayerState): string {
    return `layer ${s.index}${this.layerCount !== undefined ? ` of ${this.layerCount}` : ''} ${s.label}`;
  }

  private layerLine(s: LayerState, now: number): string {
    const head = this.head(s);
    if (s.phase === 'writing') return `${head} writing${s.fetched > 0 ? ` (${formatBytes(s.fetched)} fetched)` : ''}`;
    if (s.phase === 'fetched') return `${head} fetched ${formatBytes(s.fetched)}, waiting to be written`;
    const rate = s.meter.rate(now);
    const total = s.total !== undefined ? ` / ${formatBytes(s.total)}` : '';
    const eta = rate && s.total !== undefined && rate > 0 ? formatEta((s.total - s.fetched) / rate) : '';
    return `${head} ${formatBytes(s.fetched)}${total}${rate !== undefined ? `  ${formatRate(rate)}` : ''}${eta ? `  ETA ${eta}` : ''}`;
  }

  /** The whole image; the config line above the block names it. */
  private overallLine(now: number): string | undefined {
    if (!this.image && this.layers.size === 0) return undefined;
    const count = this.layerCount ?? this.layers.size;
    let expected: number | undefined = 0;
    for (const s of this.layers.values()) {
      if (s.total === undefined) expected = undefined;
      else if (expected !== undefined) expected += s.total;
    }
    const rate = this.overall.rate(now);
    const fetchedPart =
      this.overallFetched > 0 ? `, ${formatBytes(this.overallFetched)}${expected !== undefined ? ` of ${formatBytes(expected)}` : ''} fetched` : '';
    const eta = rate && expected !== undefined && rate > 0 && this.overallFetched < expected ? `, ETA ${formatEta((expected - this.overallFetched) / rate)}` : '';
    const ratePart = rate !== undefined && this.overallFetched > 0 ? `, ${formatRate(rate)}` : '';
    return `${this.stored} of ${plural(count, 'layer')} stored${fetchedPart}${ratePart}${eta}`;
  }

  private state(index: number): LayerState {
    let s = this.layers.get(index);
    if (!s) {
      s = { index, label: '', total: undefined, fetched: 0, phase: 'waiting', meter: new RateMeter(), started: undefined };
      this.layers.set(index, s);
    }
    return s;
  }
}
