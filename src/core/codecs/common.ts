/**
 * Shared io-ts building blocks and the path-naming error reporter.
 *
 * Codecs use `t.type`/`t.partial` (never `t.exact`) so unknown fields survive decoding;
 * digests and paths are re-emitted from the raw bytes, never re-serialised.
 *
 * @module
 */
import * as t from 'io-ts';
import * as E from 'fp-ts/lib/Either.js';
import { type Digest, parseDigest } from '../digest.js';

/** The largest JSON document we read (manifests, configs, indexes, docker-save manifest.json). */
export const MAX_JSON_BYTES = 4 * 1024 * 1024;

/**
 * The deepest nesting of arrays and objects we accept. Real manifests and configs nest
 * fewer than 10 levels; deeper documents would overflow the stack of the recursive code
 * that reads, prints or re-serialises values (io-ts, String(), JSON.stringify).
 */
export const MAX_JSON_DEPTH = 100;

/**
 * The nesting depth of JSON text, counted without parsing (brackets inside strings do
 * not count), stopping as soon as it passes `limit`.
 */
export function jsonNestingExceeds(text: string, limit: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

export const DigestCodec = new t.Type<Digest, string, unknown>(
  'Digest',
  (u): u is Digest => typeof u === 'string' && E.isRight(parseDigest(u)),
  (u, c) => {
    if (typeof u !== 'string') return t.failure(u, c, 'expected a digest string');
    const parsed = parseDigest(u);
    return E.isRight(parsed) ? t.success(parsed.right) : t.failure(u, c, parsed.left.reason);
  },
  (d) => d,
);

export const SizeCodec = new t.Type<number, number, unknown>(
  'Size',
  (u): u is number => typeof u === 'number' && Number.isSafeInteger(u) && u >= 0,
  (u, c) =>
    typeof u === 'number' && Number.isSafeInteger(u) && u >= 0
      ? t.success(u)
      : t.failure(u, c, 'expected a non-negative integer'),
  (n) => n,
);

export const Annotations = t.record(t.string, t.string, 'Annotations');

export const Platform = t.intersection(
  [
    t.type({ architecture: t.string, os: t.string }),
    t.partial({ variant: t.string, 'os.version': t.string, 'os.features': t.array(t.string), features: t.array(t.string) }),
  ],
  'Platform',
);
export type Platform = t.TypeOf<typeof Platform>;

export const Descriptor = t.intersection(
  [
    t.type({ mediaType: t.string, digest: DigestCodec, size: SizeCodec }),
    t.partial({
      urls: t.array(t.string),
      annotations: Annotations,
      platform: Platform,
      artifactType: t.string,
      data: t.string,
    }),
  ],
  'Descriptor',
);
export type Descriptor = t.TypeOf<typeof Descriptor>;

/** A decoding failure with the JSON path that failed, e.g. `layers[2].digest`. */
export interface DecodeError {
  readonly _tag: 'DecodeError';
  readonly document: string;
  readonly path: string;
  readonly message: string;
}

function contextPath(context: t.Context): string {
  let out = '';
  for (let i = 1; i < context.length; i++) {
    const entry = context[i]!;
    const parent = context[i - 1]!.type;
    // Members of intersections and unions are keyed by member index: not part of the JSON path.
    if (parent instanceof t.IntersectionType || parent instanceof t.UnionType) continue;
    if (parent instanceof t.ArrayType || parent instanceof t.TupleType || parent instanceof t.ReadonlyArrayType) {
      out += `[${entry.key}]`;
    } else {
      out += out === '' ? entry.key : `.${entry.key}`;
    }
  }
  return out === '' ? '(root)' : out;
}

function showValue(v: unknown): string {
  if (v === undefined) return 'missing';
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? 'an array' : typeof v;
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Turn io-ts errors into one DecodeError naming the first failing path. */
export function firstDecodeError(document: string, errors: t.Errors): DecodeError {
  const first = errors[0];
  if (!first) return { _tag: 'DecodeError', document, path: '(root)', message: 'invalid document' };
  const path = contextPath(first.context);
  const last = first.context[first.context.length - 1];
  const expected = first.message ?? `expected ${last?.type.name ?? 'a valid value'}`;
  return {
    _tag: 'DecodeError',
    document,
    path,
    message: `${expected}, got ${showValue(first.value)}`,
  };
}

export function describeDecodeError(e: DecodeError): string {
  return `${e.document}: ${e.path}: ${e.message}`;
}

/** Decode with a codec, reporting the failing path. */
export function decodeWith<A>(codec: t.Decoder<unknown, A>, document: string, value: unknown): E.Either<DecodeError, A> {
  const r = codec.decode(value);
  return E.isRight(r) ? E.right(r.right) : E.left(firstDecodeError(document, r.left));
}

/**
 * Parse JSON bytes with the size cap. The bytes are kept by callers; this only decodes.
 */
export function parseJsonBytes(document: string, bytes: Uint8Array): E.Either<DecodeError, unknown> {
  if (bytes.byteLength > MAX_JSON_BYTES) {
    return E.left({
      _tag: 'DecodeError',
      document,
      path: '(root)',
      message: `document is ${bytes.byteLength} bytes, over the ${MAX_JSON_BYTES}-byte limit for JSON`,
    });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return E.left({ _tag: 'DecodeError', document, path: '(root)', message: 'not valid JSON (not UTF-8)' });
  }
  if (jsonNestingExceeds(text)) {
    return E.left({ _tag: 'DecodeError', document, path: '(root)', message: `nested more than ${MAX_JSON_DEPTH} levels deep; refusing it` });
  }
  try {
    return E.right(JSON.parse(text) as unknown);
  } catch (err) {
    return E.left({ _tag: 'DecodeError', document, path: '(root)', message: `not valid JSON (${(err as Error).message})` });
  }
}
