/**
 * The node implementation of the {@link LayerFiles} port content filters rewrite layers
 * through: stream a temp file, and write a new one while hashing what is written.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { digestFromHex } from '../../core/digest.js';
import { AbortError } from '../../core/errors.js';
import type { LayerFiles } from '../../core/filters/layer-rewrite.js';
import type { TempFile } from '../../core/ownership.js';

const READ_CHUNK = 1 << 20;
/** Small chunks (tar headers, padding) are gathered into writes of about this size. */
const WRITE_BATCH = 1 << 20;

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError(signal.reason);
}

export const nodeLayerFiles: LayerFiles = {
  read(file: TempFile, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    return {
      async *[Symbol.asyncIterator]() {
        const stream = createReadStream(file.path, { highWaterMark: READ_CHUNK, ...(signal ? { signal } : {}) });
        try {
          for await (const chunk of stream) yield chunk as Uint8Array;
        } catch (e) {
          throwIfAborted(signal);
          throw e;
        } finally {
          stream.destroy();
        }
      },
    };
  },

  async write(file: TempFile, data: AsyncIterable<Uint8Array>, signal?: AbortSignal) {
    // 'r+': the file exists (the scope created it); a file the scope removed is never recreated.
    const handle = await open(file.path, 'r+');
    const hash = createHash('sha256');
    let size = 0;
    let batch: Uint8Array[] = [];
    let batched = 0;
    const flush = async () => {
      if (batched === 0) return;
      const buf = batch.length === 1 ? (batch[0] as Uint8Array) : Buffer.concat(batch, batched);
      batch = [];
      batched = 0;
      let written = 0;
      while (written < buf.length) {
        const r = await handle.write(buf, written, buf.length - written);
        written += r.bytesWritten;
      }
    };
    try {
      for await (const chunk of data) {
        throwIfAborted(signal);
        hash.update(chunk);
        size += chunk.length;
        if (chunk.length >= WRITE_BATCH) {
          await flush();
          batch.push(chunk);
          batched += chunk.length;
          await flush();
          continue;
        }
        batch.push(chunk);
        batched += chunk.length;
        if (batched >= WRITE_BATCH) await flush();
      }
      await flush();
      await handle.truncate(size);
    } finally {
      await handle.close();
    }
    const digest = digestFromHex('sha256', hash.digest('hex'));
    if (digest._tag === 'Left') throw new Error('unreachable: sha256 produced an invalid digest');
    return { digest: digest.right, size };
  },
};
