/**
 * A stable hash of a filter chain, for a layer cache that keeps rewritten layers: the same
 * chain always gives the same key, and a change to how layers are rewritten (bump
 * {@link REWRITE_VERSION}) gives new keys, so stale rewritten layers are never reused.
 *
 * @module
 */
import { sha256Hex } from '../sha256.js';
import { InternalError } from '../errors.js';

/**
 * The version of the layer rewrite (tar reader, encoder, end padding, record rules).
 * Bump it whenever a rewrite of the same input could give different bytes.
 */
export const REWRITE_VERSION = 2; // 2: global PAX headers kept as global headers

/** One filter of a chain: its name and its options (as parsed, defaults included). */
export interface FilterChainEntry {
  readonly name: string;
  readonly options: Readonly<Record<string, unknown>>;
}

/** JSON with object keys sorted (arrays keep their order); refuses values JSON cannot carry. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InternalError(`canonicalJson: ${value} is not a finite number`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  throw new InternalError(`canonicalJson: cannot encode a ${typeof value}`);
}

/**
 * `none` for an empty chain; otherwise the sha256 (hex) of the canonical JSON of
 * `{ rewriteVersion, filters: [[name, options], ...] }` (filters in chain order, option
 * keys sorted).
 *
 * @example
 * ```ts
 * import { filterChainHash } from 'occystrap/core';
 * filterChainHash([]); // 'none'
 * filterChainHash([{ name: 'normalize-timestamps', options: { timestamp: 0 } }]).length; // 64
 * ```
 */
export function filterChainHash(chain: readonly FilterChainEntry[]): string {
  if (chain.length === 0) return 'none';
  const doc = { rewriteVersion: REWRITE_VERSION, filters: chain.map((f) => [f.name, f.options]) };
  return sha256Hex(new TextEncoder().encode(canonicalJson(doc)));
}
