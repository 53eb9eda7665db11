/**
 * Content digests (`algorithm:hex`), validated before any use in a path or URL.
 *
 * A {@link Digest} can only be obtained through {@link parseDigest}, which checks the
 * algorithm against the ones we can verify and the hex length against that algorithm
 * (CVE-2024-3727: unvalidated digests reached file paths in containers/image).
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';

/** Algorithms we can verify, with the length of their lowercase-hex encoding. */
export const DIGEST_ALGORITHMS = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

declare const digestBrand: unique symbol;
/** A validated `algorithm:hex` digest string. Safe to embed in paths and URLs. */
export type Digest = string & { readonly [digestBrand]: true };

export interface DigestError {
  readonly _tag: 'DigestError';
  readonly input: string;
  readonly reason: string;
}

const HEX = /^[0-9a-f]+$/;

/**
 * Parse and validate a digest.
 *
 * @example
 * parseDigest('sha256:' + 'a'.repeat(64)); // Right('sha256:aaa…')
 * parseDigest('sha256:../../x');           // Left({ reason: 'hex part …' })
 */
export function parseDigest(input: string): E.Either<DigestError, Digest> {
  const fail = (reason: string) => E.left<DigestError>({ _tag: 'DigestError', input, reason });
  if (typeof input !== 'string') return fail('not a string');
  const colon = input.indexOf(':');
  if (colon <= 0) return fail('expected algorithm:hex');
  const algorithm = input.slice(0, colon);
  const hex = input.slice(colon + 1);
  if (!Object.prototype.hasOwnProperty.call(DIGEST_ALGORITHMS, algorithm)) {
    return fail(`unsupported algorithm "${algorithm.slice(0, 20)}" (supported: ${Object.keys(DIGEST_ALGORITHMS).join(', ')})`);
  }
  const expected = DIGEST_ALGORITHMS[algorithm as DigestAlgorithm];
  if (!HEX.test(hex)) return fail('hex part must be lowercase hexadecimal');
  if (hex.length !== expected) return fail(`${algorithm} needs ${expected} hex characters, got ${hex.length}`);
  return E.right(input as Digest);
}

/** True when `input` is a valid digest. */
export function isDigest(input: unknown): input is Digest {
  return typeof input === 'string' && E.isRight(parseDigest(input));
}

/** Build a digest from a bare hex string computed locally (e.g. a running hash). */
export function digestFromHex(algorithm: DigestAlgorithm, hex: string): E.Either<DigestError, Digest> {
  return parseDigest(`${algorithm}:${hex}`);
}

export function digestAlgorithm(d: Digest): DigestAlgorithm {
  return d.slice(0, d.indexOf(':')) as DigestAlgorithm;
}

/** The encoded part, e.g. the 64 hex characters of a sha256 digest. */
export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

/** Human form of a digest error, one line. */
export function describeDigestError(e: DigestError, where: string): string {
  const shown = e.input.length > 80 ? `${e.input.slice(0, 77)}...` : e.input;
  return `invalid digest ${JSON.stringify(shown)} at ${where}: ${e.reason}`;
}

/** The diff_id of an empty layer: sha256 of 1024 zero bytes (a tar end marker alone). */
export const EMPTY_LAYER_DIFF_ID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef' as Digest;
