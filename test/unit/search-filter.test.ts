/**
 * The search and inspect filters and their pieces (fnmatch globs, the tar entry reader,
 * the report formats), run through runPipeline over in-memory layers and a ledger-only
 * Effects: both filters must pass every element on unchanged and release nothing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import * as tarStream from 'tar-stream';
import type { Digest } from '../../src/core/digest.js';
import { type ConfigElement, type ImageElement, type LayerDescriptor, Forms, repositoryPath, tarOf as tarFormOf, wantsAny } from '../../src/core/element.js';
import { fnmatch } from '../../src/core/filters/glob.js';
import { createdSeconds, InspectFilter, inspectRecord, parseInspectOptions, pythonJsonDumps } from '../../src/core/filters/inspect.js';
import {
  formatSearchReport,
  parseSearchOptions,
  type ReadLayer,
  SearchFilter,
  type SearchReport,
  searchMatcher,
  searchReportJson,
  layerNameOf,
  tarEntries,
  type TarEntryInfo,
} from '../../src/core/filters/search.js';
import { encodeHeader, END_OF_ARCHIVE, paddingFor } from '../../src/core/tar/header.js';
import { TarReadError } from '../../src/core/tar/reader.js';
import type { TempFile } from '../../src/core/ownership.js';
import { runPipeline } from '../../src/core/pipeline/compose.js';
import type { ImageFilter, ImageInput, ImageOutput } from '../../src/core/pipeline/types.js';
import { LedgerEffects } from '../../src/core/ledger-effects.js';
import { diskFullOutput } from '../support/disk-full-output.js';

// ----------------------------------------------------------------- support


interface Entry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo' | 'character-device';
  data?: string;
  linkname?: string;
  mode?: number;
  mtime?: number;
  pax?: Record<string, string>;
}

async function tarOf(entries: readonly Entry[]): Promise<Uint8Array> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const header = {
        name: e.name,
        type: e.type ?? 'file',
        mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644),
        mtime: new Date((e.mtime ?? 1_700_000_000) * 1000),
        uid: 0,
        gid: 0,
        ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
        ...(e.pax ? { pax: e.pax } : {}),
      };
      if (e.data !== undefined) pack.entry(header, e.data, (err) => (err ? reject(err) : resolve()));
      else pack.entry(header, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  return new Uint8Array(Buffer.concat(chunks));
}

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

async function* chunked(bytes: Uint8Array, size = 700): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** An input that yields a config then the given layers (in `order`), files in memory. */
function memoryImage(layers: readonly (Uint8Array | 'duplicate-of-0')[], opts: { order?: number[]; history?: ConfigElement['config']['history'] } = {}) {
  const contents = new Map<number, Uint8Array>();
  const diffIds = layers.map((l) => sha(l === 'duplicate-of-0' ? (layers[0] as Uint8Array) : l));
  const descriptors: LayerDescriptor[] = diffIds.map((diffId, index) => ({ index, sourceId: `s${index}`, diffId, mediaType: 'application/vnd.oci.image.layer.v1.tar' }));
  const config: ConfigElement = {
    _tag: 'Config',
    image: { name: 'example.com:5000/team/app', tag: 'v2', registry: 'example.com:5000' },
    digest: sha(new Uint8Array([1])),
    raw: new TextEncoder().encode('{}'),
    config: { rootfs: { type: 'layers', diff_ids: diffIds }, ...(opts.history ? { history: opts.history } : {}) },
    layers: descriptors,
  };
  const produced: ImageElement[] = [];
  const input: ImageInput = {
    description: 'memory',
    async *elements(ctx) {
      produced.push(config);
      yield config;
      for (const i of opts.order ?? layers.map((_, i) => i)) {
        const l = layers[i] as Uint8Array | 'duplicate-of-0';
        const d = descriptors[i] as LayerDescriptor;
        let element: ImageElement;
        if (l === 'duplicate-of-0') element = { _tag: 'Layer', layer: d, payload: { _tag: 'Skipped', reason: 'duplicate' } };
        else if (!wantsAny(await ctx.wants(d))) element = { _tag: 'Layer', layer: d, payload: { _tag: 'Skipped', reason: 'present' } };
        else {
          const file = await ctx.effects.perform({ _tag: 'CreateTemp', owner: ctx.owner, purpose: `layer-${i}` });
          contents.set(file.id, l);
          element = { _tag: 'Layer', layer: d, payload: { _tag: 'Tar', tar: { file, size: l.length } } };
        }
        produced.push(element);
        yield element;
      }
    },
  };
  const reads: number[] = [];
  const read: ReadLayer = (file: TempFile) => {
    reads.push(file.id);
    const bytes = contents.get(file.id);
    if (!bytes) throw new Error(`no such memory file #${file.id}`);
    return chunked(bytes);
  };
  return { input, read, reads, produced, config, diffIds };
}

/** An output that records every element and releases each file it receives. */
function recordingOutput(wants: (l: LayerDescriptor) => boolean = () => true) {
  const received: ImageElement[] = [];
  const output: ImageOutput = {
    description: 'memory',
    order: 'manifest',
    wants: async (l) => (wants(l) ? Forms.tar : Forms.none),
    async consume(elements, ctx) {
      for await (const e of elements) {
        received.push(e);
        if (e._tag === 'Layer' && e.payload._tag === 'Tar') await ctx.effects.perform({ _tag: 'Release', file: tarFormOf(e.payload)!.file, owner: ctx.owner });
      }
      return { destination: 'memory', layers: received.length - 1, layersSkipped: 0, bytes: 0, copiedAcrossDevices: 0 };
    },
  };
  return { output, received };
}

async function run(input: ImageInput, filters: ImageFilter[], output: ImageOutput) {
  const effects = new LedgerEffects();
  await runPipeline({ input, filters, output, effects, parallelism: 2 });
  return effects;
}

// ------------------------------------------------------------------ fnmatch

describe('fnmatch (Python fnmatch.fnmatchcase semantics)', () => {
  // Expected values were produced by Python 3.11's fnmatch.fnmatchcase.
  const cases: [string, string, boolean][] = [
    ['*', 'a/b/c', true],
    ['*', '', true],
    ['*.txt', 'a/b.txt', true],
    ['a/*', 'a/b/c', true],
    ['?', '/', true],
    ['a?c', 'a/c', true],
    ['[abc]', 'b', true],
    ['[!abc]', 'd', true],
    ['[!abc]', 'a', false],
    ['[]]', ']', true],
    ['[!]]', 'a', true],
    ['[!]]', ']', false],
    ['[a-c]x', 'bx', true],
    ['[z-a]', 'z', false],
    ['[', '[', true],
    ['[ab', '[ab', true],
    ['a[', 'a[', true],
    ['*[*]', 'x*', true],
    ['*.py', 'x.pyc', false],
    ['**/.git/**', 'r/.git/config', true],
    ['**/.git/**', 'x/.git', false],
    ['bin/*sh', 'bin/bash', true],
    ['*bash', 'bin/bash', true],
    ['\\*', '\\x', true],
    ['a.b', 'axb', false],
    ['(a)', '(a)', true],
    ['[a-]', '-', true],
    ['[-a]', '-', true],
    ['[!]', '!', false],
    ['[!]', 'x', false],
    ['[]', 'x', false],
    ['x{1,2}', 'x{1,2}', true],
    ['hé*', 'héllo', true],
    ['?', '日', true],
    ['[^a]', '^', true],
    ['[^a]', 'b', false],
    ['a$', 'a$', true],
    ['*\n', 'x\n', true],
  ];
  for (const [pattern, name, expected] of cases) {
    test(`${JSON.stringify(pattern)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(name)}`, () => {
      assert.equal(fnmatch(name, pattern), expected);
    });
  }
  test('every pattern compiles (no error for odd input)', () => {
    for (const p of ['[', ']', '[]', '[!', '[\\]', '[a-\\]', '(', ')', '{', '}', '|', '+', '^', '$', '.', '\\', '/', '[[]', '[]-]']) {
      assert.doesNotThrow(() => fnmatch('x', p), p);
    }
  });
});

describe('searchMatcher', () => {
  const m = (pattern: string, regex = false) => {
    const r = searchMatcher({ pattern, regex });
    assert.ok(E.isRight(r));
    return r.right;
  };
  test('a glob matches the full path or the basename', () => {
    assert.equal(m('*bash')('bin/bash'), true);
    assert.equal(m('bash')('bin/bash'), true);
    assert.equal(m('bin/bash')('bin/bash'), true);
    assert.equal(m('in/bash')('bin/bash'), false);
    assert.equal(m('usr/*')('usr/lib/x/y.so'), true);
    assert.equal(m('*.so')('usr/lib/x/y.so'), true);
    assert.equal(m('lib')('usr/lib/x/y.so'), false);
  });
  test('a regex is searched anywhere in the path', () => {
    assert.equal(m('lib/x', true)('usr/lib/x/y.so'), true);
    assert.equal(m('^lib', true)('usr/lib/x/y.so'), false);
    assert.equal(m('\\.so$', true)('usr/lib/x/y.so'), true);
  });
  test('an invalid regex is a Left', () => {
    assert.ok(E.isLeft(searchMatcher({ pattern: '(', regex: true })));
  });
  test('regexes run on RE2: lookaround and backreferences are refused with the reason, JavaScript escapes work', () => {
    for (const pattern of ['(?=x)', '(?!x)', '(?<=x)y', '(?<!x)y', '(a)\\1', '(?<n>a)\\k<n>']) {
      const r = searchMatcher({ pattern, regex: true });
      assert.ok(E.isLeft(r), pattern);
      assert.match(r.left, /^invalid regular expression .*: .+ \(regular expressions use RE2 syntax \(linear time\): no lookahead, lookbehind or backreferences\)$/, pattern);
    }
    assert.equal(m('\\u0041\\u{42}', true)('xAB'), true);
    assert.equal(m('^[[:alpha:]]+$', true)('abc'), true);
    assert.equal(m('(?<word>\\w+)\\.so$', true)('usr/lib/libc.so'), true);
    // The pattern that needed kill -9 with a backtracking engine: answered at once.
    assert.equal(m('(a+)+$', true)(`${'a'.repeat(40)}!`), false);
    assert.equal(m('(a+)+$', true)(`x/${'a'.repeat(40)}`), true);
  });
});

describe('parseSearchOptions / parseInspectOptions', () => {
  test('search: pattern required; regex and script_friendly (or script-friendly) flags', () => {
    assert.deepEqual(parseSearchOptions({ pattern: '*.so' }), E.right({ pattern: '*.so', regex: false, scriptFriendly: false }));
    assert.deepEqual(parseSearchOptions({ pattern: 'x', regex: true, 'script-friendly': true }), E.right({ pattern: 'x', regex: true, scriptFriendly: true }));
    assert.deepEqual(parseSearchOptions({ pattern: 'x', script_friendly: 1 }), E.right({ pattern: 'x', regex: false, scriptFriendly: true }));
    assert.deepEqual(parseSearchOptions({ pattern: 12 }), E.right({ pattern: '12', regex: false, scriptFriendly: false }));
    assert.ok(E.isLeft(parseSearchOptions({})));
    assert.ok(E.isLeft(parseSearchOptions({ pattern: true })));
    assert.ok(E.isLeft(parseSearchOptions({ pattern: ['a', 'b'] })));
    assert.ok(E.isLeft(parseSearchOptions({ pattern: 'x', regex: 'maybe' })));
    assert.ok(E.isLeft(parseSearchOptions({ pattern: 'x', colour: true })));
    assert.ok(E.isLeft(parseSearchOptions({ pattern: '(', regex: true })));
  });
  test('inspect: file required', () => {
    assert.deepEqual(parseInspectOptions({ file: 'out.jsonl' }), E.right({ file: 'out.jsonl' }));
    assert.ok(E.isLeft(parseInspectOptions({})));
    assert.ok(E.isLeft(parseInspectOptions({ file: true })));
    assert.ok(E.isLeft(parseInspectOptions({ file: 'a', mode: 'w' })));
  });
});

// --------------------------------------------------------------- tarEntries

describe('tarEntries', () => {
  test('lists every entry with its type, size, mode and link target; directories lose the trailing /', async () => {
    const bytes = await tarOf([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hosts', data: 'x'.repeat(600), mode: 0o4755 },
      { name: 'etc/link', type: 'symlink', linkname: 'hosts' },
      { name: 'etc/hard', type: 'link', linkname: 'etc/hosts' },
      { name: 'dev/null', type: 'character-device' },
      { name: 'run/fifo', type: 'fifo' },
      { name: `deep/${'d'.repeat(120)}/ünïcødé.txt`, data: 'y' },
    ]);
    const entries = await collect(tarEntries(chunked(bytes, 333)));
    assert.deepEqual(
      entries.map((e) => [e.path, e.kind, e.size, e.linkname]),
      [
        ['etc', 'directory', 0, undefined],
        ['etc/hosts', 'file', 600, undefined],
        ['etc/link', 'symlink', 0, 'hosts'],
        ['etc/hard', 'hardlink', 0, 'etc/hosts'],
        ['dev/null', 'character device', 0, undefined],
        ['run/fifo', 'fifo', 0, undefined],
        [`deep/${'d'.repeat(120)}/ünïcødé.txt`, 'file', 1, undefined],
      ],
    );
    assert.equal((entries[1] as TarEntryInfo).mode, 0o4755);
    assert.equal((entries[1] as TarEntryInfo).mtime, 1_700_000_000);
  });
  test('a PAX mtime record wins over the header (negative and fractional times survive)', async () => {
    const bytes = await tarOf([{ name: 'old', data: '', pax: { mtime: '-86400.5' } }]);
    const [e] = await collect(tarEntries(chunked(bytes)));
    assert.equal(e?.mtime, -86400.5);
  });
  test('an empty stream, garbage and a truncated tar are TarReadErrors (the tar reader\'s error)', async () => {
    await assert.rejects(collect(tarEntries(chunked(new Uint8Array()))), (e: unknown) => e instanceof TarReadError && /empty/.test(e.message));
    const garbage = new Uint8Array(2048).map((_, i) => (i * 7 + 3) % 251);
    await assert.rejects(collect(tarEntries(chunked(garbage))), TarReadError);
    const good = await tarOf([{ name: 'a', data: 'z'.repeat(5000) }]);
    await assert.rejects(collect(tarEntries(chunked(good.subarray(0, 1500)))), TarReadError);
  });
  test('listed as Python\'s tarfile lists them: no end marker, a vendor entry type (unknown), a block device, a GNU sparse file', async () => {
    const text = new TextEncoder();
    const block = (name: string, typeflag: string, size = 0, patch: (b: Uint8Array) => void = () => undefined) => {
      const b = encodeHeader({ name, type: 'file', size, mode: 0o644, uid: 0, gid: 0, mtime: 0 }).slice(0, 512);
      b[156] = typeflag.charCodeAt(0);
      patch(b);
      b.fill(0x20, 148, 156);
      let sum = 0;
      for (const v of b) sum += v;
      b.set(text.encode(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
      return b;
    };
    const data = (n: number) => new Uint8Array(n + paddingFor(n));
    // Old GNU sparse: GNU magic, real size at 483 (here 10 bytes of data stand for 10).
    const sparse = block('holes', 'S', 10, (b) => {
      b.set(text.encode('ustar  \0'), 257);
      b.set(text.encode('00000000012\0'), 483);
    });
    const bytes = Buffer.concat([block('odd', 'Q', 5), data(5), block('dev/sda', '4'), sparse, data(10)]); // no end marker
    assert.deepEqual(
      (await collect(tarEntries(chunked(bytes, 97)))).map((e) => [e.path, e.kind]),
      [
        ['odd', 'unknown'],
        ['dev/sda', 'block device'],
        ['holes', 'file'],
      ],
    );
  });
  test('a huge entry streams: its header is listed before its data is read, and the data is then skipped chunk by chunk', async () => {
    const size = 256 * 1024 * 1024;
    const header = encodeHeader({ name: 'big.bin', type: 'file', size, mode: 0o644, uid: 0, gid: 0, mtime: 0 });
    const tail = encodeHeader({ name: 'after', type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: 0 });
    const chunk = new Uint8Array(1024 * 1024);
    let pulled = 0;
    async function* source() {
      yield header;
      for (let i = 0; i < size / chunk.length; i++) {
        pulled++;
        yield chunk;
      }
      yield tail;
      yield END_OF_ARCHIVE;
    }
    const seen: [string, number][] = [];
    for await (const e of tarEntries(source())) seen.push([e.path, pulled]);
    assert.deepEqual(seen, [
      ['big.bin', 0],
      ['after', size / chunk.length],
    ]);
  });
  test('an error of the byte source is raised as is', async () => {
    const boom = new Error('disk on fire');
    async function* failing() {
      yield new Uint8Array(512);
      throw boom;
    }
    await assert.rejects(collect(tarEntries(failing())), (e: unknown) => e === boom);
  });
  test('returning early stops reading the source', async () => {
    const bytes = await tarOf(Array.from({ length: 50 }, (_, i) => ({ name: `f${i}`, data: 'q'.repeat(1000) })));
    let pulled = 0;
    let closed = false;
    async function* source() {
      try {
        for await (const c of chunked(bytes, 512)) {
          pulled++;
          yield c;
        }
      } finally {
        closed = true;
      }
    }
    for await (const e of tarEntries(source())) {
      if (e.path === 'f1') break;
    }
    assert.ok(closed, 'the source was closed');
    assert.ok(pulled < bytes.length / 512, `read ${pulled} chunks, fewer than all`);
  });
});

// -------------------------------------------------------------- search filter

describe('SearchFilter', () => {
  test('passes every element on unchanged (same objects), releases nothing itself, and reports matches per layer in manifest order', async () => {
    const l0 = await tarOf([{ name: 'bin/', type: 'directory' }, { name: 'bin/bash', data: 'ELF' }, { name: 'bin/sh', type: 'symlink', linkname: 'bash' }]);
    const l1 = await tarOf([{ name: 'usr/bin/zsh', data: 'ELF2!' }, { name: 'etc/shells', data: '' }]);
    const img = memoryImage([l0, l1, 'duplicate-of-0'], { order: [1, 0, 2] });
    let report: SearchReport | undefined;
    const { output, received } = recordingOutput();
    const effects = await run(img.input, [new SearchFilter({ pattern: '*sh', read: img.read, report: (r) => void (report = r) })], output);
    assert.deepEqual(received.map((e) => (e._tag === 'Config' ? -1 : e.layer.index)), [-1, 0, 1, 2]);
    for (const e of received) assert.ok(img.produced.includes(e), 'the very same element object');
    assert.equal(effects.ledger.liveCount(), 0);
    assert.deepEqual(
      effects.ledger.all().map((e) => e.state),
      [1, 2].map(() => ({ _tag: 'Released', by: 'output' })),
      'every file was released by the output, none by the filter',
    );
    assert.deepEqual(img.reads.length, 2, 'each distinct layer read once');
    assert.ok(report);
    assert.equal(report.layersSearched, 2);
    assert.deepEqual(
      report.layers.map((l) => [l.index, l.matches.map((m) => m.path)]),
      [
        [0, ['bin/bash', 'bin/sh']],
        [1, ['usr/bin/zsh']],
      ],
    );
    // Layers are named by the input's name for them (sourceId), the image without its registry host.
    assert.equal(
      formatSearchReport(report, false),
      `Layer: s0\n  bin/bash (file, 3 bytes)\n  bin/sh -> bash (symlink)\n\nLayer: s1\n  usr/bin/zsh (file, 5 bytes)\n\nFound 3 matches in 2 layers.\n`,
    );
    assert.equal(formatSearchReport(report, true), `team/app:v2:s0:bin/bash\nteam/app:v2:s0:bin/sh\nteam/app:v2:s1:usr/bin/zsh\n`);
    const json = searchReportJson(report) as { image: string; matches: { layer: string; diffId: string; path: string; type: string; linkname?: string }[] };
    assert.equal(json.image, 'example.com:5000/team/app', 'the JSON keeps the full name');
    assert.deepEqual(
      json.matches.map((m) => [m.layer, m.diffId, m.path, m.type, m.linkname]),
      [
        ['s0', img.diffIds[0], 'bin/bash', 'file', undefined],
        ['s0', img.diffIds[0], 'bin/sh', 'symlink', 'bash'],
        ['s1', img.diffIds[1], 'usr/bin/zsh', 'file', undefined],
      ],
    );
  });

  test('search reads every layer, and passes a layer the output has on as Skipped: present (its file released)', async () => {
    const l0 = await tarOf([{ name: 'a.txt', data: 'a' }]);
    const img = memoryImage([l0]);
    let report: SearchReport | undefined;
    const { output, received } = recordingOutput(() => false);
    await run(img.input, [new SearchFilter({ pattern: '*.txt', read: img.read, report: (r) => void (report = r) })], output);
    assert.equal(report?.layers.length, 1);
    assert.deepEqual((received[1] as { payload: unknown }).payload, { _tag: 'Skipped', reason: 'present' });
    assert.equal(img.reads.length, 1, 'the layer was read by the search');
  });

  test('names: a layer without a source name is named by its diff_id hex; only a registry host is taken off the image name', () => {
    const diffId = `sha256:${'d'.repeat(64)}` as Digest;
    assert.equal(layerNameOf({ sourceId: 'abc123', diffId }), 'abc123');
    assert.equal(layerNameOf({ sourceId: '', diffId }), 'd'.repeat(64));
    assert.equal(repositoryPath({ name: '127.0.0.1:5100/fixtures/small', tag: 'latest', registry: '127.0.0.1:5100' }), 'fixtures/small');
    assert.equal(repositoryPath({ name: 'docker.io/library/sample', tag: 'v1' }), 'docker.io/library/sample', 'a RepoTags name is printed as it stands');
    assert.equal(repositoryPath({ name: 'unknown', tag: 'unknown' }), 'unknown');
  });

  test('singular wording, no-match wording, and silence in script-friendly mode', () => {
    const image = { name: 'x', tag: 'y' };
    const entry: TarEntryInfo = { path: 'dev/tty', kind: 'character device', size: 0, mode: 0o666, uid: 0, gid: 0, mtime: 0 };
    const one: SearchReport = { image, layers: [{ index: 0, name: 'a'.repeat(64), diffId: `sha256:${'a'.repeat(64)}` as Digest, matches: [{ path: 'dev/tty', entry }] }], layersSearched: 1, unreadable: [] };
    assert.equal(formatSearchReport(one, false), `Layer: ${'a'.repeat(64)}\n  dev/tty (character device)\n\nFound 1 match in 1 layer.\n`);
    const none: SearchReport = { image, layers: [], layersSearched: 3, unreadable: [] };
    assert.equal(formatSearchReport(none, false), 'No matches found.\n');
    assert.equal(formatSearchReport(none, true), '');
  });

  test('input-derived fields are escaped, so a path with a line break cannot fake a report line', () => {
    const image = { name: 'img\nLayer: fake', tag: 't\x1b[2J' };
    const hex = 'b'.repeat(64);
    const forged = `evil\n  etc/shadow (file, 0 bytes)\nFound 0 matches in 0 layers.`;
    const file: TarEntryInfo = { path: forged, kind: 'file', size: 1, mode: 0o644, uid: 0, gid: 0, mtime: 0 };
    const link: TarEntryInfo = { path: 'l\r', kind: 'symlink', size: 0, mode: 0o777, uid: 0, gid: 0, mtime: 0, linkname: 'x\n\u202e' };
    const report: SearchReport = {
      image,
      layers: [{ index: 0, name: hex, diffId: `sha256:${hex}` as Digest, matches: [{ path: forged, entry: file }, { path: 'l\r', entry: link }] }],
      layersSearched: 1,
      unreadable: [],
    };
    const human = formatSearchReport(report, false);
    assert.deepEqual(human.split('\n'), [
      `Layer: ${hex}`,
      '  evil\\n  etc/shadow (file, 0 bytes)\\nFound 0 matches in 0 layers. (file, 1 bytes)',
      '  l\\r -> x\\n\\u{202e} (symlink)',
      '',
      'Found 2 matches in 1 layer.',
      '',
    ]);
    const script = formatSearchReport(report, true);
    assert.deepEqual(script.split('\n'), [
      `img\\nLayer: fake:t\\x1b[2J:${hex}:evil\\n  etc/shadow (file, 0 bytes)\\nFound 0 matches in 0 layers.`,
      `img\\nLayer: fake:t\\x1b[2J:${hex}:l\\r`,
      '',
    ]);
  });

  test('a layer that is not a tar is reported and skipped; the element still passes', async () => {
    const good = await tarOf([{ name: 'ok.txt', data: 'fine' }]);
    const bad = new Uint8Array(1536).fill(7);
    const img = memoryImage([bad, good]);
    const warnings: string[] = [];
    let report: SearchReport | undefined;
    const { output, received } = recordingOutput();
    await run(img.input, [new SearchFilter({ pattern: '*', read: img.read, report: (r) => void (report = r), warn: (m) => warnings.push(m) })], output);
    assert.equal(received.length, 3);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] as string, /layer 0 .* is not a readable tar/);
    assert.deepEqual(report?.unreadable.map((u) => u.index), [0]);
    assert.deepEqual(report?.layers.map((l) => l.matches.map((m) => m.path)), [['ok.txt']]);
  });

  test('no report when the run fails', async () => {
    const l0 = await tarOf([{ name: 'a', data: 'a' }]);
    const img = memoryImage([l0, l0]);
    let reported = false;
    const effects = new LedgerEffects();
    await assert.rejects(
      runPipeline({ input: img.input, filters: [new SearchFilter({ pattern: '*', read: img.read, report: () => void (reported = true) })], output: diskFullOutput('completion'), effects }),
      /disk full/,
    );
    assert.equal(reported, false);
  });
});

// -------------------------------------------------------------- inspect filter

describe('InspectFilter', () => {
  const history = [
    { created: '2024-01-02T03:04:05Z', created_by: 'base' },
    { created: '2024-01-02T03:04:06Z', created_by: 'ENV X=1', empty_layer: true },
    { created: '2024-01-02T03:04:07.999999999Z', created_by: 'app', comment: 'bü' },
    { created_by: 'no date' },
  ];

  test('one line per image: layers newest first, sizes, history paired with non-empty entries, Tags on the newest', async () => {
    const l0 = await tarOf([{ name: 'a', data: 'a' }]);
    const l1 = await tarOf([{ name: 'b', data: 'b'.repeat(3000) }]);
    const img = memoryImage([l0, l1, 'duplicate-of-0'], { order: [2, 1, 0], history });
    const lines: string[] = [];
    const { output, received } = recordingOutput();
    await run(img.input, [new InspectFilter({ sink: async (line) => void lines.push(line) })], output);
    assert.equal(received.length, 4);
    assert.equal(lines.length, 1);
    const record = JSON.parse(lines[0] as string) as { name: string; layers: { Id: string; Size: number; Created: number; CreatedBy: string; Comment: string; Tags: string[] | null }[] };
    assert.equal(record.name, 'example.com:5000/team/app:v2');
    assert.deepEqual(
      record.layers.map((l) => [l.Id, l.Size, l.Created, l.CreatedBy, l.Comment, l.Tags]),
      [
        [img.diffIds[2], l0.length, 0, 'no date', '', ['example.com:5000/team/app:v2']],
        [img.diffIds[1], l1.length, 1704164647, 'app', 'bü', null],
        [img.diffIds[0], l0.length, 1704164645, 'base', '', null],
      ],
    );
    // Python json.dumps(sort_keys=True) formatting.
    assert.match(lines[0] as string, /^\{"layers": \[\{"Comment": "", "Created": 0, "CreatedBy": "no date", "Id": "sha256:[0-9a-f]{64}", "Size": \d+, "Tags": \["example.com:5000\/team\/app:v2"\]\}, /);
    assert.ok((lines[0] as string).includes('"Comment": "b\\u00fc"'));
    assert.ok((lines[0] as string).endsWith('], "name": "example.com:5000/team/app:v2"}'));
  });

  test('a layer the output already had counts 0 bytes (nothing was delivered)', async () => {
    const l0 = await tarOf([{ name: 'a', data: 'a' }]);
    const l1 = await tarOf([{ name: 'b', data: 'b' }]);
    const img = memoryImage([l0, l1]);
    const lines: string[] = [];
    const { output } = recordingOutput((l) => l.index !== 0);
    await run(img.input, [new InspectFilter({ sink: async (line) => void lines.push(line) })], output);
    const record = JSON.parse(lines[0] as string) as { layers: { Size: number }[] };
    assert.deepEqual(record.layers.map((l) => l.Size), [l1.length, 0]);
  });

  test('an image without a name is unknown:unknown and gets no Tags', () => {
    const config = {
      _tag: 'Config',
      image: { name: 'unknown', tag: 'unknown' },
      digest: `sha256:${'1'.repeat(64)}`,
      raw: new Uint8Array(),
      config: { rootfs: { type: 'layers', diff_ids: [] } },
      layers: [],
    } as unknown as ConfigElement;
    const r = inspectRecord(config, [{ index: 0, diffId: `sha256:${'2'.repeat(64)}` as Digest, size: 5, duplicate: false }]);
    assert.equal(r.name, 'unknown:unknown');
    assert.equal(r.layers[0]?.Tags, null);
  });

  test('createdSeconds: ISO forms, offsets, numbers, junk', () => {
    assert.equal(createdSeconds('2024-01-02T03:04:05Z'), 1704164645);
    assert.equal(createdSeconds('2024-01-02T03:04:05.9Z'), 1704164645);
    assert.equal(createdSeconds('2024-01-02T05:04:05+02:00'), 1704164645);
    assert.equal(createdSeconds('2024-01-02T03:04:05'), 1704164645, 'no offset = UTC');
    assert.equal(createdSeconds('2024-01-02 03:04:05z'), 1704164645);
    assert.equal(createdSeconds('2024-01-02'), 1704153600);
    assert.equal(createdSeconds(1704164645.7), 1704164645);
    assert.equal(createdSeconds('Tue Jan 2 2024'), 0);
    assert.equal(createdSeconds(''), 0);
    assert.equal(createdSeconds(undefined), 0);
    assert.equal(createdSeconds('1969-12-31T23:59:59Z'), -1);
  });

  test('pythonJsonDumps matches json.dumps(sort_keys=True)', () => {
    assert.equal(pythonJsonDumps({ b: [1, 'x', null, true], a: { d: '日\n"', c: 1.5 } }), '{"a": {"c": 1.5, "d": "\\u65e5\\n\\""}, "b": [1, "x", null, true]}');
    assert.equal(pythonJsonDumps('😀'), '"\\ud83d\\ude00"');
    assert.equal(pythonJsonDumps({}), '{}');
  });
});
