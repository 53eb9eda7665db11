/**
 * Logging to stderr, and progress: a rewritten line on a TTY, plain lines otherwise.
 *
 * @module
 */
import { type ImageElement, payloadBytes } from '../core/element.js';
import { printable, printableLines } from '../core/printable.js';

export type LogLevel = 'normal' | 'verbose' | 'debug';

export class Reporter {
  private progressShown = false;
  constructor(
    readonly level: LogLevel,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  get isTty(): boolean {
    return this.stream.isTTY === true;
  }

  verbose(message: string): void {
    if (this.level !== 'normal') this.line(message);
  }

  debug(message: string): void {
    if (this.level === 'debug') this.line(`debug: ${message}`);
  }

  line(message: string): void {
    this.clearProgress();
    this.stream.write(`${printableLines(message)}\n`);
  }

  progress(message: string): void {
    if (this.isTty) {
      this.stream.write(`\r\x1b[2K${printable(message)}`);
      this.progressShown = true;
    } else {
      this.stream.write(`${printable(message)}\n`);
    }
  }

  clearProgress(): void {
    if (this.progressShown) {
      this.stream.write('\r\x1b[2K');
      this.progressShown = false;
    }
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
  readonly bytes: number;
  readonly seconds: number;
  readonly copiedAcrossDevices: number;
  readonly retries: number;
  readonly rateLimited: number;
}

/**
 * The `Summary:` line, in occystrap's form (`Summary: 47/47 images, 312 layers, 4.2 GB,
 * 38.1s, 2 retries`) with this version's additions (skipped layers, cross-filesystem copies,
 * rate limits).
 */
export function formatSummary(f: RunSummaryFacts): string {
  const skipped = f.layersSkipped > 0 ? ` (${f.layersSkipped} skipped)` : '';
  const copied = f.copiedAcrossDevices > 0 ? `, ${f.copiedAcrossDevices} copied across filesystems` : '';
  const retried = f.retries > 0 ? `, ${plural(f.retries, 'retry', 'retries')}${f.rateLimited > 0 ? ` (${f.rateLimited} rate-limited)` : ''}` : '';
  return `Summary: ${f.images.done}/${f.images.total} images, ${plural(f.layers, 'layer')}${skipped}, ${formatBytes(f.bytes)}, ${f.seconds.toFixed(1)}s${copied}${retried}`;
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

/**
 * Report each element once the consumer asks for the next one (the previous one is then
 * fully handled by the output).
 */
export function reportProgress(elements: AsyncIterable<ImageElement>, reporter: Reporter): AsyncIterable<ImageElement> {
  return {
    [Symbol.asyncIterator]() {
      const it = elements[Symbol.asyncIterator]();
      let total = 0;
      let done = 0;
      let bytes = 0;
      let previous: ImageElement | undefined;
      let configSeen = false;
      const finish = () => {
        if (!previous) return;
        if (previous._tag === 'Config') {
          const final = configSeen;
          configSeen = true;
          total = previous.layers.length;
          reporter.progress(`${final ? 'final config' : 'config'} ${previous.digest.slice(0, 19)} ${previous.image.name}:${previous.image.tag}, ${plural(total, 'layer')}`);
        } else {
          done++;
          const p = previous.payload;
          const size = payloadBytes(p);
          bytes += size;
          const state = p._tag === 'Skipped' ? `skipped (${p.reason})` : formatBytes(size);
          const position = configSeen ? `${done}/${total}` : `${done}`;
          reporter.progress(`layer ${position} ${previous.layer.diffId.slice(0, 19)} ${state}, ${formatBytes(bytes)} so far`);
        }
        previous = undefined;
      };
      return {
        async next() {
          finish();
          const r = await it.next();
          if (!r.done) previous = r.value;
          else reporter.clearProgress();
          return r;
        },
        async return(v?: unknown) {
          reporter.clearProgress();
          return (await it.return?.(v)) ?? { done: true as const, value: undefined };
        },
      };
    },
  };
}
