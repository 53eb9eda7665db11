/**
 * Shell-style wildcards with Python `fnmatch` semantics, as occystrap uses them for
 * `search` and `exclude`:
 *
 * | Pattern | Matches |
 * |---|---|
 * | `*` | any run of characters, empty included, **`/` included** |
 * | `?` | exactly one character (`/` included) |
 * | `[seq]` | one character in `seq` (ranges `a-z` allowed) |
 * | `[!seq]` | one character not in `seq` |
 * | anything else | itself, case-sensitively |
 *
 * The whole string must match. A `[` with no closing `]` is a literal `[`; a `]` right
 * after `[` or `[!` is part of the set (so `[]]` matches `]`, and `[!]` is literal text);
 * an empty range such as `z-a` is dropped (as in Python 3.9+), and a set left empty by
 * that matches nothing (negated: any one character). There is no escape character
 * (write `[*]` for a literal `*`). Characters are code points.
 *
 * Matching is not done with a backtracking regular expression (`*\/*\/*.pyc` against a
 * 20 KB path took minutes that way): the pattern compiles to a list of one-character
 * tokens and stars, matched by the two-pointer wildcard algorithm, which only ever
 * retries from the last star. Work is at most (path length + 2) × (pattern tokens + 2)
 * steps.
 *
 * @module
 */

/** One element of a compiled glob. */
type GlobToken =
  | { readonly kind: 'star' }
  | { readonly kind: 'any' }
  | { readonly kind: 'char'; readonly code: number }
  | { readonly kind: 'set'; readonly negate: boolean; readonly ranges: readonly (readonly [number, number])[] };

const codeOf = (c: string): number => c.codePointAt(0) as number;

/** The tokens of a glob (consecutive stars folded into one). */
function compileGlob(pattern: string): readonly GlobToken[] {
  const chars = Array.from(pattern);
  const tokens: GlobToken[] = [];
  let i = 0;
  while (i < chars.length) {
    const c = chars[i] as string;
    i++;
    if (c === '*') {
      while (chars[i] === '*') i++;
      tokens.push({ kind: 'star' });
    } else if (c === '?') {
      tokens.push({ kind: 'any' });
    } else if (c === '[') {
      // Find the closing bracket: a ']' right after '[' or '[!' does not close.
      let j = i;
      if (chars[j] === '!') j++;
      if (chars[j] === ']') j++;
      while (j < chars.length && chars[j] !== ']') j++;
      if (j >= chars.length) {
        tokens.push({ kind: 'char', code: codeOf('[') });
        continue;
      }
      let body = chars.slice(i, j);
      i = j + 1;
      const negate = body[0] === '!';
      if (negate) body = body.slice(1);
      const ranges: [number, number][] = [];
      let k = 0;
      while (k < body.length) {
        const lo = codeOf(body[k] as string);
        if (body[k + 1] === '-' && k + 2 < body.length) {
          const hi = codeOf(body[k + 2] as string);
          if (lo <= hi) ranges.push([lo, hi]); // an empty range is dropped
          k += 3;
        } else {
          ranges.push([lo, lo]);
          k++;
        }
      }
      tokens.push({ kind: 'set', negate, ranges });
    } else {
      tokens.push({ kind: 'char', code: codeOf(c) });
    }
  }
  return tokens;
}

function matchesOne(token: GlobToken, code: number): boolean {
  switch (token.kind) {
    case 'any':
      return true;
    case 'char':
      return token.code === code;
    case 'set': {
      let inSet = false;
      for (const [lo, hi] of token.ranges) {
        if (code >= lo && code <= hi) {
          inSet = true;
          break;
        }
      }
      return inSet !== token.negate;
    }
    default:
      return false;
  }
}

/** The code points of a string (a lone surrogate counts as one character). */
function codePoints(text: string): number[] {
  const out: number[] = [];
  for (const c of text) out.push(codeOf(c));
  return out;
}

/**
 * Match compiled tokens against a whole string. `counter.steps` (when given) counts loop
 * iterations, so tests can check the bound without timing anything.
 */
function matchTokens(tokens: readonly GlobToken[], text: readonly number[], counter?: { steps: number }): boolean {
  let t = 0; // next token
  let s = 0; // next character
  let starToken = -1; // token index of the last star seen
  let starText = 0; // where that star's run currently ends
  let steps = 0;
  try {
    while (s < text.length) {
      steps++;
      const token = tokens[t];
      if (token !== undefined && token.kind !== 'star' && matchesOne(token, text[s] as number)) {
        t++;
        s++;
      } else if (token !== undefined && token.kind === 'star') {
        starToken = t;
        t++;
        starText = s;
      } else if (starToken >= 0) {
        // Let the last star absorb one more character and retry what follows it.
        t = starToken + 1;
        starText++;
        s = starText;
      } else {
        return false;
      }
    }
    while (tokens[t]?.kind === 'star') {
      steps++;
      t++;
    }
    return t === tokens.length;
  } finally {
    if (counter) counter.steps += steps;
  }
}

/** Python's `fnmatch.fnmatchcase(name, pattern)`. */
export function fnmatch(name: string, pattern: string): boolean {
  return matchTokens(compileGlob(pattern), codePoints(name));
}

/** A reusable matcher for one pattern (compiles once). */
export function globMatcher(pattern: string): (name: string) => boolean {
  const tokens = compileGlob(pattern);
  return (name) => matchTokens(tokens, codePoints(name));
}

/**
 * {@link fnmatch} that also reports how many steps it took, and the bound it promises:
 * (characters + 2) × (tokens + 2). For tests.
 */
export function fnmatchWithSteps(name: string, pattern: string): { readonly matched: boolean; readonly steps: number; readonly bound: number } {
  const tokens = compileGlob(pattern);
  const text = codePoints(name);
  const counter = { steps: 0 };
  const matched = matchTokens(tokens, text, counter);
  return { matched, steps: counter.steps, bound: (text.length + 2) * (tokens.length + 2) };
}
