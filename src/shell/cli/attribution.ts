/**
 * Which endpoint an error belongs to, and one line for it. Errors from the output
 * (its `consume` and its `wants`) are the destination's; errors that reach the output
 * from upstream are the source's (the input's, or a filter's reading the source's
 * content). An operating-system error is placed by its path first: inside the run's
 * temp directory it is the temp dir's, inside the destination's area the destination's.
 * The result names the URI (or `--temp-dir`), says what failed and what to do.
 *
 * @module
 */
import * as path from 'node:path';
import type { ImageElement } from '../../core/element.js';
import { isExplained, OccystrapError } from '../../core/errors.js';
import type { ImageOutput } from '../../core/pipeline/types.js';
import { describeSystemError, findSystemError, pathOf, type ErrorPlace } from '../system-errors.js';

export interface AttributionOptions {
  /** The source's label (its URI as typed, or redacted). */
  readonly source: string;
  /** The destination's label, when there is a destination. */
  readonly destination?: string;
  /** The directory the destination writes in (a dir:// root, a tar:// file's directory). */
  readonly destinationArea?: string;
  /** The parent of the run directory, as the user sees it. */
  readonly tempDir: string;
}

/** errno codes that only writing can meet. */
const WRITE_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'EROFS']);

/** The write-only errno code an error message quotes (`ENOSPC: no space left …`), if any. */
function writeErrorNamedIn(message: string): string | undefined {
  const m = /\b(ENOSPC|EDQUOT|EFBIG|EROFS)\b/.exec(message);
  return m?.[1];
}

function within(p: string, dir: string): boolean {
  const rel = path.relative(dir, path.resolve(p));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export class ErrorAttribution {
  /** Errors that reached the output from upstream (they are the source's). */
  private readonly upstream = new WeakSet<object>();
  /** The first failure of the output's `wants`, which the input reports as its own. */
  private wantsFailure: { error: unknown } | undefined;
  private runDir: string | undefined;

  constructor(private readonly options: AttributionOptions) {}

  /** The run directory, once the scope exists (paths inside it are the temp dir's). */
  setRunDir(dir: string): void {
    this.runDir = dir;
  }

  /** The output, with its own failures told apart from those that came from upstream. */
  output(output: ImageOutput): ImageOutput {
    const upstream = this.upstream;
    return {
      description: output.description,
      order: output.order,
      wants: async (layer) => {
        try {
          return await output.wants(layer);
        } catch (e) {
          this.wantsFailure ??= { error: e };
          throw e;
        }
      },
      consume: (elements, ctx) =>
        output.consume(
          {
            [Symbol.asyncIterator]() {
              const it = elements[Symbol.asyncIterator]();
              return {
                async next() {
                  try {
                    return await it.next();
                  } catch (e) {
                    if (typeof e === 'object' && e !== null) upstream.add(e);
                    throw e;
                  }
                },
                return: async (v?: unknown) => (await it.return?.(v)) ?? { done: true as const, value: undefined },
              };
            },
          } satisfies AsyncIterable<ImageElement>,
          ctx,
        ),
    };
  }

  /** The error to report for a failed run: one line, under the right name. */
  explain(error: unknown): unknown {
    if (OccystrapError.is(error) && (error.code === 'EUSAGE' || error.code === 'EABORT')) return error;
    // The output's wants failed first; the input only passed that on.
    const fromOutput = this.wantsFailure !== undefined || (this.options.destination !== undefined && !(typeof error === 'object' && error !== null && this.upstream.has(error)));
    const first = this.wantsFailure?.error ?? error;
    const stagePlace: ErrorPlace = fromOutput ? 'destination' : 'source';
    const system = findSystemError(first);
    let place = system ? this.placeOf(pathOf(system)) : undefined;
    // Inputs and filters write only into the run directory: a full or read-only disk
    // met upstream, with no path said, is the temp dir's.
    if (place === undefined && system && stagePlace === 'source' && WRITE_ERRORS.has(system.code)) place = 'temp';
    place ??= stagePlace;
    const label = this.labelOf(place);
    const code = place === 'source' ? 'EINPUT' : 'EOUTPUT';
    if (isExplained(first)) {
      // A labelled error keeps its words, unless the OS error inside it belongs elsewhere.
      if (system && place !== stagePlace) return new OccystrapError(code, `${label}: ${describeSystemError(system, place)}`, { cause: first });
      // An input that kept only the text of a write error (no cause): still the temp dir's.
      const written = stagePlace === 'source' && !system ? writeErrorNamedIn(first.message) : undefined;
      if (written) {
        return new OccystrapError('EOUTPUT', `${this.labelOf('temp')}: ${describeSystemError({ code: written, syscall: 'write', message: first.message }, 'temp')} (${first.message})`, { cause: first });
      }
      if (this.isLabelled(first.message)) return first;
      return new OccystrapError(first.code, `${label}: ${first.message}`, { cause: first });
    }
    const message = system ? describeSystemError(system, place) : first instanceof Error ? first.message : String(first);
    return new OccystrapError(code, `${label}: ${message}`, { cause: first });
  }

  private placeOf(p: string | undefined): ErrorPlace | undefined {
    if (p === undefined) return undefined;
    if (this.runDir && within(p, this.runDir)) return 'temp';
    if (this.options.destinationArea && within(p, this.options.destinationArea)) return 'destination';
    return undefined;
  }

  private labelOf(place: ErrorPlace): string {
    if (place === 'temp') return `temp dir ${this.options.tempDir}`;
    if (place === 'destination') return this.options.destination ?? this.options.source;
    return this.options.source;
  }

  private isLabelled(message: string): boolean {
    const labels = [this.options.source, this.options.destination, `temp dir ${this.options.tempDir}`, '--temp-dir'];
    return labels.some((l) => l !== undefined && message.startsWith(l));
  }
}
