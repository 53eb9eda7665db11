/**
 * The image reference grammar of docker's distribution/reference:
 *
 * ```
 * reference := [domain '/'] path [':' tag] ['@' digest]
 * domain    := host [':' port]            host: DNS name, IPv4 address or [IPv6]
 * path      := component ('/' component)* component: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
 * tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 * ```
 *
 * The whole name (domain and path) is at most 255 characters. Names from archives
 * (`RepoTags`) and from URIs are checked against it before they are printed or written.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { describeDigestError, parseDigest } from './digest.js';
import { printable } from './printable.js';

const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPOSITORY_PATH = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DOMAIN_COMPONENT = '(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])';
const DNS_NAME = new RegExp(`^${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*$`);
const IPV6 = /^\[[0-9A-Fa-f:.]+\]$/;
export const MAX_NAME_LENGTH = 255;

export function isRepositoryPath(path: string): boolean {
  return REPOSITORY_PATH.test(path);
}

export function isTag(tag: string): boolean {
  return TAG.test(tag);
}

/**
 * A registry host, `name[:port]`, `a.b.c.d[:port]` or `[v6][:port]`. Refuses what a URL
 * parser would refuse or silently rewrite (`999.1.1.1`, `1.2.3` read as `1.2.0.3`,
 * `0x7f.1`), and ports outside 1–65535.
 */
export function checkRegistryHost(host: string): E.Either<string, string> {
  const bad = (why: string) => E.left(`${JSON.stringify(printable(host))} is not a valid registry host (${why})`);
  const m = /^(\[[^\]]*\]|[^:]*)(?::([^:]*))?$/.exec(host);
  if (!m) return bad('name or address, optional :port');
  const hostname = m[1] as string;
  const port = m[2];
  if (port !== undefined) {
    if (!/^\d{1,5}$/.test(port)) return bad(`port ${JSON.stringify(printable(port))} is not a number`);
    const n = Number(port);
    if (n < 1 || n > 65535) return bad(`port ${n} is outside 1-65535`);
  }
  if (IPV6.test(hostname)) {
    if (!urlAccepts(hostname)) return bad('not a valid IPv6 address');
    return E.right(host);
  }
  if (!DNS_NAME.test(hostname)) return bad('name or address, optional :port');
  // A name whose last label is numeric is an IPv4 address to a URL parser.
  const labels = hostname.split('.');
  if (/^(?:\d+|0x[0-9a-f]*)$/i.test(labels[labels.length - 1] as string)) {
    if (labels.length !== 4 || !labels.every((l) => /^(?:0|[1-9]\d{0,2})$/.test(l) && Number(l) <= 255)) {
      return bad('not a valid IPv4 address: four decimal numbers 0-255');
    }
  }
  return E.right(host);
}

function urlAccepts(hostname: string): boolean {
  try {
    new URL(`https://${hostname}/`);
    return true;
  } catch {
    return false;
  }
}

/** Docker's rule for whether the first path component is a registry host. */
function looksLikeDomain(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost' || component !== component.toLowerCase();
}

/**
 * Check a docker RepoTag (`[domain/]path[:tag][@digest]`, e.g. `127.0.0.1:5000/team/app:1.2`).
 * The reason, on failure, is printable.
 */
export function checkImageReference(reference: string): E.Either<string, string> {
  const shown = JSON.stringify(printable(reference));
  const bad = (why: string) => E.left(`${shown} is not a valid image reference (${why})`);
  let rest = reference;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = parseDigest(rest.slice(at + 1));
    if (E.isLeft(d)) return bad(describeDigestError(d.left, 'the reference'));
    rest = rest.slice(0, at);
  }
  const slash = rest.indexOf('/');
  let domain: string | undefined;
  if (slash >= 0 && looksLikeDomain(rest.slice(0, slash))) {
    domain = rest.slice(0, slash);
    rest = rest.slice(slash + 1);
  }
  const colon = rest.lastIndexOf(':');
  const path = colon >= 0 ? rest.slice(0, colon) : rest;
  const tag = colon >= 0 ? rest.slice(colon + 1) : undefined;
  if (domain !== undefined) {
    const h = checkRegistryHost(domain);
    if (E.isLeft(h)) return bad(`bad registry host ${JSON.stringify(printable(domain))}`);
  }
  if (!isRepositoryPath(path)) return bad('the name takes lowercase letters, digits, separators . _ __ - and /');
  if ((domain === undefined ? 0 : domain.length + 1) + path.length > MAX_NAME_LENGTH) return bad(`the name is over ${MAX_NAME_LENGTH} characters`);
  if (tag !== undefined && !isTag(tag)) return bad('a tag is up to 128 letters, digits, _ . and -, not starting with . or -');
  return E.right(reference);
}
