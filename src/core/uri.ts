/**
 * The URI grammar of sources and destinations (`tar://file.tar`, `dir://out?unique_names=true`,
 * `registry://host/name:tag`), and of filter specs (`name:k=v,k2=v2`).
 *
 * Decisions where occystrap was ambiguous (docs/cli.md lists them):
 * - `scheme:rest` without `//` means `scheme://rest`; schemes are case-insensitive;
 *   aliases (`file` for `tar`, `directory` for `dir`) come from the shell's transport table.
 * - For file-like schemes everything between `//` and `?` is the path, verbatim:
 *   `tar://a.tar` is relative, `tar:///abs/a.tar` absolute, `tar://localhost/p` is the
 *   relative path `localhost/p` (occystrap turned it into `/p`).
 * - Query values: `true`/`yes` and `false`/`no` are booleans, decimal integers are numbers
 *   (so `?index=1` is the number 1; occystrap made `1` a boolean), everything else a
 *   string; a repeated key gives a list. Percent-escapes are decoded.
 * - `registry://host/name@sha256:…` is a digest reference; otherwise the tag follows the
 *   last `:` after the last `/` (default `latest`). Userinfo (`user:pass@host`) is refused:
 *   use `--username/--password` or `?username=&password=`.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { type Digest, describeDigestError, parseDigest } from './digest.js';
import { checkRegistryHost, isRepositoryPath, isTag, MAX_NAME_LENGTH } from './reference.js';

export type OptionValue = string | number | boolean | readonly OptionValue[];
export type UriOptions = Readonly<Record<string, OptionValue>>;

export interface ParsedUri {
  readonly scheme: string;
  /** Everything between `//` and `?`. */
  readonly body: string;
  readonly options: UriOptions;
}

export function coerceValue(raw: string): OptionValue {
  const lower = raw.toLowerCase();
  if (lower === 'true' || lower === 'yes') return true;
  if (lower === 'false' || lower === 'no') return false;
  if (/^-?\d{1,15}$/.test(raw)) return Number(raw);
  return raw;
}

function decode(s: string): E.Either<string, string> {
  try {
    return E.right(decodeURIComponent(s.replace(/\+/g, ' ')));
  } catch {
    return E.left(`bad percent-escape in ${JSON.stringify(s)}`);
  }
}

/** Options collect in a Map and become an object by entries, so `__proto__` or `toString` stay plain keys. */
function emptyOptions(): Map<string, OptionValue> {
  return new Map();
}

function addOption(out: Map<string, OptionValue>, key: string, value: OptionValue): void {
  const prev = out.get(key);
  out.set(key, prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev as OptionValue, value]);
}

export function parseQuery(query: string): E.Either<string, UriOptions> {
  const out = emptyOptions();
  if (query === '') return E.right({});
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = decode(eq < 0 ? pair : pair.slice(0, eq));
    const value = decode(eq < 0 ? 'true' : pair.slice(eq + 1));
    if (E.isLeft(key)) return key;
    if (E.isLeft(value)) return value;
    addOption(out, key.right, coerceValue(value.right));
  }
  return E.right(Object.fromEntries(out));
}

/** Split `scheme://body?query`; a scheme in `aliases` (lowercase keys) becomes its value. */
export function parseUri(input: string, aliases: Readonly<Record<string, string>>): E.Either<string, ParsedUri> {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(input);
  if (!m) return E.left(`${JSON.stringify(input)} has no scheme; write e.g. tar://FILE, dir://DIR or registry://HOST/NAME:TAG`);
  const rawScheme = (m[1] as string).toLowerCase();
  const scheme = Object.hasOwn(aliases, rawScheme) ? (aliases[rawScheme] as string) : rawScheme;
  let rest = m[2] as string;
  if (rest.startsWith('//')) rest = rest.slice(2);
  const q = rest.indexOf('?');
  const body = q < 0 ? rest : rest.slice(0, q);
  const options = parseQuery(q < 0 ? '' : rest.slice(q + 1));
  if (E.isLeft(options)) return E.left(`${input}: ${options.left}`);
  return E.right({ scheme, body, options: options.right });
}

/** A registry reference: `host[:port]/name[:tag|@digest]`. */
export interface RegistryReference {
  readonly host: string;
  readonly name: string;
  readonly tag: string;
  readonly digest?: Digest;
}

export function parseRegistryReference(body: string): E.Either<string, RegistryReference> {
  const slash = body.indexOf('/');
  if (slash <= 0) return E.left(`${JSON.stringify(body)} needs HOST/NAME[:TAG], e.g. registry://docker.io/library/busybox:latest`);
  const host = body.slice(0, slash);
  if (host.includes('@')) return E.left('credentials in the URI host are not accepted; use --username/--password or ?username=&password=');
  const checkedHost = checkRegistryHost(host);
  if (E.isLeft(checkedHost)) return checkedHost;
  let path = body.slice(slash + 1);
  let digest: Digest | undefined;
  let tag = 'latest';
  const at = path.indexOf('@');
  if (at >= 0) {
    const d = parseDigest(path.slice(at + 1));
    if (E.isLeft(d)) return E.left(describeDigestError(d.left, 'the image reference'));
    digest = d.right;
    path = path.slice(0, at);
    const colon = path.lastIndexOf(':');
    if (colon > path.lastIndexOf('/')) {
      tag = path.slice(colon + 1);
      path = path.slice(0, colon);
    } else tag = digest;
  } else {
    const colon = path.lastIndexOf(':');
    if (colon > path.lastIndexOf('/')) {
      tag = path.slice(colon + 1);
      path = path.slice(0, colon);
    }
  }
  if (!isRepositoryPath(path)) {
    return E.left(`${JSON.stringify(path)} is not a valid repository name (lowercase letters, digits, . _ - and /)`);
  }
  if (host.length + 1 + path.length > MAX_NAME_LENGTH) return E.left(`the name ${JSON.stringify(path)} is over ${MAX_NAME_LENGTH} characters with its host`);
  if (!digest || tag !== digest) {
    if (!isTag(tag)) return E.left(`${JSON.stringify(tag)} is not a valid tag`);
  }
  return E.right(digest ? { host, name: path, tag, digest } : { host, name: path, tag });
}

/** A filter spec: `name` or `name:key=value,key2=value2`; names are lowercased, `_` becomes `-`. */
export interface FilterSpec {
  readonly name: string;
  readonly options: UriOptions;
}

export function parseFilterSpec(spec: string): E.Either<string, FilterSpec> {
  const colon = spec.indexOf(':');
  const name = (colon < 0 ? spec : spec.slice(0, colon)).trim().toLowerCase().replace(/_/g, '-');
  if (!/^[a-z][a-z0-9-]*$/.test(name)) return E.left(`filter ${JSON.stringify(spec)} has no valid name; write NAME or NAME:key=value,...`);
  const options = emptyOptions();
  if (colon >= 0) {
    for (const pair of spec.slice(colon + 1).split(',')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      if (eq <= 0) return E.left(`filter ${name}: ${JSON.stringify(pair)} is not key=value`);
      addOption(options, pair.slice(0, eq), coerceValue(pair.slice(eq + 1)));
    }
  }
  return E.right({ name, options: Object.fromEntries(options) });
}

/** Read a boolean option, accepting true/false/yes/no/1/0. */
export function booleanOption(options: UriOptions, key: string, fallback: boolean): E.Either<string, boolean> {
  const v = Object.hasOwn(options, key) ? options[key] : undefined;
  if (v === undefined) return E.right(fallback);
  if (typeof v === 'boolean') return E.right(v);
  if (v === 1 || v === 0) return E.right(v === 1);
  return E.left(`?${key}= takes true or false, got ${JSON.stringify(v)}`);
}

/** Reject options a scheme does not know. */
export function checkKnownOptions(scheme: string, options: UriOptions, known: readonly string[]): E.Either<string, void> {
  const unknown = Object.keys(options).filter((k) => !known.includes(k));
  if (unknown.length === 0) return E.right(undefined);
  return E.left(`${scheme}:// does not take ?${unknown.join(', ?')}${known.length ? ` (it takes ${known.map((k) => `?${k}`).join(', ')})` : ' (it takes no options)'}`);
}

/** A URI with the values of `password`, `token` and similar query options masked, for messages. */
export function redactUri(uri: string): string {
  return uri.replace(/([?&](?:password|token|secret|auth)=)[^&#]*/gi, '$1***');
}
