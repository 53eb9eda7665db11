/**
 * Small readers of a Target's body and options that several transports share; each bad
 * value is a usage error that names the URI.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { usageError } from '../../core/errors.js';
import { checkKnownOptions } from '../../core/uri.js';
import type { RoleHelp, Target } from './types.js';

export function orUsage<A>(label: string, r: E.Either<string, A>): A {
  if (E.isLeft(r)) throw usageError(`${label}: ${r.left}`);
  return r.right;
}

/** Refuse options the role does not list in its `options`. */
export function checkOptions(target: Target, role: RoleHelp, label: string = target.uri): void {
  orUsage(label, checkKnownOptions(target.scheme, target.options, role.options));
}

/** The body as a path; empty is a usage error with an example. */
export function filePath(target: Target, role: 'source' | 'destination'): string {
  if (target.body === '') throw usageError(`${target.scheme}:// ${role} needs a path, e.g. ${target.scheme}://image.tar`);
  return target.body;
}

/** The first of `keys` that is set, as one string value. */
export function stringOption(target: Target, label: string, ...keys: string[]): string | undefined {
  for (const key of keys) {
    const v = Object.hasOwn(target.options, key) ? target.options[key] : undefined;
    if (v === undefined) continue;
    if (typeof v === 'string' || typeof v === 'number') return String(v);
    throw usageError(`${label}: ?${key}= takes one value, got ${JSON.stringify(v)}`);
  }
  return undefined;
}
