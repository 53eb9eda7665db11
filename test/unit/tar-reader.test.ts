// src/core/tar/reader.ts on archives made by GNU tar (every format it writes), by our own
// encoder, and by hand (malformed ones), fed in chunks of every size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tarStream from 'tar-stream';
import { encodeHeader, END_OF_ARCHIVE, paddingFor, type TarHeader } from '../../src/core/tar/header.js';
import { parsePaxRecords, readTar, TarReadError, type TarEntry } from '../../src/core/tar/reader.js';
import { concatBytes as concat } from '../../src/core/bytes.js';
import { archive, chunked, entryKindsTree, gnuTar, H, isRoot, scratchDirs, sparseTree, tarEnv } from '../support/tar.js';

const enc = new TextEncoder();
const tmp = scratchDirs('occystrap-tar-reader-');



interface Read {
  readonly header: TarHeader;
  readonly data: Uint8Array;
  readonly sparse: boolean;
  readonly storedSize: number;
}

async function readAll(bytes: Uint8Array, chunk = 4096): Promise<Read[]> {
  const out: Read[] = [];
  for await (const e of readTar(chunked(bytes, chunk))) {
    const parts: Uint8Array[] = [];
    for await (const c of e.data) parts.push(c);
    out.push({ header: e.header, data: concat(parts), sparse: e.sparse !== undefined, storedSize: e.storedSize });
  }
  return out;
}


const text = (s: string) => enc.encode(s);
const hex = (v: unknown) => Buffer.from(v as Uint8Array).toString('hex');

/** A tree with one of everything GNU tar archives (no devices unless root). */
function makeTree(): string {
  const root = tmp();
  const d = entryKindsTree(root, { size: 10_000, fill: 7 });
  for (const f of ['sub/file.txt', 'big.bin', 'fifo']) execFileSync('touch', ['-h', '-d', '@1700000000.123456789', path.join(d, f)]);
  return root;
}

/** What tar-stream says, for fields it gets right on these archives. */
async function tarStreamView(bytes: Uint8Array): Promise<{ name: string; type: string; size: number; linkname: string | null; mode: number }[]> {
  const extract = tarStream.extract({ allowUnknownFormat: true } as Parameters<typeof tarStream.extract>[0]);
  const out: { name: string; type: string; size: number; linkname: string | null; mode: number }[] = [];
  const done = (async () => {
    for await (const e of extract) {
      out.push({ name: e.header.name, type: e.header.type ?? 'null', size: e.header.size ?? 0, linkname: e.header.linkname ?? null, mode: e.header.mode ?? 0 });
      e.resume();
    }
  })();
  extract.end(Buffer.from(bytes));
  await done;
  return out;
}

for (const format of ['pax', 'gnu', 'ustar', 'oldgnu', 'v7'] as const) {
  test(`reads GNU tar --format=${format} like tar-stream does, whatever the chunk size`, async () => {
    const root = makeTree();
    // ustar and v7 cannot hold the long names: leave them out there.
    const extra = format === 'ustar' || format === 'v7' ? ['--exclude', '*xxxxxxxxxx*', '--exclude', 'tree/longlink', '--exclude', '*données*'] : [];
    if (format === 'v7') extra.push('--exclude', 'tree/fifo', '--exclude', 'tree/chardev');
    const bytes = gnuTar(root, format, extra);
    const expected = (await tarStreamView(bytes)).map((e) => ({
      name: e.name,
      type: e.type === 'contiguous-file' ? 'file' : e.type,
      size: e.type === 'file' ? e.size : 0,
      linkname: e.type === 'link' || e.type === 'symlink' ? e.linkname : null,
      mode: e.mode,
    }));
    for (const size of [1, 7, 511, 512, 513, 65536, bytes.length]) {
      const got = (await readAll(bytes, size)).map((e) => ({
        name: e.header.name,
        type: e.header.type,
        size: e.header.size,
        linkname: e.header.linkname ?? null,
        mode: e.header.mode,
      }));
      assert.deepEqual(got, expected, `chunks of ${size}`);
    }
    const entries = await readAll(bytes);
    const big = entries.find((e) => e.header.name === 'tree/big.bin');
    assert.ok(big);
    assert.equal(big.data.length, 10_000);
    assert.ok(big.data.every((b) => b === 7));
    if (format === 'pax') {
      // Sub-second mtimes: all nine digits kept.
      const file = entries.find((e) => e.header.name === 'tree/sub/file.txt');
      assert.ok(file);
      assert.equal(file.header.mtimeText, '1700000000.123456789');
      assert.equal(file.header.mtime, 1700000000.123456789);
    }
    if (format === 'gnu' || format === 'oldgnu') {
      assert.ok(entries.some((e) => e.header.name === `tree/${'x'.repeat(120)}.txt`), 'GNU long name (L)');
      assert.ok(entries.some((e) => e.header.linkname === `${'t'.repeat(130)}/target`), 'GNU long link (K)');
    }
  });
}

test('base-256 uid and gid (GNU format) and PAX uid/gid over 2097151', async () => {
  const root = makeTree();
  for (const format of ['gnu', 'pax']) {
    const bytes = gnuTar(root, format, ['--owner=:3000000', '--group=:3100000']);
    for (const e of await readAll(bytes)) {
      assert.equal(e.header.uid, 3000000, `${format} ${e.header.name}`);
      assert.equal(e.header.gid, 3100000, `${format} ${e.header.name}`);
    }
  }
});

test('PAX xattr values are kept as raw bytes (a 0x80 byte survives)', async () => {
  const value = new Uint8Array([0x01, 0x00, 0x00, 0x02, 0x80, 0x20, 0x00, 0x00, 0xff, 0xfe, 0x00, 0x0a, 0x3d]);
  const bytes = archive([{ header: H({ name: 'ping', pax: { 'SCHILY.xattr.security.capability': value, 'SCHILY.xattr.user.t': 'text' } }) }]);
  const [e] = await readAll(bytes);
  assert.ok(e);
  assert.equal(hex(e.header.pax?.['SCHILY.xattr.security.capability']), hex(value));
  assert.equal(Buffer.from(e.header.pax?.['SCHILY.xattr.user.t'] as Uint8Array).toString(), 'text');
});

test('a capability set with setcap and archived by GNU tar comes back byte for byte', { skip: isRoot ? false : 'setcap needs root' }, async () => {
  const root = tmp();
  const d = path.join(root, 'tree');
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'ping'), 'x');
  execFileSync('setcap', ['cap_net_raw,cap_setuid+ep', path.join(d, 'ping')]);
  const bytes = gnuTar(root, 'pax', ['--xattrs', '--xattrs-include=*']);
  const ping = (await readAll(bytes)).find((e) => e.header.name === 'tree/ping');
  assert.ok(ping);
  // struct vfs_cap_data, revision 2, effective: cap_net_raw (13) and cap_setuid (7).
  assert.equal(hex(ping.header.pax?.['SCHILY.xattr.security.capability']), '0100000280200000000000000000000000000000');
});

test('field records are applied and never reported as extras; empty local values unset them', async () => {
  const paxBody = concat(
    [
      ['path', 'from/pax.txt'],
      ['uid', '5000000'],
      ['gid', '6'],
      ['uname', 'ünïcode'],
      ['gname', ''],
      ['mtime', '1700000000.500000000'],
      ['hdrcharset', 'ISO-IR 10646 2000 UTF-8'],
      ['atime', '1.25'],
      ['comment', 'kept'],
    ].map(([k, v]) => {
      const body = ` ${k}=${v}\n`;
      let len = Buffer.byteLength(body) + 1;
      while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
      return text(`${len}${body}`);
    }),
  );
  const main = encodeHeader(H({ name: 'short.txt', uname: 'field-user', gname: 'field-group', uid: 1, gid: 2 }));
  const x = encodeHeader(H({ name: 'PaxHeaders/x', size: paxBody.length }));
  // Hand-built: an x header whose typeflag we patch from '0' to 'x' (checksum recomputed).
  const xBlock = x.slice(0, 512);
  xBlock[156] = 'x'.charCodeAt(0);
  xBlock.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of xBlock) sum += b;
  xBlock.set(text(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
  const bytes = concat([xBlock, paxBody, new Uint8Array(paddingFor(paxBody.length)), main, END_OF_ARCHIVE]);
  const [e] = await readAll(bytes);
  assert.ok(e);
  assert.equal(e.header.name, 'from/pax.txt');
  assert.equal(e.header.uid, 5000000);
  assert.equal(e.header.gid, 6);
  assert.equal(e.header.uname, 'ünïcode');
  assert.equal(e.header.gname, 'field-group', 'an empty PAX value unsets the record: the field applies');
  assert.equal(e.header.mtime, 1700000000.5);
  assert.equal(e.header.mtimeText, undefined, 'the number reproduces the text: no exact text needed');
  assert.deepEqual(Object.keys(e.header.pax ?? {}).sort(), ['atime', 'comment']);
});

test('global PAX headers apply to every following entry, under local records', async () => {
  const rec = (k: string, v: string) => {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    return text(`${len}${body}`);
  };
  const ext = (flag: string, body: Uint8Array) => {
    const b = encodeHeader(H({ name: 'g', size: body.length })).slice(0, 512);
    b[156] = flag.charCodeAt(0);
    b.fill(0x20, 148, 156);
    let sum = 0;
    for (const x of b) sum += x;
    b.set(text(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
    return concat([b, body, new Uint8Array(paddingFor(body.length))]);
  };
  const bytes = concat([
    ext('g', concat([rec('uid', '7'), rec('comment', 'global')])),
    encodeHeader(H({ name: 'a' })),
    ext('x', rec('uid', '8')),
    encodeHeader(H({ name: 'b' })),
    END_OF_ARCHIVE,
  ]);
  const entries = await readAll(bytes);
  assert.deepEqual(entries.map((e) => [e.header.name, e.header.uid, Buffer.from(e.header.pax?.['comment'] as Uint8Array).toString()]), [
    ['a', 7, 'global'],
    ['b', 8, 'global'],
  ]);
});

test('GNU sparse files (old GNU and PAX formats) are reported as sparse with their real name and size', async () => {
  const root = tmp();
  sparseTree(root, 3 * 1024 * 1024, 'plain.txt', 'plain\n');
  for (const format of ['gnu', 'pax']) {
    const bytes = gnuTar(root, format, ['--sparse']);
    const entries = await readAll(bytes);
    const sparse = entries.find((e) => e.sparse);
    assert.ok(sparse, `${format}: a sparse entry`);
    assert.equal(sparse.header.name, 'tree/sparse.img');
    assert.equal(sparse.header.size, 3 * 1024 * 1024 + 3);
    assert.ok(sparse.storedSize < sparse.header.size);
    assert.equal(sparse.data.length, sparse.storedSize);
    const plain = entries.find((e) => e.header.name === 'tree/plain.txt');
    assert.equal(Buffer.from(plain?.data ?? []).toString(), 'plain\n', `${format}: the entry after the sparse one`);
  }
});

test('data not read is skipped; reading it after moving on is an error', async () => {
  const bytes = archive([
    { header: H({ name: 'a', size: 1000 }), data: new Uint8Array(1000).fill(1) },
    { header: H({ name: 'b', size: 3 }), data: text('bbb') },
  ]);
  const seen: TarEntry[] = [];
  for await (const e of readTar(chunked(bytes, 100))) seen.push(e);
  assert.deepEqual(seen.map((e) => e.header.name), ['a', 'b']);
  await assert.rejects(async () => {
    for await (const _ of (seen[0] as TarEntry).data) void _;
  }, /after the next entry/);
});

test('stopping early returns the input', async () => {
  let returned = false;
  const bytes = archive([{ header: H({ name: 'a' }) }, { header: H({ name: 'b' }) }]);
  async function* source() {
    try {
      yield bytes;
    } finally {
      returned = true;
    }
  }
  for await (const e of readTar(source())) {
    assert.equal(e.header.name, 'a');
    break;
  }
  assert.ok(returned);
});

test('an archive without its end marker, or with the marker cut short, is refused as truncated; trailing bytes after the marker are ignored', async () => {
  const one = encodeHeader(H({ name: 'a' }));
  for (const [what, bytes] of [
    ['no marker', one],
    ['one zero block', concat([one, new Uint8Array(512)])],
    ['marker cut by one byte', concat([one, new Uint8Array(1023)])],
  ] as const) {
    await assert.rejects(readAll(bytes), (e: unknown) => e instanceof TarReadError && /truncated archive/.test(e.message), what);
  }
  assert.deepEqual((await readAll(concat([one, END_OF_ARCHIVE]))).map((e) => e.header.name), ['a']);
  assert.deepEqual((await readAll(concat([one, END_OF_ARCHIVE, text('garbage')]))).map((e) => e.header.name), ['a']);
  assert.deepEqual(await readAll(END_OF_ARCHIVE), []);
  assert.deepEqual(await readAll(new Uint8Array(0)), []);
});

test('malformed input: clear TarReadErrors with offsets', async () => {
  const good = archive([{ header: H({ name: 'file', size: 600 }), data: new Uint8Array(600) }]);
  const cases: [string, Uint8Array, RegExp][] = [
    ['half a header', good.slice(0, 300), /truncated archive \(the input ends inside a header\)/],
    ['data cut short', good.slice(0, 512 + 100), /truncated archive \(the input ends inside the data of "file"\)/],
    ['padding cut short', good.slice(0, 512 + 600 + 10), /truncated archive/],
    ['not a tar', text('hello world, this is not a tar archive'.padEnd(512, '!')), /invalid tar header checksum/],
  ];
  const badChecksum = good.slice();
  badChecksum[0] = 'g'.charCodeAt(0);
  cases.push(['flipped byte', badChecksum, /invalid tar header checksum/]);
  const vol = encodeHeader(H({ name: 'label' })).slice();
  vol[156] = 'V'.charCodeAt(0);
  vol.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of vol) sum += b;
  vol.set(text(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
  cases.push(['volume header', concat([vol, END_OF_ARCHIVE]), /unsupported tar entry type "V" \(GNU volume header\)/]);
  const latin = encodeHeader(H({ name: 'caf_' })).slice();
  latin[3] = 0xe9; // "café" in latin-1
  latin.fill(0x20, 148, 156);
  sum = 0;
  for (const b of latin) sum += b;
  latin.set(text(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
  cases.push(['latin-1 name', concat([latin, END_OF_ARCHIVE]), /not valid UTF-8.*not supported/]);
  for (const [what, bytes, message] of cases) {
    await assert.rejects(readAll(bytes), (e: unknown) => {
      assert.ok(e instanceof TarReadError, `${what}: ${String(e)}`);
      assert.match(e.message, message, what);
      assert.ok(Number.isInteger(e.offset) && e.offset >= 0);
      return true;
    });
  }
});

test('extended headers over the limit are refused', async () => {
  const bytes = archive([{ header: H({ name: 'x', pax: { 'SCHILY.xattr.user.big': 'v'.repeat(5000) } }) }]);
  await assert.rejects(
    (async () => {
      for await (const e of readTar(chunked(bytes, 512), { maxExtendedHeaderBytes: 4096 })) void e;
    })(),
    /extended header of \d+ bytes is over the 4096-byte limit/,
  );
  // Several extended headers for one entry count together.
  const xHeader = (body: Uint8Array) => {
    const b = encodeHeader(H({ name: 'x', size: body.length })).slice(0, 512);
    b[156] = 'x'.charCodeAt(0);
    b.fill(0x20, 148, 156);
    let sum = 0;
    for (const v of b) sum += v;
    b.set(text(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
    return concat([b, body, new Uint8Array(paddingFor(body.length))]);
  };
  const record = (n: number) => {
    const body = ` comment=${'c'.repeat(n)}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    return text(`${len}${body}`);
  };
  const chained = concat([xHeader(record(3000)), xHeader(record(3000)), encodeHeader(H({ name: 'f' })), END_OF_ARCHIVE]);
  await assert.rejects(
    (async () => {
      for await (const e of readTar(chunked(chained, 512), { maxExtendedHeaderBytes: 4096 })) void e;
    })(),
    /extended headers of \d+ bytes for one entry are over the 4096-byte limit/,
  );
  assert.equal((await readAll(chained)).length, 1, 'within the default limit');
});

test('parsePaxRecords: exact lengths, values with newlines and "=", malformed records', () => {
  const rec = (k: string, v: string) => {
    const body = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(body) + 1;
    while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
    return text(`${len}${body}`);
  };
  const parsed = parsePaxRecords(concat([rec('a', 'x=y\nz'), rec('b', '')]));
  assert.deepEqual(parsed.map(([k, v]) => [k, Buffer.from(v).toString()]), [
    ['a', 'x=y\nz'],
    ['b', ''],
  ]);
  assert.throws(() => parsePaxRecords(text('5 a=b\n')), /malformed PAX record/);
  assert.throws(() => parsePaxRecords(text('x a=b\n')), /malformed PAX record/);
  assert.throws(() => parsePaxRecords(text('7 ab\nxx')), /malformed PAX record/);
});

test('GNU tar -tvf and this reader agree on names, sizes and owners of a real layer', { skip: spawnSync('tar', ['--version']).status === 0 ? false : 'no GNU tar' }, async () => {
  const root = makeTree();
  const bytes = gnuTar(root, 'pax');
  const file = path.join(root, 'layer.tar');
  fs.writeFileSync(file, bytes);
  const listed = execFileSync('tar', ['--numeric-owner', '--quoting-style=literal', '-tvf', file], { env: tarEnv, encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(/\s+/).slice(5).join(' ').replace(/ (->|link to) .*$/, ''));
  const ours = (await readAll(bytes)).map((e) => e.header.name);
  assert.deepEqual(ours, listed);
});

test('lenient: a missing end marker, a name that is not UTF-8 and an unknown type are listed; damage is still refused', async () => {
  /** One header block with byte `at` set to `value`, checksum recomputed. */
  const patched = (header: TarHeader, at: number, value: number) => {
    const b = encodeHeader(header).slice(0, 512);
    b[at] = value;
    b.fill(0x20, 148, 156);
    let sum = 0;
    for (const v of b) sum += v;
    b.set(text(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
    return b;
  };
  const lenientRead = async (bytes: Uint8Array) => {
    const out: { name: string; type: string; size: number; unknownType?: string }[] = [];
    for await (const e of readTar(chunked(bytes, 100), { lenient: true })) {
      out.push({ name: e.header.name, type: e.header.type, size: e.header.size, ...(e.unknownType !== undefined ? { unknownType: e.unknownType } : {}) });
    }
    return out;
  };
  const file = archive([{ header: H({ name: 'a', size: 3 }), data: text('abc') }]);
  const noMarker = file.subarray(0, file.length - 1024);
  const oneZero = file.subarray(0, file.length - 512);
  const strictFails = async (bytes: Uint8Array) => assert.rejects(readAll(bytes), TarReadError);
  await strictFails(noMarker);
  await strictFails(oneZero);
  assert.deepEqual(await lenientRead(noMarker), [{ name: 'a', type: 'file', size: 3 }]);
  assert.deepEqual(await lenientRead(oneZero), [{ name: 'a', type: 'file', size: 3 }]);

  // A vendor type with data: listed with its typeflag, its data skipped, the next entry read.
  const vendor = patched(H({ name: 'odd', size: 700 }), 156, 'Q'.charCodeAt(0));
  const after = archive([{ header: H({ name: 'next' }) }]);
  const withVendor = concat([vendor, new Uint8Array(700 + paddingFor(700)).fill(1), after]);
  await strictFails(withVendor);
  assert.deepEqual(await lenientRead(withVendor), [
    { name: 'odd', type: 'file', size: 700, unknownType: 'Q' },
    { name: 'next', type: 'file', size: 0 },
  ]);

  const latin = concat([patched(H({ name: 'caf_' }), 3, 0xe9), END_OF_ARCHIVE]);
  await strictFails(latin);
  assert.deepEqual(await lenientRead(latin), [{ name: 'caf\ufffd', type: 'file', size: 0 }]);

  for (const damaged of [file.slice(0, 300), file.slice(0, 512 + 2), (() => { const b = file.slice(); b[0] = 0x67; return b; })()]) {
    await assert.rejects(lenientRead(damaged), TarReadError);
  }
});
