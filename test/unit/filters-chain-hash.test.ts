// The filter-chain cache key (src/core/filters/chain-hash.ts) and the pure SHA-256 it and
// the re-serialised configs use (src/core/sha256.ts), checked against node:crypto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { canonicalJson, filterChainHash, REWRITE_VERSION } from '../../src/core/filters/chain-hash.js';
import { sha256Digest, sha256Hex } from '../../src/core/sha256.js';

const nodeSha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('sha256Hex agrees with node:crypto at every padding boundary and on random input', () => {
  for (let n = 0; n <= 200; n++) {
    const b = new Uint8Array(n).map((_, i) => (i * 31 + n) & 0xff);
    assert.equal(sha256Hex(b), nodeSha(b), `length ${n}`);
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), (b) => sha256Hex(b) === nodeSha(b)), { numRuns: 200 });
  assert.equal(sha256Digest(new Uint8Array(1024)), 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef');
  const big = new Uint8Array(3 * 1024 * 1024 + 17).fill(0xa5);
  assert.equal(sha256Hex(big), nodeSha(big));
});

test('canonicalJson sorts object keys, keeps array order, refuses what JSON cannot carry', () => {
  assert.equal(canonicalJson({ b: 1, a: [3, 2, { d: true, c: null }], u: undefined }), '{"a":[3,2,{"c":null,"d":true}],"b":1}');
  assert.throws(() => canonicalJson({ x: Number.NaN }), /finite/);
  assert.throws(() => canonicalJson({ x: () => 1 }), /cannot encode a function/);
});

test('filterChainHash: none for no filters; stable; sensitive to names, options, order and the rewrite version', () => {
  assert.equal(filterChainHash([]), 'none');
  const n = { name: 'normalize-timestamps', options: { timestamp: 0 } };
  const x = { name: 'exclude', options: { patterns: ['a', 'b'] } };
  const h = filterChainHash([n, x]);
  assert.match(h, /^[0-9a-f]{64}$/);
  assert.equal(filterChainHash([{ ...n }, { name: 'exclude', options: { patterns: ['a', 'b'] } }]), h, 'stable');
  assert.equal(
    filterChainHash([{ name: 'x', options: { b: 1, a: 2 } }]),
    filterChainHash([{ name: 'x', options: { a: 2, b: 1 } }]),
    'option key order does not matter',
  );
  assert.notEqual(filterChainHash([x, n]), h, 'chain order matters');
  assert.notEqual(filterChainHash([{ ...n, options: { timestamp: 1 } }, x]), h);
  assert.notEqual(filterChainHash([n, { name: 'exclude', options: { patterns: ['b', 'a'] } }]), h);
  // The version is part of the hashed document.
  const doc = canonicalJson({ rewriteVersion: REWRITE_VERSION, filters: [[n.name, n.options]] });
  assert.equal(filterChainHash([n]), nodeSha(new TextEncoder().encode(doc)));
  assert.ok(doc.includes(`"rewriteVersion":${REWRITE_VERSION}`));
});
