// Global PAX headers through the CLI's content filters (issue 8, item 8): a layer of 2000
// `g` headers and 2000 files under `-f normalize-timestamps` became 30 times its size in
// 0.1.0, every file carrying every accumulated global record. The rewritten layer must
// stay about the input's size, and GNU tar must read the same files with normalised times,
// the times that came from a global `mtime` record included.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, tmpDir } from './fixtures.js';
import { errorLines, listDir, occystrap, startOccystrap } from './cli-helpers.js';
import { sha256Hex, writeOneLayerImage } from './archive-builder.js';
import { layerNames, readSaved, tarEnv } from './filters-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});

/** One PAX record, `"%d %s=%s\n"` with the length counting itself. */
function rec(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const n = Buffer.byteLength(body);
  let len = n + 1;
  while (String(len).length + n !== len) len = String(len).length + n;
  return Buffer.from(`${len}${body}`);
}

const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

/** A USTAR header block, written by hand (typeflag `0`, `g` or `x`). */
function block(name: string, flag: string, size: number, mtime: number): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0);
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  b.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  b.write(`${mtime.toString(8).padStart(11, '0')}\0`, 136);
  b.fill(0x20, 148, 156);
  b.write(flag, 156);
  b.write('ustar\x0000', 257);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return b;
}

/**
 * `count` global headers, each adding a record, each followed by a file. Each also says
 * `mtime`, since GNU tar lets a `g` replace the previous ones where POSIX (and our
 * reader) accumulate their records: so both read the same times.
 */
function hostileLayer(count: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const records = Buffer.concat([rec('mtime', '1234567890.25'), rec(`VENDOR.note.${i}`, `global note number ${i}`)]);
    parts.push(block('pax_global_header', 'g', records.length, 1_600_000_000), pad(records));
    const data = Buffer.from(`file ${i}\n`);
    parts.push(block(`f/${i}.txt`, '0', data.length, 1_700_000_000), pad(data));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

function gnuList(layer: Buffer, scratch: string): string[] {
  const file = path.join(scratch, `${sha256Hex(layer).slice(0, 12)}.tar`);
  writeFileSync(file, layer);
  return execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', file], { env: tarEnv, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    .split('\n')
    .filter(Boolean)
    .map((l) => l.replace(/\s+/g, ' '));
}

/** A docker-save archive of one image whose one layer is `layer`. */
async function imageWithLayer(file: string, layer: Buffer): Promise<void> {
  await writeOneLayerImage(file, layer, 'globals:v1');
}

test('2000 global headers and 2000 files under normalize-timestamps: the layer stays its size, GNU tar lists every file at time 0', async () => {
  const work = await tmpDir('pax-globals');
  const layer = hostileLayer(2000);
  const input = path.join(work, 'in.tar');
  await imageWithLayer(input, layer);
  const listedIn = gnuList(layer, work);
  assert.equal(listedIn.length, 2000);
  assert.ok(listedIn.every((l) => l.includes(' 2009-02-13 23:31:30.25 ')), 'GNU tar applies the global mtime to the input');

  const temp = path.join(work, 'tmp');
  const out = path.join(work, 'out.tar');
  const r = await occystrap(['--temp-dir', temp, 'process', `tar://${input}`, `tar://${out}`, '-f', 'normalize-timestamps'], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(errorLines(r.stderr), []);
  assert.deepEqual(listDir(temp), []);
  const written = (await readSaved(out)).layers[0] as Buffer;
  assert.ok(written.length <= layer.length + 10 * 1024, `${written.length} bytes written for a ${layer.length}-byte layer`);
  assert.deepEqual(
    gnuList(written, work),
    listedIn.map((l) => l.replace(' 2009-02-13 23:31:30.25 ', ' 1970-01-01 00:00:00 ')),
  );
});

test('100 000 global records in effect over 5000 entries: both content filters finish, the layer stays its size', async () => {
  // 0.1.0 copied every record in effect into each entry as it read it (and wrote them all
  // again): about 0.3 s of CPU per entry here, 25 minutes for this 3.7 MB layer, with the
  // event loop blocked so long that SIGTERM waited half a minute. Now the work per entry
  // does not depend on the global records. No timing is asserted: a run that hangs is
  // killed after a generous limit and fails the test.
  const work = await tmpDir('pax-globals-many');
  const records = Buffer.concat(Array.from({ length: 100_000 }, (_, i) => rec(`k${i}`, 'v')));
  const parts = [block('pax_global_header', 'g', records.length, 0), pad(records)];
  for (let i = 0; i < 5000; i++) parts.push(block(`e/${i}`, '0', 0, 1_700_000_000));
  parts.push(Buffer.alloc(1024));
  const layer = Buffer.concat(parts);
  const input = path.join(work, 'in.tar');
  await imageWithLayer(input, layer);
  for (const filter of ['normalize-timestamps', 'exclude:pattern=nothing-matches']) {
    const temp = path.join(work, `tmp-${filter.slice(0, 4)}`);
    const out = path.join(work, `out-${filter.slice(0, 4)}.tar`);
    const run = startOccystrap(['--temp-dir', temp, 'process', `tar://${input}`, `tar://${out}`, '-f', filter]);
    const killer = setTimeout(() => run.child.kill('SIGKILL'), 120_000);
    const r = await run.exited.finally(() => clearTimeout(killer));
    assert.equal(r.signal, null, `${filter}: killed after 120 s`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(listDir(temp), []);
    const written = (await readSaved(out)).layers[0] as Buffer;
    assert.ok(written.length <= layer.length + 10 * 1024, `${filter}: ${written.length} bytes written for a ${layer.length}-byte layer`);
    assert.equal((await layerNames(written)).length, 5000);
  }
});
