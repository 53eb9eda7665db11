// The scope's zstd Compress codec (src/shell/fs/transcode.ts): inline for small files, a
// worker thread for large ones; both give the same deterministic bytes, which zstd
// decompresses to the input; an aborted compress stops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decompress } from 'zstd-napi';
import { nodeLayerCodecs, ZSTD_INLINE_MAX } from '../../src/shell/fs/transcode.js';
import { zstdCompressFile } from '../../src/shell/fs/zstd-worker.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'occystrap-zstd-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Compressible bytes: random words repeated, so zstd has work to do. */
function sample(size: number): Buffer {
  const words = Array.from({ length: 512 }, () => randomBytes(6).toString('hex'));
  const out = Buffer.alloc(size);
  let offset = 0;
  for (let i = 0; offset < size; i++) offset += out.write(`${words[(i * 7919) % words.length]} `, offset);
  return out;
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

for (const [what, size] of [
  ['inline (small file)', 64 * 1024],
  ['worker thread (over the inline limit)', ZSTD_INLINE_MAX + 512 * 1024],
] as const) {
  test(`zstd ${what}: decompresses to the input, digest and size as written, same bytes every time`, async () => {
    await withDir(async (dir) => {
      const input = sample(size);
      const from = path.join(dir, 'in.tar');
      await writeFile(from, input);
      const outs: Buffer[] = [];
      for (const name of ['a.zst', 'b.zst']) {
        const to = path.join(dir, name);
        await writeFile(to, '');
        const r = await nodeLayerCodecs.compress(from, to, 'zstd');
        const bytes = await readFile(to);
        assert.equal(r.size, bytes.length);
        assert.equal(r.digest, sha(bytes));
        assert.ok(bytes.length < input.length / 2, 'compressed');
        assert.deepEqual(decompress(bytes), input);
        outs.push(bytes);
      }
      assert.deepEqual(outs[0], outs[1], 'deterministic');
      // The worker and the inline path make the same bytes.
      const inline = path.join(dir, 'inline.zst');
      await writeFile(inline, '');
      await zstdCompressFile({ from, to: inline });
      assert.deepEqual(await readFile(inline), outs[0]);
    });
  });
}

test('zstd in a worker: an aborted signal rejects', async () => {
  await withDir(async (dir) => {
    const from = path.join(dir, 'in.tar');
    await writeFile(from, sample(ZSTD_INLINE_MAX + 1024));
    const to = path.join(dir, 'out.zst');
    await writeFile(to, '');
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await assert.rejects(nodeLayerCodecs.compress(from, to, 'zstd', controller.signal), (e: Error) => e.name === 'AbortError' || /abort/i.test(e.message));
  });
});
