// Global PAX headers (`g`) through src/core/tar/rewrite.ts: the output stays linear in the
// input (issue 8, item 8: 2000 `g` headers and 2000 files became a 120 MB layer when every
// accumulated global record was copied into every file), and what GNU tar and our reader
// read back is what they read before — with normalize-timestamps still normalising the
// times that came from global records.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeHeader, END_OF_ARCHIVE, paddingFor, type TarHeader } from '../../src/core/tar/header.js';
import { readTar } from '../../src/core/tar/reader.js';
import { rewriteTar, sameHeader, type RewriteOptions, type TarTransform } from '../../src/core/tar/rewrite.js';
import { DROPPED_TIME_RECORDS, normalizeTimestamps } from '../../src/core/filters/normalize-timestamps.js';
import { excludeTransform } from '../../src/core/filters/exclude.js';
import { concatBytes as concat } from '../../src/core/bytes.js';
import { chunked, H, tarEnv } from '../support/tar.js';

const enc = new TextEncoder();
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'occystrap-pax-globals-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let counter = 0;
const identity: TarTransform = (h) => h;
const normalize = normalizeTimestamps(0);
const normalizeOptions: RewriteOptions = { droppedRecords: DROPPED_TIME_RECORDS };


async function rewrite(bytes: Uint8Array, transform: TarTransform, options: RewriteOptions = {}): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of rewriteTar(chunked(bytes, 64 * 1024), transform, options)) parts.push(c.slice());
  return concat(parts);
}

async function headers(bytes: Uint8Array): Promise<TarHeader[]> {
  const out: TarHeader[] = [];
  for await (const e of readTar(chunked(bytes, 4096))) out.push(e.header);
  return out;
}


/** One PAX record, `"%d %s=%s\n"` with the length counting itself. */
function rec(key: string, value: string): Uint8Array {
  const body = ` ${key}=${value}\n`;
  const n = enc.encode(body).length;
  let len = n + 1;
  while (String(len).length + n !== len) len = String(len).length + n;
  return enc.encode(`${len}${body}`);
}

/** An extended header entry of type `flag` (`g` or `x`) holding `records`, written by hand. */
function extended(flag: 'g' | 'x', records: readonly Uint8Array[]): Uint8Array {
  const body = concat([...records]);
  const block = encodeHeader(H({ name: flag === 'g' ? 'pax_global_header' : 'PaxHeaders/x', size: body.length, mtime: 1_600_000_000 })).slice(0, 512);
  block[156] = flag.charCodeAt(0);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.set(enc.encode(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
  return concat([block, body, new Uint8Array(paddingFor(body.length))]);
}

function file(name: string, data: string, extra: Partial<TarHeader> = {}): Uint8Array {
  const bytes = enc.encode(data);
  return concat([encodeHeader(H({ name, size: bytes.length, ...extra })), bytes, new Uint8Array(paddingFor(bytes.length))]);
}

function writeTemp(bytes: Uint8Array): string {
  const f = path.join(tmpRoot, `${counter++}.tar`);
  fs.writeFileSync(f, bytes);
  return f;
}

/** GNU tar's listing (it applies global headers, as POSIX says); fails the test if tar complains. */
function gnuList(bytes: Uint8Array): string[] {
  const r = spawnSync('tar', ['--numeric-owner', '--full-time', '--quoting-style=literal', '-tvf', writeTemp(bytes)], { env: tarEnv, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, `GNU tar: ${r.stderr}`);
  assert.equal(r.stderr, '');
  return r.stdout.split('\n').filter(Boolean).map((l) => l.replace(/\s+/g, ' '));
}

/** GNU tar's `-tvv --xattrs` listing: each entry's line, then one line per xattr. */
function gnuXattrs(bytes: Uint8Array): string[] {
  return execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--full-time', '-tvvf', writeTemp(bytes)], { env: tarEnv, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    .split('\n')
    .filter(Boolean)
    .map((l) => l.replace(/\s+/g, ' '));
}

/** What the review built: `count` `g` headers, each adding a new record, each followed by a file. */
function manyGlobals(count: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    parts.push(extended('g', [rec(`VENDOR.note.${i}`, `global note number ${i}`)]));
    parts.push(file(`f/${i}.txt`, `file ${i}\n`));
  }
  parts.push(END_OF_ARCHIVE);
  return concat(parts);
}

test('2000 global headers and 2000 files: the rewritten layer stays about the input size, under normalize-timestamps and unchanged', async () => {
  const input = manyGlobals(2000);
  for (const [what, transform, options] of [
    ['normalize-timestamps', normalize, normalizeOptions],
    ['identity', identity, {}],
  ] as const) {
    const output = await rewrite(input, transform, options);
    // Linear: each input `g` header becomes at most one output `g` header of the same records.
    assert.ok(output.length <= input.length + 10 * 1024, `${what}: ${output.length} bytes out of ${input.length}`);
    // GNU tar lists the same files (normalised: at time 0), with no complaint.
    const listedIn = gnuList(input);
    assert.deepEqual(gnuList(output), what === 'identity' ? listedIn : listedIn.map((l) => l.replace('2023-11-14 22:13:20', '1970-01-01 00:00:00')));
    // Our reader sees the same entries, the transform applied, every global record included.
    const before = (await headers(input)).map((h) => transform(h) as TarHeader);
    const after = await headers(output);
    assert.equal(after.length, 2000);
    before.forEach((h, i) => assert.ok(sameHeader(h, after[i] as TarHeader), `${what}: ${h.name}`));
    assert.equal(Object.keys(after[1999]?.pax ?? {}).length, 2000, 'the last file still has all 2000 global records');
  }
});

test('GNU tar reads the same metadata before and after; normalize-timestamps also normalises an mtime that came from a global header', async () => {
  const input = concat([
    extended('g', [rec('mtime', '1234567890.5'), rec('atime', '1234567000'), rec('uid', '3000000'), rec('SCHILY.xattr.user.origin', 'global')]),
    file('a.txt', 'a\n'),
    extended('x', [rec('mtime', '1300000000'), rec('SCHILY.xattr.user.origin', 'local')]),
    file('b.txt', 'b\n'),
    // GNU tar lets each `g` replace the previous ones, POSIX lets records accumulate: this
    // one repeats what it keeps, so both readings agree on the input.
    extended('g', [rec('mtime', '1234567890.5'), rec('SCHILY.xattr.user.origin', 'global'), rec('uid', '5'), rec('gname', 'staff-with-a-rather-long-group-name-x')]),
    file('c.txt', 'c\n', { gid: 50 }),
    END_OF_ARCHIVE,
  ]);
  const listedIn = gnuList(input);
  assert.deepEqual(listedIn, [
    '-rw-r--r-- 3000000/0 2 2009-02-13 23:31:30.5 a.txt',
    '-rw-r--r-- 3000000/0 2 2011-03-13 07:06:40 b.txt',
    '-rw-r--r-- 5/50 2 2009-02-13 23:31:30.5 c.txt',
  ]);

  const same = await rewrite(input, identity);
  assert.deepEqual(gnuList(same), listedIn);
  // GNU tar prints an xattr's value length (and, for one from a global header, no name;
  // on b it lists the global one besides the local one): 6 is "global", 5 is "local".
  const xattrsIn = gnuXattrs(input);
  assert.deepEqual(xattrsIn.filter((l) => l.startsWith(' x:')).map((l) => l.trim()), ['x: 6', 'x: 6', 'x: 5 user.origin', 'x: 6'], xattrsIn.join('\n'));
  assert.deepEqual(gnuXattrs(same), xattrsIn);
  const a = await headers(input);
  const b = await headers(same);
  a.forEach((h, i) => assert.ok(sameHeader(h, b[i] as TarHeader), `${h.name}: ${JSON.stringify(b[i])}`));
  assert.deepEqual(await rewrite(same, identity), same, 'idempotent');

  const normalized = await rewrite(input, normalize, normalizeOptions);
  assert.deepEqual(gnuList(normalized), [
    '-rw-r--r-- 3000000/0 2 1970-01-01 00:00:00 a.txt',
    '-rw-r--r-- 3000000/0 2 1970-01-01 00:00:00 b.txt',
    '-rw-r--r-- 5/50 2 1970-01-01 00:00:00 c.txt',
  ]);
  const n = await headers(normalized);
  assert.deepEqual(
    n.map((h) => [h.name, h.mtime, h.mtimeText, h.uid, h.gname, Object.keys(h.pax ?? {}).sort()]),
    [
      ['a.txt', 0, undefined, 3000000, '', ['SCHILY.xattr.user.origin']],
      ['b.txt', 0, undefined, 3000000, '', ['SCHILY.xattr.user.origin']],
      ['c.txt', 0, undefined, 5, 'staff-with-a-rather-long-group-name-x', ['SCHILY.xattr.user.origin']],
    ],
  );
  assert.deepEqual(
    n.map((h) => Buffer.from(h.pax?.['SCHILY.xattr.user.origin'] as Uint8Array).toString()),
    ['global', 'local', 'global'],
  );
  assert.deepEqual(await rewrite(normalized, normalize, normalizeOptions), normalized, 'normalising again changes nothing');
});

test('a global header before an excluded entry still applies to the entries after it; an emptied record stops applying', async () => {
  const input = concat([
    extended('g', [rec('comment', 'first')]),
    file('drop.pyc', 'x\n'),
    file('keep1', 'k\n'),
    extended('g', [rec('comment', '')]),
    file('keep2', 'k\n'),
    END_OF_ARCHIVE,
  ]);
  const output = await rewrite(input, excludeTransform(['*.pyc'])());
  const h = await headers(output);
  assert.deepEqual(
    h.map((e) => [e.name, e.pax?.['comment'] === undefined ? undefined : Buffer.from(e.pax['comment'] as Uint8Array).toString()]),
    [
      ['keep1', 'first'],
      ['keep2', undefined],
    ],
  );
  assert.deepEqual(gnuList(output).map((l) => l.split(' ').pop()), ['keep1', 'keep2']);
});

test('where GNU tar and POSIX read global headers differently, the fields the reader applied become explicit on each entry', async () => {
  // POSIX (and Python, and our reader): the first header's mtime still applies to b.
  // GNU tar: the second `g` replaces the first, so b has its own header's time.
  const input = concat([
    extended('g', [rec('mtime', '1234567890'), rec('comment', 'one')]),
    file('a', 'a\n'),
    extended('g', [rec('comment', 'two')]),
    file('b', 'b\n'),
    END_OF_ARCHIVE,
  ]);
  assert.deepEqual(gnuList(input).map((l) => l.split(' ').slice(3).join(' ')), ['2009-02-13 23:31:30 a', '2023-11-14 22:13:20 b']);
  const output = await rewrite(input, identity);
  assert.deepEqual((await headers(output)).map((h) => [h.name, h.mtime]), [['a', 1234567890], ['b', 1234567890]]);
  assert.deepEqual(gnuList(output).map((l) => l.split(' ').slice(3).join(' ')), ['2009-02-13 23:31:30 a', '2009-02-13 23:31:30 b']);
});

test('readTar with globalExtrasApart: global extra records stay out of each header, global fields still apply', async () => {
  const input = concat([
    extended('g', [rec('uid', '7'), rec('comment', 'global'), rec('SCHILY.xattr.user.a', 'g')]),
    file('a', ''),
    extended('x', [rec('comment', 'local')]),
    file('b', ''),
    END_OF_ARCHIVE,
  ]);
  const seen: [string, number, string[], string[]][] = [];
  for await (const e of readTar(chunked(input, 100), { globalExtrasApart: true })) {
    seen.push([e.header.name, e.header.uid, Object.keys(e.header.pax ?? {}), (e.globalRecords ?? []).map(([k]) => k)]);
  }
  assert.deepEqual(seen, [
    ['a', 7, [], ['uid', 'comment', 'SCHILY.xattr.user.a']],
    ['b', 7, ['comment'], []],
  ]);
  // Without the option every record in effect is on each header, as before.
  assert.deepEqual((await headers(input)).map((h) => Object.keys(h.pax ?? {}).sort()), [
    ['SCHILY.xattr.user.a', 'comment'],
    ['SCHILY.xattr.user.a', 'comment'],
  ]);
});
