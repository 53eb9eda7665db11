/**
 * The `normalize-timestamps` filter: every entry of every layer gets the same mtime.
 *
 * `-f normalize-timestamps` (mtime 0), `-f normalize-timestamps:ts=N` or `:timestamp=N`
 * (N: integer seconds since the epoch; negative values are written as PAX records).
 *
 * Per entry (files, directories, links, devices, fifos alike): mtime = N, and the `atime`,
 * `ctime` and `LIBARCHIVE.creationtime` records are dropped. Everything else is kept:
 * names, modes, owners, link targets, device numbers, xattrs (`SCHILY.xattr.*`, file
 * capabilities included). Global PAX headers lose these records too, and a global `mtime`
 * gives way to N like any other. See `layer-rewrite.ts` for what happens to layers and
 * config.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import type { PaxValue } from '../tar/header.js';
import type { TarTransform } from '../tar/rewrite.js';
import { type LayerFiles, LayerRewriteFilter, type LayerRewriteReport } from './layer-rewrite.js';

export const NORMALIZE_TIMESTAMPS = 'normalize-timestamps';

/** PAX records about times other than mtime: dropped by normalisation. */
export const DROPPED_TIME_RECORDS: readonly string[] = ['atime', 'ctime', 'LIBARCHIVE.creationtime'];

export interface NormalizeTimestampsOptions {
  /** Seconds since the epoch (an integer). */
  readonly timestamp: number;
}

/**
 * Options of `-f normalize-timestamps[:ts=N]` (`timestamp=N` is the same option; giving
 * both is an error). Unknown options are refused, naming the accepted ones.
 */
export function parseNormalizeTimestampsOptions(options: Readonly<Record<string, unknown>>): E.Either<string, NormalizeTimestampsOptions> {
  const keys = Object.keys(options);
  const unknown = keys.filter((k) => k !== 'ts' && k !== 'timestamp');
  if (unknown.length > 0) return E.left(`${NORMALIZE_TIMESTAMPS}: unknown option ${unknown.join(', ')}; it takes ts=N (or timestamp=N), N in seconds since the epoch`);
  if (keys.length > 1) return E.left(`${NORMALIZE_TIMESTAMPS}: give ts=N or timestamp=N, not both`);
  if (keys.length === 0) return E.right({ timestamp: 0 });
  const key = keys[0] as string;
  const v = options[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    return E.left(`${NORMALIZE_TIMESTAMPS}: ${key}= takes whole seconds since the epoch, got ${JSON.stringify(v)}`);
  }
  return E.right({ timestamp: v });
}

/** The per-entry transform: mtime = `timestamp`, other time records dropped. */
export function normalizeTimestamps(timestamp: number): TarTransform {
  return (h) => {
    const { mtimeText: _dropped, pax, ...rest } = h;
    const kept: Record<string, PaxValue> = {};
    for (const [k, v] of Object.entries(pax ?? {})) if (!DROPPED_TIME_RECORDS.includes(k)) kept[k] = v;
    return { ...rest, mtime: timestamp, ...(Object.keys(kept).length > 0 ? { pax: kept } : {}) };
  };
}

export class NormalizeTimestampsFilter extends LayerRewriteFilter {
  constructor(options: NormalizeTimestampsOptions & { readonly files: LayerFiles; readonly onLayer?: (r: LayerRewriteReport) => void }) {
    const transform = normalizeTimestamps(options.timestamp);
    super({
      name: NORMALIZE_TIMESTAMPS,
      transform: () => transform,
      droppedRecords: DROPPED_TIME_RECORDS,
      files: options.files,
      chainOptions: { timestamp: options.timestamp },
      ...(options.onLayer ? { onLayer: options.onLayer } : {}),
    });
  }
}
