/**
 * One error type: every error class the package exports is an OccystrapError with a
 * stable code, and the combinators' own refusals carry a code too (EINTERNAL).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as top from '../../src/index.js';
import * as core from '../../src/core/index.js';
import { AbortError, type ErrorCode, InternalError, isExplained, OccystrapError } from '../../src/core/errors.js';
import { OwnershipError } from '../../src/core/ownership.js';
import { TarReadError, readTar } from '../../src/core/tar/reader.js';
import { TransformError } from '../../src/core/filters/layer-rewrite.js';
import { buffer } from '../../src/core/pipeline/buffer.js';
import { parallelMap } from '../../src/core/pipeline/parallel-map.js';
import { reorder } from '../../src/core/pipeline/reorder.js';
import { encodeHeader, encodeOneBlockHeader, type TarHeader } from '../../src/core/tar/header.js';
import { canonicalJson } from '../../src/core/filters/chain-hash.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');

/** An instance of each exported error class, and the code it must carry. */
const SAMPLES: Record<string, { readonly make: () => Error; readonly code: ErrorCode }> = {
  OccystrapError: { make: () => new OccystrapError('EINPUT', 'x'), code: 'EINPUT' },
  AbortError: { make: () => new AbortError(), code: 'EABORT' },
  InternalError: { make: () => new InternalError('x'), code: 'EINTERNAL' },
  TarReadError: { make: () => new TarReadError('x', 0), code: 'ETAR' },
  TransformError: { make: () => new TransformError('x'), code: 'ETRANSFORM' },
  OwnershipError: { make: () => new OwnershipError({ _tag: 'OwnershipViolation', file: undefined, message: 'x' }), code: 'EOWNERSHIP' },
};

function errorClasses(module: Record<string, unknown>): string[] {
  return Object.entries(module)
    .filter(([, v]) => typeof v === 'function' && (v as { prototype?: unknown }).prototype instanceof Error)
    .map(([k]) => k)
    .sort();
}

describe('one error type', () => {
  test('every exported error class is an OccystrapError with its code and name', () => {
    const exported = [...new Set([...errorClasses(core), ...errorClasses(top)])];
    assert.deepEqual(exported, Object.keys(SAMPLES).sort(), 'an exported error class has no sample here (give it a code and list it)');
    for (const [name, { make, code }] of Object.entries(SAMPLES)) {
      const e = make();
      assert.ok(OccystrapError.is(e), `${name} is not an OccystrapError`);
      assert.ok(e instanceof OccystrapError, `${name} does not extend OccystrapError`);
      assert.equal(e.code, code, name);
      assert.equal(e.name, name);
    }
  });

  test('every code is in the table of docs/library.md', () => {
    const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'library.md'), 'utf8');
    const codes = new Set(Object.values(SAMPLES).map((s) => s.code).concat(['EUSAGE', 'EINPUT', 'EDIGEST', 'EOUTPUT', 'EABORT']));
    for (const code of codes) assert.match(doc, new RegExp(`\\| \`${code}\` \\|`), `${code} is not in the error table`);
    for (const name of Object.keys(SAMPLES)) assert.match(doc, new RegExp(`\\| \`${name}\``), `${name} is not in the error table`);
  });

  test('only the outcome codes are explained (passed on as they are)', () => {
    for (const code of ['EUSAGE', 'EINPUT', 'EDIGEST', 'EOUTPUT', 'EABORT'] as const) assert.ok(isExplained(new OccystrapError(code, 'x')), code);
    for (const { make, code } of Object.values(SAMPLES)) if (['ETAR', 'ETRANSFORM', 'EOWNERSHIP', 'EINTERNAL'].includes(code)) assert.ok(!isExplained(make()), code);
    assert.ok(!isExplained(new Error('x')));
  });

  test('a malformed tar is a TarReadError with code ETAR', async () => {
    const garbage = new Uint8Array(512).fill(0x41);
    await assert.rejects(
      (async () => {
        for await (const entry of readTar((async function* () {
          yield garbage;
        })())) void entry;
      })(),
      (e: unknown) => e instanceof TarReadError && OccystrapError.is(e) && e.code === 'ETAR',
    );
  });
});

describe('the combinators refuse with a code', () => {
  const internal = (pattern: RegExp) => (e: unknown) => e instanceof InternalError && OccystrapError.is(e) && e.code === 'EINTERNAL' && pattern.test(e.message);
  const of = async function* <T>(...xs: T[]) {
    yield* xs;
  };

  test('reorder: a position that arrives twice', async () => {
    await assert.rejects(
      (async () => {
        for await (const _ of reorder({ indexOf: (v: { i: number }) => v.i, dispose: async () => {} })(of({ i: 0 }, { i: 0 }))) void _;
      })(),
      internal(/arrived twice or out of range/),
    );
  });

  test('reorder: a position that never arrives', async () => {
    await assert.rejects(
      (async () => {
        for await (const _ of reorder({ indexOf: (v: { i: number }) => v.i, dispose: async () => {} })(of({ i: 1 }))) void _;
      })(),
      internal(/never arrived/),
    );
  });

  test('buffer and parallelMap: a capacity that is not a positive integer', () => {
    assert.throws(() => buffer(0, { dispose: async () => {} }), internal(/capacity/));
    assert.throws(() => parallelMap(async (x: number) => x, { concurrency: 0, order: 'completion', dispose: async () => {} }), internal(/concurrency/));
  });

  test('tar headers: values the format cannot carry', () => {
    const h: TarHeader = { name: 'a\0b', type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: 0 };
    assert.throws(() => encodeHeader(h), internal(/NUL/));
    assert.throws(() => encodeOneBlockHeader({ ...h, name: 'x'.repeat(300) }), internal(/cannot be one block/));
  });

  test('canonicalJson: a value it cannot encode', () => {
    assert.throws(() => canonicalJson(Number.NaN), internal(/finite/));
  });
});
