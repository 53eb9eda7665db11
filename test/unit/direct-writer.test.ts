/**
 * DirectFileWriter (src/shell/fs/direct-writer.ts): random data in random chunks, from a
 * block-aligned or unaligned start, into a file whose bytes before and after must stay;
 * on ext4 (this checkout's disk) the bulk goes through O_DIRECT, with an unaligned start
 * and with OCCYSTRAP_DIRECT_IO=off through plain writes; on a tmpfs (O_DIRECT since Linux
 * 6.6, plain before) either way; the file reads back the same.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { after, test } from 'node:test';
import * as fc from 'fast-check';
import { DirectFileWriter } from '../../src/shell/fs/direct-writer.js';

// Beside the checkout, on its disk (ext4 here), not /tmp, which may be a tmpfs elsewhere.
const work = mkdtempSync(path.join(process.cwd(), '.direct-writer-'));
after(() => rmSync(work, { recursive: true, force: true }));
let n = 0;

async function writeThrough(file: string, start: number, chunks: Buffer[]): Promise<DirectFileWriter> {
  const w = new DirectFileWriter(file, start);
  for (const c of chunks) if (!w.write(c)) await new Promise((r) => w.once('drain', r));
  w.end();
  await finished(w);
  return w;
}

const caseArb = fc.record({
  /** Bytes already in the file (a header before the place, maybe data after it). */
  before: fc.integer({ min: 0, max: 3000 }),
  after: fc.integer({ min: 0, max: 2000 }),
  aligned: fc.boolean(),
  /** Chunk sizes: small, or across the 4 MiB staging buffers. */
  sizes: fc.array(fc.oneof(fc.integer({ min: 1, max: 70_000 }), fc.integer({ min: 1 << 20, max: 9 << 20 })), { minLength: 0, maxLength: 6 }),
});

test('DirectFileWriter: the bytes land at start.. exactly, the rest of the file is kept, whatever the chunking (O_DIRECT on this disk when aligned)', async () => {
  let direct = 0;
  await fc.assert(
    fc.asyncProperty(caseArb, async (c) => {
      const start = c.aligned ? Math.ceil(c.before / 512) * 512 : c.before | 1;
      const head = randomBytes(start);
      const chunks = c.sizes.map((s) => randomBytes(s));
      const body = Buffer.concat(chunks);
      const tailKept = randomBytes(c.after);
      const file = path.join(work, `f${n++}`);
      // What follows the place is there already (as when a later entry was written first): beyond the body, it stays.
      writeFileSync(file, Buffer.concat([head, Buffer.alloc(body.length), tailKept]));
      const w = await writeThrough(file, start, chunks);
      if (w.usedDirect) direct++;
      assert.equal(w.usedDirect, c.aligned, 'O_DIRECT exactly when the start is block-aligned');
      assert.deepEqual(readFileSync(file), Buffer.concat([head, body, tailKept]));
      rmSync(file);
    }),
    { numRuns: 40 },
  );
  assert.ok(direct > 5, `O_DIRECT was used (${direct} runs)`);
});

test('DirectFileWriter: on a tmpfs, and with OCCYSTRAP_DIRECT_IO=off (plain writes), the same bytes', async () => {
  assert.equal(process.getuid?.(), 0, 'the tmpfs is mounted here; CI runs as root');
  const small = path.join(work, 'tmpfs');
  mkdirSync(small);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', small]);
  try {
    const chunks = [randomBytes(5000), randomBytes(9 << 20), randomBytes(777)];
    const file = path.join(small, 'f');
    writeFileSync(file, Buffer.alloc(512));
    await writeThrough(file, 512, chunks);
    assert.deepEqual(readFileSync(file), Buffer.concat([Buffer.alloc(512), ...chunks]));
  } finally {
    execFileSync('umount', [small]);
  }
  process.env.OCCYSTRAP_DIRECT_IO = 'off';
  try {
    const file = path.join(work, 'off');
    writeFileSync(file, Buffer.alloc(0));
    const chunks = [randomBytes(3 << 20)];
    const w = await writeThrough(file, 0, chunks);
    assert.equal(w.usedDirect, false);
    assert.deepEqual(readFileSync(file), chunks[0]);
  } finally {
    delete process.env.OCCYSTRAP_DIRECT_IO;
  }
});
