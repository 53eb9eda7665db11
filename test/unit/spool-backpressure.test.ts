/**
 * BlobSink's decompression respects backpressure: when the tar file is written slower
 * than gzip inflates (a slow disk; here a FIFO read slowly), inflated data waits in zlib
 * instead of piling up in memory. 64 MiB of zeros (64 KiB of gzip, a ratio of 1000) would
 * otherwise sit in the streams almost whole.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { BlobSink } from '../../src/shell/fs/spool.js';

const MiB = 1 << 20;

test('inflating into a slow reader keeps what is buffered bounded (never the inflated layer)', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'occystrap-spool-bp-'));
  try {
    const fifo = path.join(dir, 'layer.tar');
    execFileSync('mkfifo', [fifo]);
    const compressed = gzipSync(Buffer.alloc(64 * MiB));
    // The reader takes 1 MiB, then rests: the file side is far slower than inflate.
    const reading = (async () => {
      let taken = 0;
      let sinceRest = 0;
      for await (const chunk of createReadStream(fifo, { highWaterMark: 64 * 1024 })) {
        taken += (chunk as Buffer).length;
        sinceRest += (chunk as Buffer).length;
        if (sinceRest >= MiB) {
          sinceRest = 0;
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      return taken;
    })();
    const sink = new BlobSink(fifo, 'gzip');
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, sink.bufferedBytes);
    }, 2);
    for (let i = 0; i < compressed.length; i += 64 * 1024) await sink.write(compressed.subarray(i, i + 64 * 1024));
    const result = await sink.end();
    clearInterval(sampler);
    assert.equal(result.content?.size, 64 * MiB);
    assert.equal(await reading, 64 * MiB);
    assert.ok(peak > 0, 'the sampler saw data in flight');
    assert.ok(peak < 8 * MiB, `${(peak / MiB).toFixed(1)} MiB were buffered at the peak while 64 MiB inflated into a slow reader`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
