/**
 * The `exclude` filter: drop the entries whose path matches a glob.
 *
 * Grammar (a `,` always separates items, so a pattern cannot contain one; `?` or `[!x]`
 * match a comma):
 *
 * ```
 * -f exclude:pattern=GLOB[,pattern=GLOB...]     repeat the key (the general NAME:k=v form)
 * -f exclude:pattern=GLOB[,GLOB...]             occystrap's form: a bare item continues the list
 * ```
 *
 * An item without `=` after a pattern is another pattern. An item `NAME=VALUE` whose NAME
 * looks like an option name (`[A-Za-z_][A-Za-z0-9_-]*`) is an option, and `pattern` is the
 * only one; any other item with `=` after a pattern (e.g. `*=*`) is a pattern. A bare item
 * before the first `pattern=` is an error. Patterns are taken literally: no value coercion,
 * no percent-decoding, spaces kept.
 *
 * Matching (occystrap's, which is Python's `fnmatch` on `TarInfo.name`): the glob must
 * match the whole member path as stored (no `./` added or removed), with the trailing `/`
 * of a directory name removed; `*` and `?` cross `/`. Directories are not pruned: an
 * excluded directory's children stay unless they match too (`**\/.git/**` drops what is in
 * `.git`, not `x/.git` itself; add `**\/.git` for that).
 *
 * A hard link whose target was excluded from the same layer cannot be kept (it would point
 * at nothing); that is an error naming the link, so the user can exclude it too. Everything
 * else about the kept entries is unchanged (times, owners, xattrs); see `layer-rewrite.ts`
 * for layers and config.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import type { TarTransform } from '../tar/rewrite.js';
import { globMatcher } from './glob.js';
import { type LayerFiles, LayerRewriteFilter, type LayerRewriteReport, TransformError } from './layer-rewrite.js';

export const EXCLUDE = 'exclude';

const USAGE = 'write -f exclude:pattern=GLOB[,GLOB...] or -f exclude:pattern=GLOB,pattern=GLOB';
const OPTION_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** The name part of a `-f` spec, normalised as `parseFilterSpec` does. */
function specName(spec: string): string {
  const colon = spec.indexOf(':');
  return (colon < 0 ? spec : spec.slice(0, colon)).trim().toLowerCase().replace(/_/g, '-');
}

/** True when a `-f` spec names the exclude filter (so {@link parseExcludeSpec} must parse it). */
export function isExcludeSpec(spec: string): boolean {
  return specName(spec) === EXCLUDE;
}

/**
 * Parse `exclude:...` (see the module comment for the grammar). The result has the shape
 * `parseFilterSpec` gives: `{ name, options: { pattern: [GLOB, ...] } }`.
 */
export function parseExcludeSpec(spec: string): E.Either<string, { readonly name: string; readonly options: { readonly pattern: readonly string[] } }> {
  if (!isExcludeSpec(spec)) return E.left(`${JSON.stringify(spec)} is not an exclude filter`);
  const colon = spec.indexOf(':');
  const patterns: string[] = [];
  if (colon >= 0) {
    for (const item of spec.slice(colon + 1).split(',')) {
      if (item === '') continue;
      const eq = item.indexOf('=');
      const key = eq > 0 ? item.slice(0, eq) : undefined;
      if (key !== undefined && (OPTION_NAME.test(key) || patterns.length === 0)) {
        if (key !== 'pattern') return E.left(`${EXCLUDE}: unknown option ${JSON.stringify(key)}; it takes pattern=GLOB (${USAGE})`);
        const glob = item.slice(eq + 1);
        if (glob === '') return E.left(`${EXCLUDE}: empty pattern (${USAGE})`);
        patterns.push(glob);
      } else if (patterns.length > 0) {
        patterns.push(item); // occystrap's form: pattern=a,b
      } else {
        return E.left(`${EXCLUDE}: ${JSON.stringify(item)} comes before any pattern=; ${USAGE}`);
      }
    }
  }
  if (patterns.length === 0) return E.left(`${EXCLUDE} needs at least one pattern: ${USAGE}`);
  return E.right({ name: EXCLUDE, options: { pattern: patterns } });
}

export interface ExcludeOptions {
  readonly patterns: readonly string[];
}

/** Options as a factory receives them: `pattern` as one string or a list of strings. */
export function parseExcludeOptions(options: Readonly<Record<string, unknown>>): E.Either<string, ExcludeOptions> {
  const unknown = Object.keys(options).filter((k) => k !== 'pattern');
  if (unknown.length > 0) return E.left(`${EXCLUDE}: unknown option ${unknown.join(', ')}; it takes pattern=GLOB (${USAGE})`);
  const raw = Object.hasOwn(options, 'pattern') ? options['pattern'] : undefined;
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  if (list.length === 0) return E.left(`${EXCLUDE} needs at least one pattern: ${USAGE}`);
  const patterns: string[] = [];
  for (const p of list) {
    if (typeof p !== 'string' || p === '') return E.left(`${EXCLUDE}: pattern= takes a glob, got ${JSON.stringify(p)}`);
    patterns.push(p);
  }
  return E.right({ patterns });
}

/** The path a pattern is matched against: as stored, without a directory's trailing `/`. */
export function excludeMatchPath(name: string, isDirectory: boolean): string {
  if (!isDirectory) return name;
  const stripped = name.replace(/\/+$/, '');
  return stripped === '' ? name : stripped;
}

/** A fresh transform per layer: drop matching entries; refuse a hard link to a dropped entry. */
export function excludeTransform(patterns: readonly string[]): () => TarTransform {
  const matchers = patterns.map(globMatcher);
  return () => {
    const dropped = new Set<string>();
    return (h) => {
      const path = excludeMatchPath(h.name, h.type === 'directory');
      if (matchers.some((m) => m(path))) {
        dropped.add(h.name);
        return null;
      }
      if (h.type === 'link' && h.linkname !== undefined && dropped.has(h.linkname)) {
        throw new TransformError(
          `hard link ${JSON.stringify(h.name)} points at ${JSON.stringify(h.linkname)}, which is excluded; exclude the link as well, or keep its target`,
        );
      }
      return h;
    };
  };
}

export class ExcludeFilter extends LayerRewriteFilter {
  constructor(options: ExcludeOptions & { readonly files: LayerFiles; readonly onLayer?: (r: LayerRewriteReport) => void }) {
    super({
      name: EXCLUDE,
      transform: excludeTransform(options.patterns),
      files: options.files,
      chainOptions: { patterns: [...options.patterns] },
      ...(options.onLayer ? { onLayer: options.onLayer } : {}),
    });
  }
}
