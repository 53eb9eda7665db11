// src/core/tar/rewrite.ts: what survives a rewrite, what is regenerated or dropped, what
// GNU tar and tar-stream make of the output, sparse entries, determinism.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tarStream from 'tar-stream';
import { EMPTY_LAYER_DIFF_ID } from '../../src/core/digest.js';
import type { TarHeader } from '../../src/core/tar/header.js';
import { readTar, TarReadError } from '../../src/core/tar/reader.js';
import { emptyRewriteStats, rewriteTar, sameHeader, type TarTransform } from '../../src/core/tar/rewrite.js';
import { concatBytes as concat } from '../../src/core/bytes.js';
import { archive, chunked, entryKindsTree, gnuTar as gnuTarPlain, H, isRoot, scratchDirs, sparseTree, tarEnv } from '../support/tar.js';

const enc = new TextEncoder();
const tmp = scratchDirs('occystrap-tar-rewrite-');
const identity: TarTransform = (h) => h;



async function rewrite(bytes: Uint8Array, transform: TarTransform = identity, chunk = 1000): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of rewriteTar(chunked(bytes, chunk), transform)) parts.push(c.slice());
  return concat(parts);
}

async function headers(bytes: Uint8Array): Promise<TarHeader[]> {
  const out: TarHeader[] = [];
  for await (const e of readTar(chunked(bytes, 4096))) out.push(e.header);
  return out;
}



function writeFile(bytes: Uint8Array): string {
  const f = path.join(tmp(), 'a.tar');
  fs.writeFileSync(f, bytes);
  return f;
}

function gnuList(file: string): string[] {
  return execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--full-time', '--quoting-style=literal', '-tvvf', file], { env: tarEnv, encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
}

/** A tree with every entry kind, sub-second times, long and non-ASCII names, big ids. */
function makeTree(): { root: string; dir: string } {
  const root = tmp();
  const d = entryKindsTree(root, { size: 100_000, fill: 9 });
  fs.mkdirSync(path.join(d, `${'p'.repeat(90)}`, `${'q'.repeat(90)}`, `${'r'.repeat(90)}`), { recursive: true });
  fs.writeFileSync(path.join(d, `${'p'.repeat(90)}`, `${'q'.repeat(90)}`, `${'r'.repeat(90)}`, 'deep.txt'), 'deep\n');
  if (isRoot) {
    execFileSync('mknod', [path.join(d, 'blockdev'), 'b', '7', '200']);
    execFileSync('setcap', ['cap_net_raw,cap_setuid+ep', path.join(d, 'sub', 'file.txt')]);
  }
  execFileSync('find', [d, '-exec', 'touch', '-h', '-d', '@1700000000.123456789', '{}', '+']);
  return { root, dir: d };
}

/** GNU tar's archive of `root/tree`, xattrs included. */
function gnuTar(root: string, format: string, extra: string[] = []): Uint8Array {
  return gnuTarPlain(root, format, ['--xattrs', '--xattrs-include=*', ...extra]);
}

/** `tar -tvv` lines with the volatile parts (atime/ctime are not listed) normalised. */
const strip = (lines: string[]) => lines.map((l) => l.replace(/\s+/g, ' '));

for (const format of ['pax', 'gnu']) {
  test(`identity rewrite of a GNU tar --format=${format} archive: GNU tar lists the same entries, times to the nanosecond, xattrs included`, async () => {
    const { root } = makeTree();
    const input = gnuTar(root, format, ['--owner=:3000000', '--group=:3000001']);
    const output = await rewrite(input);
    const listedIn = strip(gnuList(writeFile(input)));
    const listedOut = strip(gnuList(writeFile(output)));
    assert.deepEqual(listedOut, listedIn);
    assert.ok(listedOut.some((l) => l.includes('3000000/3000001')));
    // Headers agree field by field (atime/ctime records kept as they were).
    const a = await headers(input);
    const b = await headers(output);
    assert.equal(a.length, b.length);
    a.forEach((h, i) => assert.ok(sameHeader(h, b[i] as TarHeader), `${h.name}: ${JSON.stringify(h)} vs ${JSON.stringify(b[i])}`));
    // Idempotent and deterministic.
    assert.deepEqual(await rewrite(output), output);
    assert.deepEqual(await rewrite(input, identity, 7), output);
  });
}

test('extracting a rewritten archive gives the same files, links, devices and capabilities', async () => {
  const { root } = makeTree();
  const output = await rewrite(gnuTar(root, 'pax'));
  const dest = tmp();
  execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', writeFile(output), '-C', dest], { env: tarEnv });
  const t = path.join(dest, 'tree');
  assert.equal(fs.readFileSync(path.join(t, 'sub', 'file.txt'), 'utf8'), 'hello\n');
  assert.equal(fs.readFileSync(path.join(t, 'big.bin')).length, 100_000);
  assert.equal(fs.readlinkSync(path.join(t, 'symlink')), 'sub/file.txt');
  assert.equal(fs.statSync(path.join(t, 'hardlink')).ino, fs.statSync(path.join(t, 'sub', 'file.txt')).ino);
  assert.ok(fs.statSync(path.join(t, 'fifo')).isFIFO());
  assert.equal(fs.statSync(path.join(t, 'sub', 'file.txt')).mtimeMs, 1700000000123.4568);
  if (isRoot) {
    const dev = fs.statSync(path.join(t, 'blockdev'));
    assert.ok(dev.isBlockDevice());
    assert.equal(dev.rdev, (7 << 8) | 200);
    assert.match(execFileSync('getcap', [path.join(t, 'sub', 'file.txt')], { encoding: 'utf8' }), /cap_setuid,cap_net_raw=ep/);
  }
});

test('tar-stream reads every rewritten entry, data included', async () => {
  const { root, dir } = makeTree();
  const output = await rewrite(gnuTar(root, 'gnu'));
  const extract = tarStream.extract();
  const names: string[] = [];
  const done = (async () => {
    for await (const e of extract) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      names.push(e.header.name);
      if (e.header.name === 'tree/big.bin') assert.equal(Buffer.concat(chunks).length, 100_000);
    }
  })();
  extract.end(Buffer.from(output));
  await done;
  assert.ok(names.includes(`tree/${'x'.repeat(120)}.txt`));
  assert.ok(names.includes(`tree/${'p'.repeat(90)}/${'q'.repeat(90)}/${'r'.repeat(90)}/deep.txt`));
  assert.equal(names.length, execFileSync('find', [dir], { encoding: 'utf8' }).split('\n').filter(Boolean).length);
});

test('uid 3000000 and a sub-second mtime survive, as PAX records tar-stream and GNU tar read', async () => {
  const input = archive([{ header: H({ name: 'f', size: 1, uid: 3_000_000, gid: 3_000_001, mtime: 1_700_000_000.25 }), data: enc.encode('x') }]);
  const output = await rewrite(input);
  const [h] = await headers(output);
  assert.equal(h?.uid, 3_000_000);
  assert.equal(h?.gid, 3_000_001);
  assert.equal(h?.mtime, 1_700_000_000.25);
  const line = gnuList(writeFile(output))[0] ?? '';
  assert.match(line, /3000000\/3000001/);
  assert.match(line, /2023-11-14 22:13:20\.25 f$/);
});

test('PAX records: field duplicates are regenerated only when needed, hdrcharset and GNU.sparse dropped on ordinary entries, the rest kept sorted', async () => {
  const input = archive([
    { header: H({ name: 'a', pax: { 'SCHILY.xattr.user.z': 'last', atime: '1.5', 'LIBARCHIVE.creationtime': '7', 'SCHILY.xattr.user.a': 'first' } }) },
  ]);
  const out = await rewrite(input);
  const [h] = await headers(out);
  assert.deepEqual(Object.keys(h?.pax ?? {}), ['LIBARCHIVE.creationtime', 'SCHILY.xattr.user.a', 'SCHILY.xattr.user.z', 'atime']);
  // A transform that adds field keys and encoding keys as extras cannot make them appear.
  const sneaky = await rewrite(input, (x) => ({ ...x, pax: { ...x.pax, path: 'evil', uid: '9', hdrcharset: 'BINARY', 'GNU.sparse.major': '1' } }));
  const [s] = await headers(sneaky);
  assert.equal(s?.name, 'a');
  assert.equal(s?.uid, 0);
  assert.deepEqual(Object.keys(s?.pax ?? {}), ['LIBARCHIVE.creationtime', 'SCHILY.xattr.user.a', 'SCHILY.xattr.user.z', 'atime']);
  // An entry that fits USTAR gets no PAX header at all.
  const plain = await rewrite(archive([{ header: H({ name: 'plain' }) }]));
  assert.equal(plain.length, 512 + 1024);
});

test('stats.changed counts the entries a transform changed: zero for the identity, whatever the encoding', async () => {
  const input = archive([{ header: H({ name: 'a', size: 3 }), data: enc.encode('abc') }, { header: H({ name: 'b/', type: 'directory', mode: 0o755 }) }]);
  const same = emptyRewriteStats();
  for await (const _ of rewriteTar(chunked(input, 100), (h) => ({ ...h }), { stats: same })) void _;
  assert.deepEqual(same, { entries: 2, dropped: 0, passedThrough: 0, changed: 0 });
  const one = emptyRewriteStats();
  for await (const _ of rewriteTar(chunked(input, 100), (h) => (h.name === 'a' ? { ...h, uid: 7 } : h), { stats: one })) void _;
  assert.equal(one.changed, 1);
});

test('the transform can drop entries (data skipped) and change headers; changing size is refused', async () => {
  const input = archive([
    { header: H({ name: 'keep', size: 3 }), data: enc.encode('abc') },
    { header: H({ name: 'drop', size: 2000 }), data: new Uint8Array(2000).fill(1) },
    { header: H({ name: 'dir/', type: 'directory', mode: 0o755 }) },
  ]);
  const stats = emptyRewriteStats();
  const parts: Uint8Array[] = [];
  for await (const c of rewriteTar(chunked(input, 100), (h) => (h.name === 'drop' ? null : { ...h, mtime: 5 }), { stats })) parts.push(c);
  const out = concat(parts);
  assert.deepEqual(stats, { entries: 3, dropped: 1, passedThrough: 0, changed: 2 });
  assert.deepEqual((await headers(out)).map((h) => [h.name, h.mtime]), [
    ['keep', 5],
    ['dir/', 5],
  ]);
  await assert.rejects(rewrite(input, (h) => ({ ...h, size: h.size + 1 })), /changed the size or kind of "keep"/);
});

test('an archive of no entries becomes exactly the empty layer (1024 zero bytes)', async () => {
  for (const input of [new Uint8Array(1024), new Uint8Array(10240), new Uint8Array(0), archive([{ header: H({ name: 'gone' }) }])]) {
    const out = await rewrite(input, (h) => (h.name === 'gone' ? null : h));
    assert.equal(out.length, 1024);
    assert.equal(`sha256:${createHash('sha256').update(out).digest('hex')}`, EMPTY_LAYER_DIFF_ID);
  }
});

test('GNU sparse entries: passed through byte for byte when unchanged, dropped when asked, refused when changed', async () => {
  const root = tmp();
  sparseTree(root, 2 * 1024 * 1024, 'after.txt', 'after\n');
  for (const format of ['gnu', 'pax']) {
    const input = gnuTar(root, format, ['--sparse']);
    const output = await rewrite(input);
    const dest = tmp();
    execFileSync('tar', ['-xf', writeFile(output), '-C', dest], { env: tarEnv });
    const img = fs.readFileSync(path.join(dest, 'tree', 'sparse.img'));
    assert.equal(img.length, 2 * 1024 * 1024 + 3, format);
    assert.equal(img.subarray(0, 5).toString(), 'start');
    assert.equal(img.subarray(img.length - 3).toString(), 'end');
    assert.equal(fs.readFileSync(path.join(dest, 'tree', 'after.txt'), 'utf8'), 'after\n');
    assert.deepEqual(await rewrite(output), output, `${format}: idempotent`);
    const dropped = await rewrite(input, (h) => (h.name === 'tree/sparse.img' ? null : h));
    assert.deepEqual((await headers(dropped)).map((h) => h.name), ['tree/', 'tree/after.txt']);
    await assert.rejects(rewrite(input, (h) => ({ ...h, mtime: 0 })), (e: unknown) => {
      assert.ok(e instanceof TarReadError);
      assert.match(e.message, /^GNU sparse entries are not supported: "tree\/sparse.img" is sparse/);
      return true;
    });
  }
});

test('rewriting stops reading when the consumer stops, and honours an abort', async () => {
  const input = archive([{ header: H({ name: 'a', size: 10_000 }), data: new Uint8Array(10_000) }, { header: H({ name: 'b' }) }]);
  let returned = false;
  async function* source() {
    try {
      yield* chunked(input, 512);
    } finally {
      returned = true;
    }
  }
  for await (const c of rewriteTar(source(), identity)) {
    void c;
    break;
  }
  assert.ok(returned);
  const ac = new AbortController();
  ac.abort(new Error('stop'));
  await assert.rejects(
    (async () => {
      for await (const c of rewriteTar(chunked(input, 512), identity, { signal: ac.signal })) void c;
    })(),
    /cancelled/,
  );
});

test('sameHeader compares extras as bytes, whatever their representation', () => {
  const a = H({ name: 'x', pax: { k: 'v' } });
  const b = H({ name: 'x', pax: { k: enc.encode('v') } });
  assert.ok(sameHeader(a, b));
  assert.ok(!sameHeader(a, H({ name: 'x', pax: { k: 'w' } })));
  assert.ok(!sameHeader(a, H({ name: 'x' })));
  assert.ok(!sameHeader(a, { ...a, mtimeText: '1700000000' }));
});
