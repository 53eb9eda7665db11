// The gzip engines (src/shell/fs/gzip-engine.ts) and the scope's gzip Compress codec
// (src/shell/fs/transcode.ts): ISA-L, which the test setup builds, and node:zlib each give
// members that gunzip to the input, with mtime 0 and no name, the same bytes every time; a
// file is compressed as members of GZIP_BLOCK_BYTES each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { hasCode } from '../../src/core/errors.js';
import { chooseGzipEngine, type GzipEngineName, wantedGzipEngine } from '../../src/shell/fs/gzip-engine.js';
import { addonCandidates as candidatesOf } from '../../src/shell/fs/native-addons.js';

const addonCandidates = () => candidatesOf('isal-gzip');
import { GZIP_BLOCK_BYTES } from '../../src/shell/fs/transcode.js';
import { compressTwice, sample } from '../support/codec-runs.js';

test('the test setup built the ISA-L addon, and it is the default engine', () => {
  assert.ok(
    addonCandidates().some((file) => existsSync(file)),
    `no ISA-L addon at ${addonCandidates().join(' or ')}: run bash scripts/ensure-system-deps.sh (libisal-dev), then npm run build`,
  );
  assert.equal(chooseGzipEngine({}).name, 'isa-l');
  assert.equal(chooseGzipEngine({ OCCYSTRAP_GZIP_ENGINE: 'zlib' }).name, 'zlib');
});

for (const name of ['isa-l', 'zlib'] as GzipEngineName[]) {
  test(`${name}: a block gunzips to itself, with mtime 0 and no name, the same bytes every time`, async () => {
    const engine = chooseGzipEngine({ OCCYSTRAP_GZIP_ENGINE: name });
    for (const block of [sample(3 << 20), randomBytes(1 << 20), Buffer.alloc(0), randomBytes(7)]) {
      const first = await engine.compressBlock(block);
      const second = await engine.compressBlock(block);
      assert.deepEqual(first, second, 'deterministic');
      assert.deepEqual(gunzipSync(first), block);
      // ID1 ID2 CM=8, FLG=0 (no name, no comment, no extra), MTIME=0.
      assert.equal(first.subarray(0, 8).toString('hex'), '1f8b080000000000');
    }
    const text = sample(2 << 20);
    assert.ok((await engine.compressBlock(text)).length < text.length / 2, 'text is compressed');
  });
}

test('ISA-L addon: an output too small gives 0 (the engine then retries larger); bad arguments throw', async () => {
  const addon = createRequire(import.meta.url)(addonCandidates().find((file) => existsSync(file))!) as {
    compress(input: Uint8Array, output: Uint8Array, level: number): Promise<number>;
    maxLevel: number;
  };
  assert.equal(addon.maxLevel, 3);
  const input = randomBytes(100_000);
  assert.equal(await addon.compress(input, Buffer.alloc(1000), 2), 0);
  const output = Buffer.alloc(200_000);
  const written = await addon.compress(input, output, 1);
  assert.deepEqual(gunzipSync(output.subarray(0, written)), input);
  assert.throws(() => addon.compress(input, output, 4), TypeError);
  assert.throws(() => addon.compress('text' as unknown as Uint8Array, output, 1), TypeError);
  assert.throws(() => (addon.compress as (...a: unknown[]) => unknown)(input, output), TypeError);
});

test('OCCYSTRAP_GZIP_ENGINE takes isa-l or zlib; anything else is a usage error', () => {
  assert.equal(wantedGzipEngine({}), undefined);
  assert.equal(wantedGzipEngine({ OCCYSTRAP_GZIP_ENGINE: ' zlib ' }), 'zlib');
  assert.throws(
    () => wantedGzipEngine({ OCCYSTRAP_GZIP_ENGINE: 'pigz' }),
    (e: unknown) => hasCode(e, 'EUSAGE') && /OCCYSTRAP_GZIP_ENGINE="pigz" is not a gzip engine; use isa-l or zlib/.test((e as Error).message),
  );
});

test('gzip codec: a file of 2.5 blocks becomes 3 members that gunzip to it; digest and size as written; deterministic', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'occystrap-gzip-'));
  try {
    const input = Buffer.concat([sample(2 * GZIP_BLOCK_BYTES), randomBytes(GZIP_BLOCK_BYTES / 2)]);
    const outs = await compressTwice(dir, input, 'gzip', gunzipSync);
    assert.deepEqual(outs[0], outs[1], 'deterministic');
    // One member per block, each as the engine makes it alone.
    const engine = chooseGzipEngine({});
    const members = [];
    for (let at = 0; at < input.length; at += GZIP_BLOCK_BYTES) members.push(await engine.compressBlock(input.subarray(at, at + GZIP_BLOCK_BYTES)));
    assert.equal(members.length, 3);
    assert.deepEqual(outs[0], Buffer.concat(members));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
