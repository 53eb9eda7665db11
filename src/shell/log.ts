/**
 * Logging to stderr (with a live progress block kept under the lines on a terminal), and
 * the summary line.
 *
 * @module
 */
import { printableLines } from '../core/printable.js';

export type LogLevel = 'quiet' | 'normal' | 'verbose' | 'debug';

/** A block of lines the reporter keeps at the bottom of a terminal, redrawn in place. */
export interface LiveBlock {
  /** The block as it stands, each line narrower than `columns`. */
  lines(columns: number): string[];
  /** Lines to print once above the block (they stay when the block moves on). */
  takeFinished(): string[];
}

/**
 * Log lines to stderr. With a live block attached (a terminal), each line is written
 * above the block, which is then drawn again, so lines never tear.
 */
export class Reporter {
  private live: LiveBlock | undefined;
  /** Lines of the block on the screen now, under the cursor's line. */
  private drawn = 0;
  constructor(
    readonly level: LogLevel,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  get isTty(): boolean {
    return this.stream.isTTY === true;
  }

  /** False with `--quiet`: no progress and no summary line. */
  get chatty(): boolean {
    return this.level !== 'quiet';
  }

  verbose(message: string): void {
    if (this.level === 'verbose' || this.level === 'debug') this.line(message);
  }

  debug(message: string): void {
    if (this.level === 'debug') this.line(`debug: ${message}`);
  }

  line(message: string): void {
    this.write(`${this.erase()}${printableLines(message)}\n${this.block()}`);
  }

  /** Show `block` at the bottom from now on (one at a time). */
  attach(block: LiveBlock): void {
    this.live = block;
  }

  /** Print what `block` has finished, then remove it from the screen. */
  detach(block: LiveBlock): void {
    if (this.live !== block) return;
    const finished = block.takeFinished().map((l) => `${l}\n`).join('');
    this.write(`${this.erase()}${finished}`);
    this.live = undefined;
  }

  /** Draw the block again (its lines changed). */
  redraw(): void {
    if (this.live) this.write(`${this.erase()}${this.block()}`);
  }

  /** Remove the block before a last line (an interrupt): nothing is drawn after this. */
  clearProgress(): void {
    if (this.live) this.write(this.erase());
    this.live = undefined;
  }

  private write(text: string): void {
    if (text !== '') this.stream.write(text);
  }

  /** Up to the block's first line and clear to the end of the screen. */
  private erase(): string {
    const n = this.drawn;
    this.drawn = 0;
    return n > 0 ? `\r\x1b[${n}A\x1b[J` : '';
  }

  /** Finished lines, then the block; remembers the block's height. */
  private block(): string {
    if (!this.live) return '';
    const finished = this.live.takeFinished();
    const lines = this.live.lines(this.stream.columns || 80);
    this.drawn = lines.length;
    return [...finished, ...lines].map((l) => `${l}\n`).join('');
  }
}

/** `1 layer`, `2 layers`: a count with its noun, singular for exactly one. */
export function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
}

/** What the `Summary:` line says about a run. */
export interface RunSummaryFacts {
  /** Images done and images in the run (occystrap's `N/M images`). */
  readonly images: { readonly done: number; readonly total: number };
  readonly layers: number;
  readonly layersSkipped: number;
  /** Bytes of layer data the destination stored. */
  readonly bytes: number;
  /** Blob bytes received over the network (registry sources), retried ones included. */
  readonly downloaded?: number | undefined;
  readonly seconds: number;
  readonly copiedAcrossDevices: number;
  readonly retries: number;
  readonly rateLimited: number;
}

/** Bytes per second of the run: what was downloaded when anything was, else what was stored. */
export function meanRate(f: Pick<RunSummaryFacts, 'bytes' | 'downloaded' | 'seconds'>): number {
  const moved = f.downloaded !== undefined && f.downloaded > 0 ? f.downloaded : f.bytes;
  return f.seconds > 0 ? moved / f.seconds : 0;
}

/**
 * The `Summary:` line. Its comma-separated fields keep occystrap's order (`Summary: 47/47
 * images, 312 layers, 4.2 GB, 38.1s, 2 retries`), so a script that splits them still finds
 * each; this version adds to a field rather than adding fields before it: skipped layers,
 * `written` and the bytes downloaded after the size, the mean rate after the time, then
 * rate limits and cross-filesystem copies at the end.
 */
export function formatSummary(f: RunSummaryFacts): string {
  const skipped = f.layersSkipped > 0 ? ` (${f.layersSkipped} skipped)` : '';
  const downloaded = f.downloaded !== undefined && f.downloaded > 0 ? ` (${formatBytes(f.downloaded)} downloaded)` : '';
  const rate = f.seconds > 0 ? ` at ${formatRate(meanRate(f))}` : '';
  const retried = f.retries > 0 ? `, ${plural(f.retries, 'retry', 'retries')}${f.rateLimited > 0 ? ` (${f.rateLimited} rate-limited)` : ''}` : '';
  const copied = f.copiedAcrossDevices > 0 ? `, ${f.copiedAcrossDevices} copied across filesystems` : '';
  return `Summary: ${f.images.done}/${f.images.total} images, ${plural(f.layers, 'layer')}${skipped}, ${formatBytes(f.bytes)} written${downloaded}, ${f.seconds.toFixed(1)}s${rate}${retried}${copied}`;
}

/** `4.3 MB/s`. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}
