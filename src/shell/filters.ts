/**
 * From `-f NAME:k=v,...` specs to filters.
 *
 * @module
 */
import { printable, printableLines } from '../core/printable.js';
import * as E from 'fp-ts/lib/Either.js';
import { usageError } from '../core/errors.js';
import type { ImageFilter } from '../core/pipeline/types.js';
import { parseFilterSpec } from '../core/uri.js';
import { appendFile } from 'node:fs/promises';
import { formatSearchReport, parseSearchOptions, SearchFilter } from '../core/filters/search.js';
import { InspectFilter, parseInspectOptions } from '../core/filters/inspect.js';
import { readLayerFile } from './check-layers.js';
import { NormalizeTimestampsFilter, parseNormalizeTimestampsOptions } from '../core/filters/normalize-timestamps.js';
import { ExcludeFilter, isExcludeSpec, parseExcludeOptions, parseExcludeSpec } from '../core/filters/exclude.js';
import { nodeLayerFiles } from './fs/layer-files.js';

type FilterFactory = (options: Readonly<Record<string, unknown>>) => ImageFilter;

/** The filters `-f` accepts, by name. */
const FILTERS: Record<string, FilterFactory> = {
  // search: a pass-through; its report goes to stdout when the image has passed.
  search: (options) => {
    const parsed = parseSearchOptions(options);
    if (E.isLeft(parsed)) throw usageError(parsed.left);
    const { pattern, regex, scriptFriendly } = parsed.right;
    return new SearchFilter({
      pattern,
      regex,
      read: readLayerFile,
      report: (report) => void process.stdout.write(printableLines(formatSearchReport(report, scriptFriendly))),
      warn: (message) => void process.stderr.write(`occystrap: warning: ${printable(message)}\n`),
    });
  },
  // inspect: a pass-through; appends one JSON line per image to file=PATH.
  inspect: (options) => {
    const parsed = parseInspectOptions(options);
    if (E.isLeft(parsed)) throw usageError(parsed.left);
    const { file } = parsed.right;
    return new InspectFilter({ sink: (line) => appendFile(file, `${line}\n`) });
  },
  // normalize-timestamps[:ts=N]: every entry's mtime = N (default 0); layers rewritten.
  'normalize-timestamps': (options) => {
    const parsed = parseNormalizeTimestampsOptions(options);
    if (E.isLeft(parsed)) throw usageError(parsed.left);
    return new NormalizeTimestampsFilter({ timestamp: parsed.right.timestamp, files: nodeLayerFiles });
  },
  // exclude:pattern=GLOB[,GLOB...]: matching entries dropped; layers rewritten.
  exclude: (options) => {
    const parsed = parseExcludeOptions(options);
    if (E.isLeft(parsed)) throw usageError(parsed.left);
    return new ExcludeFilter({ patterns: parsed.right.patterns, files: nodeLayerFiles });
  },
};

export function buildFilters(specs: readonly string[]): ImageFilter[] {
  return specs.map((spec) => {
    // exclude has its own grammar (occystrap's pattern=a,b form), see core/filters/exclude.ts.
    const parsed = isExcludeSpec(spec) ? parseExcludeSpec(spec) : parseFilterSpec(spec);
    if (E.isLeft(parsed)) throw usageError(parsed.left);
    const factory = FILTERS[parsed.right.name];
    if (!factory) {
      const known = Object.keys(FILTERS);
      throw usageError(
        `unknown filter "${parsed.right.name}"; available: ${known.join(', ')}`,
      );
    }
    return factory(parsed.right.options);
  });
}
