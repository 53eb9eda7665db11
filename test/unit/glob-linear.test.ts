/**
 * The glob matcher (src/core/filters/glob.ts) keeps fnmatch semantics and does bounded
 * work: it is compared with the backtracking RegExp translation it replaced (kept here as
 * the reference) on random short patterns and paths, and its step counter stays within
 * (characters + 2) × (tokens + 2) on the inputs that made the RegExp run for minutes.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fnmatch, fnmatchWithSteps, globMatcher } from '../../src/core/filters/glob.js';

// ------------------------------------------------- reference: the 0.1.0 translation

const SPECIAL = new Set(['\\', '^', '$', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '/']);
const CLASS_SPECIAL = new Set(['\\', ']', '[', '^', '-']);
const literal = (c: string) => (SPECIAL.has(c) ? `\\${c}` : c);
const classChar = (c: string) => (CLASS_SPECIAL.has(c) ? `\\${c}` : c);

function referenceSource(pattern: string): string {
  const chars = Array.from(pattern);
  let out = '';
  let i = 0;
  while (i < chars.length) {
    const c = chars[i] as string;
    i++;
    if (c === '*') {
      while (chars[i] === '*') i++;
      out += '.*';
    } else if (c === '?') {
      out += '.';
    } else if (c === '[') {
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

const referenceMatch = (name: string, pattern: string) => new RegExp(referenceSource(pattern), 'su').test(name);

// ------------------------------------------------------------------ properties

/** Characters that exercise every rule: wildcards, brackets, ranges, `/`, non-ASCII. */
const patternChar = fc.constantFrom('*', '?', '[', ']', '!', '-', 'a', 'b', 'c', 'z', '/', '.', '\\', '^', 'é', '日');
const nameChar = fc.constantFrom('a', 'b', 'c', 'z', '/', '.', '-', '!', ']', '[', '*', '?', '\\', '^', 'é', '日', '\n');

describe('glob matcher against the backtracking RegExp it replaced', () => {
  test('same answer on random short patterns and paths', () => {
    fc.assert(
      fc.property(fc.array(patternChar, { maxLength: 10 }), fc.array(nameChar, { maxLength: 12 }), (p, n) => {
        const pattern = p.join('');
        const name = n.join('');
        assert.equal(fnmatch(name, pattern), referenceMatch(name, pattern), `pattern ${JSON.stringify(pattern)} name ${JSON.stringify(name)}`);
      }),
      { numRuns: 20000 },
    );
  });

  test('same answer when the path is built to nearly match the pattern', () => {
    // Random paths rarely match; derive paths from the pattern so matches are common.
    fc.assert(
      fc.property(fc.array(patternChar, { maxLength: 8 }), fc.array(fc.tuple(fc.nat(3), nameChar), { maxLength: 8 }), (p, edits) => {
        const pattern = p.join('');
        const chars: string[] = p.map((c): string => (c === '*' || c === '?' || c === '[' || c === ']' ? 'a' : c));
        for (const [op, c] of edits) {
          const at = chars.length === 0 ? 0 : c.charCodeAt(0) % (chars.length + 1);
          if (op === 0) chars.splice(at, 0, c);
          else if (op === 1) chars.splice(at, 1);
          else if (op === 2) chars.splice(at, 1, c);
        }
        const name = chars.join('');
        assert.equal(fnmatch(name, pattern), referenceMatch(name, pattern), `pattern ${JSON.stringify(pattern)} name ${JSON.stringify(name)}`);
      }),
      { numRuns: 20000 },
    );
  });

  test('a reused matcher gives the same answers as one-off calls', () => {
    fc.assert(
      fc.property(fc.array(patternChar, { maxLength: 8 }), fc.array(fc.array(nameChar, { maxLength: 8 }), { maxLength: 5 }), (p, names) => {
        const pattern = p.join('');
        const m = globMatcher(pattern);
        for (const n of names) assert.equal(m(n.join('')), fnmatch(n.join(''), pattern));
      }),
    );
  });
});

describe('glob matching does bounded work', () => {
  const cases: [string, string, string][] = [
    // The inputs of issue 8: minutes with the RegExp.
    ['*/*/*.pyc on a 20 KB path', '*/*/*.pyc', `${'a/'.repeat(10_000)}x.py`],
    ['*a*a*a*b on a 2 KB name', '*a*a*a*b', 'a'.repeat(2048)],
    ['many stars, no match', '*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(4096)],
    ['sets between stars', '*[a-z]*[!/]*?*c', 'b'.repeat(4096)],
  ];
  for (const [what, pattern, name] of cases) {
    test(`${what}: steps stay within (characters + 2) × (tokens + 2)`, () => {
      const r = fnmatchWithSteps(name, pattern);
      assert.equal(r.matched, false);
      assert.ok(r.steps <= r.bound, `${r.steps} steps, bound ${r.bound}`);
      // The bound is linear in the path for a fixed pattern: far below a backtracking count.
      assert.ok(r.bound <= (Array.from(name).length + 2) * (pattern.length + 2));
    });
  }

  test('the step bound holds on random inputs', () => {
    fc.assert(
      fc.property(fc.array(patternChar, { maxLength: 12 }), fc.array(nameChar, { maxLength: 40 }), (p, n) => {
        const r = fnmatchWithSteps(n.join(''), p.join(''));
        assert.ok(r.steps <= r.bound, `${r.steps} > ${r.bound}`);
      }),
      { numRuns: 5000 },
    );
  });
});
