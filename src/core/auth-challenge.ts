/**
 * Parsing `WWW-Authenticate` challenges (RFC 7235): a scheme, then `key=value` or
 * `key="quoted value"` parameters in any order.
 *
 * @module
 */

export interface Challenge {
  /** Lowercased: `bearer`, `basic`, … */
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/** Parse every challenge in a header value; unknown shapes yield no challenge rather than a throw. */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = () => {
    while (i < n && /[\s,]/.test(header[i] as string)) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(header[i] as string)) i++;
    return header.slice(start, i);
  };
  let current: { scheme: string; params: Record<string, string> } | undefined;
  while (i < n) {
    skipSpace();
    const start = i;
    const word = token();
    if (word === '') {
      i++;
      continue;
    }
    let j = i;
    while (j < n && header[j] === ' ') j++;
    if (header[j] === '=') {
      // A parameter of the current challenge.
      i = j + 1;
      while (i < n && header[i] === ' ') i++;
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++;
      } else {
        const vs = i;
        while (i < n && header[i] !== ',') i++;
        value = header.slice(vs, i).trim();
      }
      if (current) current.params[word.toLowerCase()] = value;
      continue;
    }
    // A new challenge scheme (token68 credentials after it are ignored).
    current = { scheme: header.slice(start, i).toLowerCase(), params: {} };
    out.push(current);
  }
  return out;
}
