/**
 * The worker sink's `inflate` mode (a gzip blob made into a tar: the worker inflates with
 * SyncGunzip, this thread hashes and writes) against zlib's own results: the same bytes
 * and digests, errors as one rejected write or end, memory bounded by the pieces in
 * flight, and a worker that is reused after a failed job.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { OffThreadSink } from '../../src/shell/fs/offthread-sink.js';
import { SyncGunzip, syncGunzipAvailable } from '../../src/shell/fs/sync-gunzip.js';

const MiB = 1 << 20;
const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Half random (incompressible), half repeated text: inflate does real work on both kinds. */
function sampleTar(bytes: number): Buffer {
  const text = Buffer.from('occystrap layer bytes '.repeat(1 << 12));
  const parts: Buffer[] = [];
  let n = 0;
  while (n < bytes) {
    const part = parts.length % 2 === 0 ? randomBytes(Math.min(256 * 1024, bytes - n)) : text.subarray(0, Math.min(text.length, bytes - n));
    parts.push(part);
    n += part.length;
  }
  return Buffer.concat(parts);
}

/** Run `body` in a new temp directory, removed afterwards. */
async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'occystrap-offthread-'));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function feed(sink: { write(c: Uint8Array): Promise<void> }, data: Uint8Array, step = 64 * 1024): Promise<void> {
  for (let i = 0; i < data.length; i += step) await sink.write(data.subarray(i, i + step));
}

test('this Node has the zlib internals SyncGunzip drives (else every large gzip layer takes the slower stream path)', () => {
  assert.equal(syncGunzipAvailable(), true);
});

test('SyncGunzip inflates single- and multi-member gzip exactly as zlib does, in pieces no larger than asked', async () => {
  const a = sampleTar(3 * MiB + 123);
  const b = sampleTar(MiB);
  for (const compressed of [gzipSync(a), Buffer.concat([gzipSync(a), gzipSync(b)])]) {
    const pieces: Uint8Array[] = [];
    const g = new SyncGunzip((p) => void pieces.push(p), () => new Uint8Array(256 * 1024));
    for (let i = 0; i < compressed.length; i += 100_000) await g.write(compressed.subarray(i, i + 100_000));
    await g.finish();
    assert.ok(pieces.every((p) => p.byteLength > 0 && p.byteLength <= 256 * 1024));
    assert.deepEqual(Buffer.concat(pieces), gunzipSync(compressed));
  }
});

test('SyncGunzip: a cut stream fails at finish, corrupt bytes fail the write that meets them', async () => {
  const compressed = gzipSync(sampleTar(2 * MiB));
  const cut = new SyncGunzip(() => undefined);
  await cut.write(compressed.subarray(0, compressed.length - 100));
  await assert.rejects(cut.finish(), /^Error: gzip: unexpected end of file/);

  const corrupt = Buffer.from(compressed);
  corrupt.fill(0xff, 1000, 3000);
  const bad = new SyncGunzip(() => undefined);
  await assert.rejects(
    (async () => {
      await bad.write(corrupt);
      await bad.finish();
    })(),
    /^Error: gzip: /,
  );
  bad.close();
});

test('SyncGunzip waits while its output is not taken: memory is bounded by what is in flight', async () => {
  // 64 MiB of zeros is 64 KiB of gzip: one write would otherwise produce it all at once.
  const compressed = gzipSync(Buffer.alloc(64 * MiB));
  let inFlight = 0;
  let peak = 0;
  let total = 0;
  const g = new SyncGunzip(async (p) => {
    inFlight += p.byteLength;
    total += p.byteLength;
    peak = Math.max(peak, inFlight);
    await new Promise((r) => setImmediate(r));
    inFlight -= p.byteLength;
  });
  await g.write(compressed);
  await g.finish();
  assert.equal(total, 64 * MiB);
  assert.equal(peak, MiB);
});

test('OffThreadSink in inflate mode writes the tar at its place in a file, leaving the bytes before it, and reports zlib\'s digests', () =>
  inTempDir(async (dir) => {
    const tar = sampleTar(9 * MiB + 7);
    const blob = gzipSync(tar);
    const file = path.join(dir, 'archive');
    const prefix = Buffer.from('x'.repeat(1536));
    writeFileSync(file, prefix);
    for (const compression of ['gzip', 'sniff'] as const) {
      const sink = new OffThreadSink({ tar: { path: file, start: prefix.length } }, compression);
      await feed(sink, blob);
      const result = await sink.end();
      assert.equal(result.rawDigest, sha(blob));
      assert.equal(result.rawSize, blob.length);
      assert.equal(result.compression, 'gzip');
      assert.deepEqual(result.content, { digest: sha(tar), size: tar.length });
      const written = readFileSync(file);
      assert.deepEqual(written.subarray(0, prefix.length), prefix);
      assert.deepEqual(written.subarray(prefix.length), tar);
    }
  }));

test('OffThreadSink: corrupt gzip rejects, abort settles, and the next job (on the pooled worker) is sound', () =>
  inTempDir(async (dir) => {
    const tar = sampleTar(4 * MiB);
    const blob = gzipSync(tar);
    const corrupt = Buffer.from(blob);
    corrupt.fill(0, 200_000, 400_000);
    const file = path.join(dir, 'layer.tar');
    writeFileSync(file, '');
    const sink = new OffThreadSink({ tar: file }, 'gzip');
    await assert.rejects(
      (async () => {
        await feed(sink, corrupt);
        await sink.end();
      })(),
      /gzip: /,
    );
    await sink.abort(new Error('test: giving up'));

    writeFileSync(file, '');
    const next = new OffThreadSink({ tar: file }, 'gzip');
    await feed(next, blob);
    const result = await next.end();
    assert.deepEqual(result.content, { digest: sha(tar), size: tar.length });
    assert.deepEqual(readFileSync(file), tar);
  }));

test('OffThreadSink in inflate mode keeps what it buffers bounded while 64 MiB of zeros inflate from 64 KiB', () =>
  inTempDir(async (dir) => {
    const file = path.join(dir, 'layer.tar');
    writeFileSync(file, '');
    const sink = new OffThreadSink({ tar: file }, 'gzip');
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, sink.bufferedBytes)), 1);
    await feed(sink, gzipSync(Buffer.alloc(64 * MiB)), 4096);
    const result = await sink.end();
    clearInterval(sampler);
    assert.equal(result.content?.size, 64 * MiB);
    assert.ok(peak > 0, 'the sampler saw data in flight');
    // The worker holds at most 4 MiB unwritten; this thread sees those pieces as they land.
    assert.ok(peak <= 6 * MiB, `${(peak / MiB).toFixed(1)} MiB were buffered at the peak`);
  }));

test('OffThreadSink with a blob file as well, or a blob that is not gzip, runs the whole sink in the worker (same results)', () =>
  inTempDir(async (dir) => {
    const tar = sampleTar(2 * MiB);
    const blob = gzipSync(tar);
    const tarFile = path.join(dir, 'layer.tar');
    const blobFile = path.join(dir, 'blob');
    writeFileSync(tarFile, '');
    writeFileSync(blobFile, '');
    const both = new OffThreadSink({ tar: tarFile, blob: blobFile }, 'sniff');
    await feed(both, blob);
    const r = await both.end();
    assert.deepEqual(r.content, { digest: sha(tar), size: tar.length });
    assert.deepEqual(readFileSync(blobFile), blob);
    assert.deepEqual(readFileSync(tarFile), tar);

    writeFileSync(tarFile, '');
    const plain = new OffThreadSink({ tar: tarFile }, 'sniff');
    await feed(plain, tar);
    const p = await plain.end();
    assert.equal(p.compression, 'none');
    assert.deepEqual(p.content, { digest: sha(tar), size: tar.length });
    assert.deepEqual(readFileSync(tarFile), tar);
  }));
