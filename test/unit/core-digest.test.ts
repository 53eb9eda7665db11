// Behaviour of src/core/digest.ts: only well-formed `algorithm:hex` digests are accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import {
  DIGEST_ALGORITHMS,
  type Digest,
  describeDigestError,
  digestAlgorithm,
  digestFromHex,
  digestHex,
  EMPTY_LAYER_DIFF_ID,
  isDigest,
  parseDigest,
} from '../../src/core/digest.js';
import { createHash } from 'node:crypto';

const hex64 = 'a'.repeat(64);
const hex128 = '0123456789abcdef'.repeat(8);

function expectRight(input: string): Digest {
  const r = parseDigest(input);
  if (E.isLeft(r)) assert.fail(`expected ${input} to be accepted, got ${r.left.reason}`);
  return r.right;
}

function expectLeft(input: string): string {
  const r = parseDigest(input);
  if (E.isRight(r)) assert.fail(`expected ${JSON.stringify(input)} to be rejected`);
  assert.equal(r.left._tag, 'DigestError');
  assert.equal(r.left.input, input);
  return r.left.reason;
}

test('a sha256 digest with 64 lowercase hex characters is accepted', () => {
  const d = expectRight(`sha256:${hex64}`);
  assert.equal(d, `sha256:${hex64}`);
  assert.equal(digestAlgorithm(d), 'sha256');
  assert.equal(digestHex(d), hex64);
  assert.equal(isDigest(d), true);
});

test('a sha512 digest with 128 lowercase hex characters is accepted', () => {
  const d = expectRight(`sha512:${hex128}`);
  assert.equal(digestAlgorithm(d), 'sha512');
  assert.equal(digestHex(d), hex128);
});

test('the algorithm table names the hex lengths', () => {
  assert.deepEqual({ ...DIGEST_ALGORITHMS }, { sha256: 64, sha512: 128 });
});

test('path traversal in the hex part is rejected (CVE-2024-3727)', () => {
  assert.match(expectLeft('sha256:../../x'), /lowercase hexadecimal/);
  assert.match(expectLeft(`sha256:../../${'a'.repeat(58)}`), /lowercase hexadecimal/);
  assert.match(expectLeft(`sha256:${'a'.repeat(63)}/`), /lowercase hexadecimal/);
});

test('uppercase hex is rejected', () => {
  assert.match(expectLeft(`sha256:${'A'.repeat(64)}`), /lowercase/);
  assert.match(expectLeft(`sha256:${'a'.repeat(63)}F`), /lowercase/);
});

test('uppercase algorithm is rejected', () => {
  assert.match(expectLeft(`SHA256:${hex64}`), /unsupported algorithm/);
});

test('hex of the wrong length is rejected, naming both lengths', () => {
  assert.equal(expectLeft(`sha256:${'a'.repeat(63)}`), 'sha256 needs 64 hex characters, got 63');
  assert.equal(expectLeft(`sha256:${'a'.repeat(65)}`), 'sha256 needs 64 hex characters, got 65');
  assert.equal(expectLeft(`sha512:${hex64}`), 'sha512 needs 128 hex characters, got 64');
  assert.match(expectLeft('sha256:'), /lowercase hexadecimal|needs 64/);
});

test('unknown algorithms are rejected, listing the supported ones', () => {
  const reason = expectLeft(`md5:${'a'.repeat(32)}`);
  assert.match(reason, /unsupported algorithm "md5"/);
  assert.match(reason, /sha256, sha512/);
  // Prototype keys are not algorithms.
  assert.match(expectLeft(`constructor:${hex64}`), /unsupported algorithm/);
  assert.match(expectLeft(`__proto__:${hex64}`), /unsupported algorithm/);
});

test('a very long algorithm is truncated in the reason', () => {
  const reason = expectLeft(`${'x'.repeat(500)}:${hex64}`);
  assert.ok(reason.length < 120, reason);
});

test('input without a colon, with a leading colon, or empty is rejected', () => {
  assert.equal(expectLeft(hex64), 'expected algorithm:hex');
  assert.equal(expectLeft(`:${hex64}`), 'expected algorithm:hex');
  assert.equal(expectLeft(''), 'expected algorithm:hex');
});

test('whitespace around a digest is not trimmed', () => {
  expectLeft(` sha256:${hex64}`);
  expectLeft(`sha256:${hex64} `);
  expectLeft(`sha256:${hex64}\n`);
});

test('isDigest is false for non-strings', () => {
  assert.equal(isDigest(undefined), false);
  assert.equal(isDigest(42), false);
  assert.equal(isDigest({}), false);
  assert.equal(isDigest(null), false);
});

test('digestFromHex validates the hex it is given', () => {
  const r = digestFromHex('sha256', hex64);
  assert.ok(E.isRight(r));
  assert.equal(r.right, `sha256:${hex64}`);
  assert.ok(E.isLeft(digestFromHex('sha256', 'abc')));
  assert.ok(E.isLeft(digestFromHex('sha512', hex64)));
});

test('describeDigestError names the input, where, and the reason; long inputs are shortened', () => {
  const r = parseDigest('sha256:../../x');
  assert.ok(E.isLeft(r));
  assert.equal(describeDigestError(r.left, 'layers[0]'), 'invalid digest "sha256:../../x" at layers[0]: hex part must be lowercase hexadecimal');
  const long = parseDigest(`sha256:${'z'.repeat(200)}`);
  assert.ok(E.isLeft(long));
  const msg = describeDigestError(long.left, 'x');
  assert.ok(msg.includes('...'), msg);
  assert.ok(msg.length < 200, msg);
});

test('EMPTY_LAYER_DIFF_ID is the sha256 of 1024 zero bytes', () => {
  const hex = createHash('sha256').update(new Uint8Array(1024)).digest('hex');
  assert.equal(EMPTY_LAYER_DIFF_ID, `sha256:${hex}`);
  assert.ok(isDigest(EMPTY_LAYER_DIFF_ID));
});

const lowerHex = (n: number) =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdef'.split('')), minLength: n, maxLength: n });

test('property: any 64-lowercase-hex string is accepted and round-trips', () => {
  fc.assert(
    fc.property(lowerHex(64), (hex) => {
      const d = expectRight(`sha256:${hex}`);
      assert.equal(digestHex(d), hex);
      assert.equal(digestAlgorithm(d), 'sha256');
      const again = digestFromHex(digestAlgorithm(d), digestHex(d));
      assert.ok(E.isRight(again) && again.right === d);
    }),
  );
});

test('property: any 128-lowercase-hex string is a valid sha512', () => {
  fc.assert(
    fc.property(lowerHex(128), (hex) => {
      const d = expectRight(`sha512:${hex}`);
      assert.equal(digestHex(d), hex);
      assert.equal(digestAlgorithm(d), 'sha512');
    }),
    { numRuns: 50 },
  );
});

test('property: a sha256 hex part of any other length is rejected', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 200 }).filter((n) => n !== 64),
      (n) => {
        expectLeft(`sha256:${'0'.repeat(n)}`);
      },
    ),
  );
});

test('property: an accepted digest never contains path separators or dots', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 140 }), (s) => {
      const r = parseDigest(`sha256:${s}`);
      if (E.isRight(r)) {
        assert.ok(!r.right.includes('/') && !r.right.includes('.') && !r.right.includes('\\'));
      }
    }),
  );
});
