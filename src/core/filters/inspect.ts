/**
 * The `inspect` filter: a pure observer that records, for each image, its layers (newest
 * first, like `docker history`) with their sizes and the history entries that made them,
 * and hands one JSON line to a sink when the image has passed.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import type { HistoryEntry } from '../codecs/oci.js';
import type { Digest } from '../digest.js';
import { type ConfigElement, type ImageElement, payloadBytes, repoTag } from '../element.js';
import type { ImageFilter, StageContext } from '../pipeline/types.js';

/** One layer as `inspect` writes it (the keys of `docker history --format json`, as occystrap writes them). */
export interface InspectLayer {
  readonly Id: string;
  /** Uncompressed size in bytes; 0 when the layer passed without data (the output already had it). */
  readonly Size: number;
  /** Unix seconds from the history entry's `created`; 0 when absent or unparsable. */
  readonly Created: number;
  readonly CreatedBy: string;
  readonly Comment: string;
  /** `["name:tag"]` on the newest layer, null on the others. */
  readonly Tags: readonly string[] | null;
}

export interface InspectRecord {
  readonly name: string;
  readonly layers: readonly InspectLayer[];
}

/** Port: append one line (without its newline) to the inspect file. */
export type InspectSink = (line: string) => Promise<void>;

export interface InspectOptions {
  readonly file: string;
}

/** Options of `-f inspect:file=PATH`. */
export function parseInspectOptions(options: Readonly<Record<string, unknown>>): E.Either<string, InspectOptions> {
  const unknown = Object.keys(options).filter((k) => k !== 'file');
  if (unknown.length > 0) return E.left(`inspect: unknown option ${unknown.join(', ')}; it takes file=PATH`);
  const file = Object.hasOwn(options, 'file') ? options['file'] : undefined;
  if (file === undefined || file === true || file === '') return E.left('inspect needs a file: -f inspect:file=PATH');
  if (typeof file !== 'string' && typeof file !== 'number') return E.left(`inspect takes one file=PATH, got ${JSON.stringify(file)}`);
  return E.right({ file: String(file) });
}

const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?(?:Z|z|[+-]\d{2}:?\d{2})?$/;

/**
 * A history `created` value as whole Unix seconds (truncated toward zero): an ISO 8601
 * string (`Z` or an offset; no offset means UTC) or a number; anything else is 0.
 */
export function createdSeconds(created: unknown): number {
  if (typeof created === 'number') return Number.isFinite(created) ? Math.trunc(created) : 0;
  if (typeof created !== 'string' || !ISO_8601.test(created.trim())) return 0;
  let s = created.trim().replace(' ', 'T').replace(',', '.').replace(/z$/, 'Z');
  if (/T[^Z+-]*$/.test(s)) s += 'Z';
  else if (!/T/.test(s)) s += 'T00:00:00Z';
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? Math.trunc(ms / 1000) : 0;
}

interface SeenLayer {
  readonly index: number;
  readonly diffId: Digest;
  readonly size: number | undefined;
  readonly duplicate: boolean;
}

/**
 * Pair layers with history: layer i (manifest order) gets the i-th history entry that is
 * not `empty_layer`. The result lists layers newest first; only the newest has Tags.
 */
export function inspectRecord(config: ConfigElement | undefined, layers: readonly SeenLayer[]): InspectRecord {
  const history: HistoryEntry[] = (config?.config.history ?? []).filter((h) => h.empty_layer !== true);
  const sizeOf = new Map<Digest, number>();
  for (const l of layers) if (l.size !== undefined && !sizeOf.has(l.diffId)) sizeOf.set(l.diffId, l.size);
  const name = config ? (repoTag(config.image) ?? 'unknown:unknown') : 'unknown:unknown';
  const ordered = [...layers].sort((a, b) => a.index - b.index);
  const entries: InspectLayer[] = ordered.map((l, i) => {
    const h = history[i];
    const size = l.size ?? (l.duplicate ? (sizeOf.get(l.diffId) ?? 0) : 0);
    return {
      Id: l.diffId,
      Size: size,
      Created: h ? createdSeconds((h as { created?: unknown }).created) : 0,
      CreatedBy: h?.created_by ?? '',
      Comment: h?.comment ?? '',
      Tags: null,
    };
  });
  entries.reverse();
  if (entries.length > 0 && config && repoTag(config.image) !== undefined) {
    entries[0] = { ...(entries[0] as InspectLayer), Tags: [name] };
  }
  return { name, layers: entries };
}

/**
 * JSON with sorted keys, `", "` and `": "` separators and non-ASCII escaped as `\uXXXX`:
 * byte for byte what Python's `json.dumps(value, sort_keys=True)` writes, so the file
 * matches occystrap's.
 */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return 'null';
    return Number.isInteger(value) ? String(value) : JSON.stringify(value);
  }
  if (typeof value === 'string') {
    return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  if (Array.isArray(value)) return `[${value.map((v) => pythonJsonDumps(v)).join(', ')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${keys.map((k) => `${pythonJsonDumps(k)}: ${pythonJsonDumps(obj[k])}`).join(', ')}}`;
  }
  return 'null';
}

export interface InspectFilterOptions {
  /** Where each line goes; the shell appends it to the file. */
  readonly sink: InspectSink;
}

/**
 * A pass-through that re-yields every element unchanged and releases nothing. When its
 * input ends without error it gives the sink one line for the image. Layers without data
 * count 0 bytes, except a repeat of a layer whose data passed (it counts that size).
 */
export class InspectFilter implements ImageFilter {
  readonly name = 'inspect';
  constructor(private readonly options: InspectFilterOptions) {}

  apply(elements: AsyncIterable<ImageElement>, _ctx: StageContext): AsyncIterable<ImageElement> {
    return this.run(elements);
  }

  private async *run(elements: AsyncIterable<ImageElement>): AsyncGenerator<ImageElement, void, undefined> {
    let config: ConfigElement | undefined;
    const layers: SeenLayer[] = [];
    for await (const element of elements) {
      if (element._tag === 'Config') {
        config = element;
      } else {
        const p = element.payload;
        layers.push({
          index: element.layer.index,
          diffId: element.layer.diffId,
          size: p._tag === 'Skipped' ? undefined : payloadBytes(p),
          duplicate: p._tag === 'Skipped' && p.reason === 'duplicate',
        });
      }
      yield element;
    }
    await this.options.sink(pythonJsonDumps(inspectRecord(config, layers)));
  }
}
