// The scope's zstd Compress codec (src/shell/fs/transcode.ts): inline for small files, a
// worker thread for large ones; both give the same deterministic bytes, which zstd
// decompresses to the input; an aborted compress stops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decompress } from 'zstd-napi';
import { nodeLayerCodecs, ZSTD_INLINE_MAX } from '../../src/shell/fs/transcode.js';
import { compressTwice, sample } from '../support/codec-runs.js';
import { zstdCompressFile } from '../../src/shell/fs/zstd-worker.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'occystrap-zstd-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const [what, size] of [
  ['inline (small file)', 64 * 1024],
  ['worker thread (over the inline limit)', ZSTD_INLINE_MAX + 512 * 1024],
] as const) {
  test(`zstd ${what}: decompresses to the input, digest and size as written, same bytes every time`, async () => {
    await withDir(async (dir) => {
      const input = sample(size);
      const from = path.join(dir, 'in.tar');
      const outs = await compressTwice(dir, input, 'zstd', (bytes) => {
        assert.ok(bytes.length < input.length / 2, 'compressed');
        return decompress(bytes);
      });
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
