/**
 * From `-f NAME:k=v,...` specs to filters.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { usageError } from '../core/errors.js';
import type { ImageFilter } from '../core/pipeline/types.js';
import { parseFilterSpec } from '../core/uri.js';

type FilterFactory = (options: Readonly<Record<string, unknown>>) => ImageFilter;

/** Filters this version provides. normalize-timestamps, exclude, search and inspect are planned. */
const FILTERS: Record<string, FilterFactory> = {};

export function buildFilters(specs: readonly string[]): ImageFilter[] {
  return specs.map((spec) => {
    const parsed = parseFilterSpec(spec);
    if (E.isLeft(parsed)) throw usageError(parsed.left);
    const factory = FILTERS[parsed.right.name];
    if (!factory) {
      const known = Object.keys(FILTERS);
      throw usageError(
        `unknown filter "${parsed.right.name}"; ${known.length ? `available: ${known.join(', ')}` : 'this version has no filters yet (normalize-timestamps, exclude, search and inspect are planned)'}`,
      );
    }
    return factory(parsed.right.options);
  });
}
