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
 * (write `[*]` for a literal `*`).
 *
 * @module
 */

const SPECIAL = new Set(['\\', '^', '$', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '/']);
const CLASS_SPECIAL = new Set(['\\', ']', '[', '^', '-']);

function literal(c: string): string {
  return SPECIAL.has(c) ? `\\${c}` : c;
}

function classChar(c: string): string {
  return CLASS_SPECIAL.has(c) ? `\\${c}` : c;
}

/** The regular-expression source (anchored, for the `u` and `s` flags) of a glob. */
export function globToRegExpSource(pattern: string): string {
  const chars = Array.from(pattern);
  let out = '';
  let i = 0;
  while (i < chars.length) {
    const c = chars[i] as string;
    i++;
    if (c === '*') {
      // Consecutive stars mean the same as one.
      while (chars[i] === '*') i++;
      out += '.*';
    } else if (c === '?') {
      out += '.';
    } else if (c === '[') {
      // Find the closing bracket: a ']' right after '[' or '[!' does not close.
      let j = i;
      if (chars[j] === '!') j++;
      if (chars[j] === ']') j++;
      while (j < chars.length && chars[j] !== ']') j++;
      if (j >= chars.length) {
        out += '\\[';
        continue;
      }
      let body = chars.slice(i, j);
      i = j + 1;
      const negate = body[0] === '!';
      if (negate) body = body.slice(1);
      const parts: string[] = [];
      let k = 0;
      while (k < body.length) {
        const lo = body[k] as string;
        if (body[k + 1] === '-' && k + 2 < body.length) {
          const hi = body[k + 2] as string;
          if ((lo.codePointAt(0) as number) <= (hi.codePointAt(0) as number)) parts.push(`${classChar(lo)}-${classChar(hi)}`);
          k += 3;
        } else {
          parts.push(classChar(lo));
          k++;
        }
      }
      if (parts.length === 0) out += negate ? '.' : '(?!)';
      else out += `[${negate ? '^' : ''}${parts.join('')}]`;
    } else {
      out += literal(c);
    }
  }
  return `^(?:${out})$`;
}

/** Compile a glob to a RegExp that tests a whole string. */
export function globToRegExp(pattern: string): RegExp {
  return new RegExp(globToRegExpSource(pattern), 'su');
}

/** Python's `fnmatch.fnmatchcase(name, pattern)`. */
export function fnmatch(name: string, pattern: string): boolean {
  return globToRegExp(pattern).test(name);
}

/** A reusable matcher for one pattern (compiles once). */
export function globMatcher(pattern: string): (name: string) => boolean {
  const re = globToRegExp(pattern);
  return (name) => re.test(name);
}
