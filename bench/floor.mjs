// The floor of registry → dir/tar for one layer: the time this process (Node, nothing of
// occystrap) needs to inflate a gzip blob and hash both the blob and the tar, with the
// best inflate available to it and nothing else (no network, no writes).
//
//   node bench/floor.mjs BLOB.gz
//
// Inflates measured here on the bench's largest layer (69 MB gzip → 212 MB), 2026-12-02:
// node:zlib streaming 0.54–0.55 s, zlib.gunzipSync 0.83 s, pako 3.0.3 1.32 s,
// fflate 0.8.3 1.49 s. Only node:zlib (native zlib) is run by the bench.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

const blob = process.argv[2];
if (!blob) throw new Error('usage: node bench/floor.mjs BLOB.gz');
const raw = createHash('sha256');
const tar = createHash('sha256');
const source = fs.createReadStream(blob, { highWaterMark: 1 << 20 });
source.on('data', (chunk) => raw.update(chunk));
await pipeline(
  source,
  zlib.createGunzip({ chunkSize: 1 << 20 }),
  new Writable({
    write(chunk, _encoding, done) {
      tar.update(chunk);
      done();
    },
  }),
);
process.stdout.write(`${raw.digest('hex')} ${tar.digest('hex')}\n`);
