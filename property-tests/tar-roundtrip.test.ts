/**
 * Properties of the tar encoder (src/core/tar/header.ts), reader (reader.ts) and rewrite
 * (rewrite.ts), over headers generated from the same field description the encoder uses
 * (src/core/tar/fields.ts): values are drawn around each field's limits, so both the
 * USTAR and the PAX paths of every field are exercised.
 *
 * - decode(encode(h)) == h, for every header (sizes up to 2^40 and beyond 8 GiB: the
 *   header is decoded without its data);
 * - rewriteTar with the identity transform gives back, byte for byte, an archive our
 *   encoder wrote, however the input is chunked (idempotence);
 * - GNU tar (`tar --xattrs -tvf`) and tar-stream read every archive of a sample.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import * as tarStream from 'tar-stream';
import { isReservedPaxKey, MAX_OCTAL_11, MAX_OCTAL_7, octalMax, TYPEFLAGS, USTAR_FIELDS } from '../src/core/tar/fields.js';
import { encodeHeader, END_OF_ARCHIVE, paddingFor, type TarEntryType, type TarHeader } from '../src/core/tar/header.js';
import { parsePaxTime, readTar } from '../src/core/tar/reader.js';
import { rewriteTar, sameHeader } from '../src/core/tar/rewrite.js';
import { concatBytes as concat } from '../src/core/bytes.js';

const enc = new TextEncoder();
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'occystrap-tar-props-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

// ---------------------------------------------------------------- arbitraries

/** Values near a limit: 0, small, limit-1, limit, limit+1, and far beyond, up to `max`. */
function around(limit: number, max: number): fc.Arbitrary<number> {
  return fc.oneof(
    fc.integer({ min: 0, max: 1000 }),
    fc.constantFrom(...[limit - 1, limit, limit + 1].filter((n) => n >= 0 && n <= max)),
    fc.integer({ min: Math.max(0, limit - 5), max: Math.min(max, limit + 5) }),
    fc.integer({ min: 0, max }),
  );
}

const asciiUnit = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCXYZ0123456789._-+@ ~'.split(''));
const wideUnit = fc.constantFrom('é', 'ü', 'ß', '日', '本', 'ファ', '–', '😀');
/** One path component: ASCII mostly, sometimes non-ASCII; never empty, `.` or `..`. */
const segment = (maxLength: number) =>
  fc
    .array(fc.oneof({ arbitrary: asciiUnit, weight: 6 }, { arbitrary: wideUnit, weight: 1 }), { minLength: 1, maxLength })
    .map((u) => u.join(''))
    .filter((s) => s !== '.' && s !== '..');
/** Paths around the USTAR limits: short, prefix/name splits, over 256 bytes, long basenames. */
const pathArb: fc.Arbitrary<string> = fc.oneof(
  fc.array(segment(12), { minLength: 1, maxLength: 4 }).map((s) => s.join('/')),
  fc.array(segment(60), { minLength: 1, maxLength: 6 }).map((s) => s.join('/')),
  fc.tuple(segment(USTAR_FIELDS.prefix.length), segment(USTAR_FIELDS.name.length + 20)).map(([a, b]) => `${a}/${b}`),
  fc.array(segment(40), { minLength: 5, maxLength: 12 }).map((s) => s.join('/')),
);
const textArb = (limit: number) => fc.oneof(fc.constant(''), fc.array(asciiUnit, { maxLength: limit + 4 }).map((u) => u.join('')), segment(limit + 4));

/** mtimes: USTAR-sized integers, and PAX ones (negative, fractional with up to 9 decimals, huge). */
const mtimeArb: fc.Arbitrary<{ mtime: number; mtimeText?: string }> = fc.oneof(
  around(MAX_OCTAL_11, MAX_OCTAL_11 * 4).map((mtime) => ({ mtime })),
  fc.integer({ min: -(2 ** 40), max: -1 }).map((mtime) => ({ mtime })),
  fc
    .tuple(fc.boolean(), fc.integer({ min: 0, max: 2 ** 36 }), fc.integer({ min: 0, max: 999_999_999 }), fc.integer({ min: 1, max: 9 }))
    .map(([neg, s, ns, digits]) => parsePaxTime(`${neg ? '-' : ''}${s}.${String(ns).padStart(9, '0').slice(0, digits)}`) as { mtime: number; mtimeText?: string }),
);

/** Extra records: xattrs and vendor records with arbitrary bytes; atime/ctime with PAX times (as readers require). */
const paxKeyArb = fc
  .tuple(fc.constantFrom('SCHILY.xattr.user.', 'SCHILY.xattr.security.', 'SCHILY.xattr.trusted.', 'LIBARCHIVE.', 'comment'), fc.array(asciiUnit, { maxLength: 12 }))
  .map(([p, s]) => `${p}${s.join('').replace(/[= ]/g, '_')}`)
  .filter((k) => !isReservedPaxKey(k) && k !== '');
const paxTimeBytes = fc
  .tuple(fc.integer({ min: 0, max: 2 ** 34 }), fc.integer({ min: 0, max: 999_999_999 }))
  .map(([s, ns]) => enc.encode(`${s}.${String(ns).padStart(9, '0')}`));
const paxArb = fc
  .tuple(fc.dictionary(paxKeyArb, fc.uint8Array({ maxLength: 300 }), { maxKeys: 3 }), fc.option(paxTimeBytes), fc.option(paxTimeBytes))
  .map(([extra, atime, ctime]) => ({ ...extra, ...(atime ? { atime } : {}), ...(ctime ? { ctime } : {}) }));

const types = Object.keys(TYPEFLAGS) as TarEntryType[];

/** A header in the reader's canonical form, with `size` up to `maxSize` for files. */
function headerArb(maxSize: number): fc.Arbitrary<TarHeader> {
  return fc
    .record({
      name: pathArb,
      type: fc.constantFrom(...types),
      size: around(Math.min(MAX_OCTAL_11, maxSize), maxSize),
      mode: around(octalMax(USTAR_FIELDS.mode), MAX_OCTAL_7),
      uid: around(MAX_OCTAL_7, 2 ** 31),
      gid: around(MAX_OCTAL_7, 2 ** 31),
      time: mtimeArb,
      linkname: fc.oneof(pathArb, fc.constant('')),
      uname: textArb(USTAR_FIELDS.uname.length),
      gname: textArb(USTAR_FIELDS.gname.length),
      devmajor: around(4095, MAX_OCTAL_7),
      devminor: around(MAX_OCTAL_7, MAX_OCTAL_7),
      pax: paxArb,
    })
    .map((r) => {
      const isLink = r.type === 'link' || r.type === 'symlink';
      const isDevice = r.type === 'character-device' || r.type === 'block-device';
      const h: TarHeader = {
        name: r.name,
        type: r.type,
        size: r.type === 'file' ? r.size : 0,
        mode: r.mode,
        uid: r.uid,
        gid: r.gid,
        ...r.time,
        ...(isLink ? { linkname: r.linkname } : {}),
        uname: r.uname,
        gname: r.gname,
        ...(isDevice ? { devmajor: r.devmajor, devminor: r.devminor } : {}),
        ...(Object.keys(r.pax).length > 0 ? { pax: r.pax } : {}),
      };
      return h;
    });
}

// ------------------------------------------------------------------ helpers


async function* chunks(bytes: Uint8Array, sizes: readonly number[]): AsyncGenerator<Uint8Array> {
  let o = 0;
  let i = 0;
  while (o < bytes.length) {
    const n = Math.max(1, sizes[i++ % sizes.length] as number);
    yield bytes.slice(o, o + n);
    o += n;
  }
}

/** The first entry's header of `bytes`, without reading its data. */
async function decodeFirst(bytes: Uint8Array): Promise<TarHeader> {
  for await (const e of readTar(chunks(bytes, [bytes.length]))) return e.header;
  throw new Error('no entry');
}

const describe = (h: TarHeader) => JSON.stringify(h, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));

interface Entry {
  readonly header: TarHeader;
  readonly data: Uint8Array;
}
const entriesArb = fc
  .array(
    headerArb(3000).chain((h) => fc.uint8Array({ minLength: h.size, maxLength: h.size }).map((data): Entry => ({ header: h, data }))),
    { maxLength: 6 },
  );

function archive(entries: readonly Entry[]): Uint8Array {
  return concat([...entries.flatMap(({ header, data }) => [encodeHeader(header), data, new Uint8Array(paddingFor(data.length))]), END_OF_ARCHIVE]);
}

// ---------------------------------------------------------------- properties

test('decode(encode(h)) == h for arbitrary headers (sizes beyond 8 GiB included, data not read)', async () => {
  let pax = 0;
  await fc.assert(
    fc.asyncProperty(headerArb(2 ** 40), async (h) => {
      const encoded = encodeHeader(h);
      if (encoded.length > 512) pax++;
      const back = await decodeFirst(encoded);
      assert.ok(sameHeader(back, h), `encoded ${describe(h)}\ndecoded ${describe(back)}`);
      assert.equal(encoded.length % 512, 0);
    }),
    { numRuns: 4000 },
  );
  assert.ok(pax > 800, `PAX path exercised only ${pax} times`);
});

test('rewriteTar(identity) gives back an archive our encoder wrote, byte for byte, however it is chunked', async () => {
  await fc.assert(
    fc.asyncProperty(entriesArb, fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 5 }), async (entries, sizes) => {
      const input = archive(entries);
      const parts: Uint8Array[] = [];
      for await (const c of rewriteTar(chunks(input, sizes), (x) => x)) parts.push(c.slice());
      const output = concat(parts);
      assert.equal(output.length, input.length);
      assert.ok(Buffer.from(output).equals(Buffer.from(input)), 'byte-identical');
    }),
    { numRuns: 1000 },
  );
});

const gnuTar = spawnSync('tar', ['--version'], { encoding: 'utf8' });
const haveGnuTar = gnuTar.status === 0 && /GNU tar/.test(gnuTar.stdout);

test('GNU tar and tar-stream read every archive of a sample', { skip: haveGnuTar ? false : 'GNU tar is not installed' }, async () => {
  let n = 0;
  await fc.assert(
    fc.asyncProperty(entriesArb.filter((e) => e.length > 0), async (entries) => {
      const bytes = archive(entries);
      const file = path.join(tmpRoot, `sample-${n++}.tar`);
      fs.writeFileSync(file, bytes);
      const r = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--quoting-style=literal', '-tvf', file], {
        encoding: 'utf8',
        env: { ...process.env, LC_ALL: 'C.UTF-8', TZ: 'UTC' },
      });
      assert.equal(r.status, 0, `GNU tar failed: ${r.stderr}\n${entries.map((e) => describe(e.header)).join('\n')}`);
      assert.equal(r.stdout.split('\n').filter(Boolean).length, entries.length, r.stdout);
      // tar-stream: every entry, every name, every size.
      const extract = tarStream.extract();
      const seen: { name: string; size: number }[] = [];
      const reading = (async () => {
        for await (const e of extract) {
          let size = 0;
          for await (const c of e) size += (c as Buffer).length;
          seen.push({ name: e.header.name, size });
        }
      })();
      extract.end(Buffer.from(bytes));
      await reading;
      assert.deepEqual(
        seen,
        entries.map((e) => ({ name: e.header.name, size: e.data.length })),
      );
      fs.rmSync(file);
    }),
    { numRuns: 80, endOnFailure: true },
  );
});

test('the PAX path is chosen exactly when a field cannot hold its value', () => {
  // Spot checks at each limit of the field description.
  const base: TarHeader = { name: 'f', type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: 0, uname: '', gname: '' };
  const size = (h: TarHeader) => encodeHeader(h).length;
  assert.equal(size({ ...base, uid: MAX_OCTAL_7 }), 512);
  assert.ok(size({ ...base, uid: MAX_OCTAL_7 + 1 }) > 512);
  assert.equal(size({ ...base, mtime: MAX_OCTAL_11 }), 512);
  assert.ok(size({ ...base, mtime: MAX_OCTAL_11 + 1 }) > 512);
  assert.equal(size({ ...base, name: 'n'.repeat(USTAR_FIELDS.name.length) }), 512);
  assert.ok(size({ ...base, name: 'n'.repeat(USTAR_FIELDS.name.length + 1) }) > 512);
  assert.equal(size({ ...base, uname: 'u'.repeat(USTAR_FIELDS.uname.length) }), 512);
  assert.ok(size({ ...base, uname: 'u'.repeat(USTAR_FIELDS.uname.length + 1) }) > 512);
  assert.ok(size({ ...base, pax: { 'SCHILY.xattr.user.a': enc.encode('') } }) > 512);
});
