// `occystrap check` with the real CLI: every valid fixture passes in both modes; corrupt
// archives fail with error results (exit 1), not a crash; crafted layers trigger the
// per-entry checks (setuid + world-writable, whiteouts, negative times, invalid tar).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tarStream from 'tar-stream';
import { cleanupTmpDirs, fixture, fixtureIndex, fixturePath, tmpDir, VALID_ARCHIVES } from './fixtures.js';
import { assertOneErrorLine, errorLines, imageConfig, listDir, makeBigArchive, occystrap } from './cli-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});

const VALID = [
  ...VALID_ARCHIVES,
  // Built by test/fixtures/make-filter-fixtures.mjs (capability xattr, uid 3000000, GNU and PAX layers, whiteouts).
  'filters-sample.tar',
];

interface CheckJson {
  image: string;
  tag: string;
  mode: 'fast' | 'full';
  errors: number;
  warnings: number;
  results: { severity: 'error' | 'warning' | 'info'; check: string; message: string }[];
}

function parseJson(stdout: string): CheckJson {
  return JSON.parse(stdout) as CheckJson;
}

const COMPLETE = /^Check complete \((fast \(metadata only\)|full)\): (\d+) error\(s\), (\d+) warning\(s\)$/;

/** The last line of a text report, parsed. */
function completeLine(stdout: string): { mode: string; errors: number; warnings: number } {
  const lines = stdout.split('\n').filter((l) => l !== '');
  const m = COMPLETE.exec(lines[lines.length - 1] ?? '');
  assert.ok(m, `the report ends with the Check complete line: ${JSON.stringify(stdout.slice(-200))}`);
  return { mode: m[1] as string, errors: Number(m[2]), warnings: Number(m[3]) };
}

// ------------------------------------------------------------ crafted archives

interface LayerEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink';
  data?: string;
  mode?: number;
  linkname?: string;
  pax?: Record<string, string>;
}

async function packToBuffer(add: (pack: tarStream.Pack) => Promise<void>): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  })();
  await add(pack);
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

function entry(pack: tarStream.Pack, header: tarStream.Header | Parameters<tarStream.Pack['entry']>[0], data?: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (data === undefined) pack.entry(header, (e) => (e ? reject(e) : resolve()));
    else pack.entry(header, data, (e) => (e ? reject(e) : resolve()));
  });
}

async function layerTar(entries: readonly LayerEntry[]): Promise<Buffer> {
  return packToBuffer(async (pack) => {
    for (const e of entries) {
      const type = e.type ?? 'file';
      await entry(
        pack,
        {
          name: e.name,
          type,
          mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
          mtime: new Date(1_700_000_000_000),
          uid: 0,
          gid: 0,
          ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
          ...(e.pax ? { pax: e.pax } : {}),
        },
        type === 'file' ? (e.data ?? '') : undefined,
      );
    }
  });
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * A Docker 1.10–24 style docker-save archive with the given layer tars (any bytes), the
 * right diff_ids and a matching history.
 */
async function dockerSave(file: string, layers: readonly Buffer[], repoTag = 'crafted:v1'): Promise<void> {
  const diffIds = layers.map(sha256);
  const config = imageConfig(diffIds, '/bin/sh', (i) => `crafted layer ${i}`);
  const configName = `${sha256(config).slice(7)}.json`;
  const layerNames = layers.map((_, i) => `${createHash('sha256').update(`id-${i}`).digest('hex')}/layer.tar`);
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: layerNames }]));
  const archive = await packToBuffer(async (pack) => {
    const at = new Date(0);
    for (const [i, layer] of layers.entries()) {
      await entry(pack, { name: (layerNames[i] as string).replace(/layer\.tar$/, ''), type: 'directory', mode: 0o755, mtime: at });
      await entry(pack, { name: layerNames[i] as string, mode: 0o644, mtime: at, size: layer.length }, layer);
    }
    await entry(pack, { name: configName, mode: 0o644, mtime: at }, config);
    await entry(pack, { name: 'manifest.json', mode: 0o644, mtime: at }, manifest);
  });
  await writeFile(file, archive);
}

// ------------------------------------------------------------------- tests

describe('check passes on every valid fixture', () => {
  for (const name of VALID) {
    test(`${name}: fast (text) and full (JSON)`, async () => {
      const ws = await tmpDir(`check-${name}`);
      const temp = path.join(ws, 'tmp');
      const fast = await occystrap(['--temp-dir', temp, 'check', '--fast', `tar://${fixturePath(name)}`]);
      assert.equal(fast.code, 0, fast.stdout + fast.stderr);
      assert.deepEqual(completeLine(fast.stdout), { mode: 'fast (metadata only)', errors: 0, warnings: 0 });
      assert.doesNotMatch(fast.stdout, /\[diff-id\]/, 'fast mode reads no layer');
      assert.match(fast.stdout, /^Info:\n {2}\[rootfs-type\] Config rootfs\.type is "layers"\n/);

      const full = await occystrap(['--temp-dir', temp, '-O', 'json', 'check', `tar://${fixturePath(name)}`]);
      assert.equal(full.code, 0, full.stdout + full.stderr);
      const report = parseJson(full.stdout);
      assert.equal(report.mode, 'full');
      assert.equal(report.errors, 0, JSON.stringify(report.results.filter((r) => r.severity !== 'info')));
      assert.equal(report.warnings, 0);
      const facts = fixture(name).images[0];
      assert.ok(facts);
      const verified = report.results.filter((r) => r.check === 'diff-id' && / diff_id verified$/.test(r.message));
      assert.equal(verified.length, new Set(facts.diffIds).size, 'each distinct layer verified once');
      assert.ok(report.results.some((r) => r.check === 'config-digest' && r.message.includes(facts.configDigest as string)));
      assert.ok(report.results.some((r) => r.check === 'history-count' && r.severity === 'info'));
      assert.deepEqual(listDir(temp), [], 'no temp files left');
    });
  }

  test('the sample image: its whiteout is valid and etc/os-release is reported as repeated (info)', async () => {
    const r = await occystrap(['check', `tar://${fixturePath('skopeo-legacy.tar')}`]);
    assert.equal(r.code, 0);
    assert.doesNotMatch(r.stdout, /\[whiteout/);
    assert.match(r.stdout, /\[duplicate-file\] File "etc\/os-release" appears in layers 0, 3/);
    assert.match(r.stdout, /\n\nCheck complete \(full\): 0 error\(s\), 0 warning\(s\)\n$/);
  });

  test('an archive written by process passes a full check', async () => {
    const ws = await tmpDir('check-roundtrip');
    const out = path.join(ws, 'out.tar');
    assert.equal((await occystrap(['process', `tar://${fixturePath('docker25-zstd.tar')}`, `tar://${out}`])).code, 0);
    const r = await occystrap(['check', `tar://${out}`]);
    assert.equal(r.code, 0, r.stdout);
    assert.equal(completeLine(r.stdout).errors, 0);
  });

  test('images rewritten by normalize-timestamps and exclude pass a full check', async () => {
    const ws = await tmpDir('check-filtered');
    const chains: string[][] = [
      ['-f', 'normalize-timestamps:ts=42'],
      ['-f', 'exclude:pattern=*.txt'],
      ['-f', 'exclude:pattern=home/big/*', '-f', 'normalize-timestamps'],
    ];
    for (const [i, chain] of chains.entries()) {
      const out = path.join(ws, `out-${i}.tar`);
      const p = await occystrap(['process', `tar://${fixturePath('filters-sample.tar')}`, `tar://${out}`, ...chain]);
      assert.equal(p.code, 0, `${chain.join(' ')}: ${p.stderr}`);
      const r = await occystrap(['-O', 'json', 'check', `tar://${out}`]);
      assert.equal(r.code, 0, `${chain.join(' ')}: ${r.stdout}`);
      const report = parseJson(r.stdout);
      assert.equal(report.errors, 0);
      assert.ok(report.results.some((x) => x.check === 'diff-id' && x.severity === 'info'));
    }
  });

  test('fast mode stores no layer when manifest.json and the config come first (layers are drained)', async () => {
    const ws = await tmpDir('check-drain');
    const big = await makeBigArchive(path.join(ws, 'big.tar'), 3 << 20);
    const r = await occystrap(['--debug', 'check', '--fast', `tar://${big.file}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /create temp/);
    const full = await occystrap(['--debug', 'check', `tar://${big.file}`]);
    assert.equal(full.code, 0, full.stderr);
    assert.match(full.stderr, /create temp/);
    assert.match(full.stderr, /release #\d+ \(output\)/);
    assert.match(full.stdout, /\[diff-id\] Layer 0 diff_id verified/);
  });
});

describe('check fails on corrupt sources with error results (exit 1)', () => {
  test('bad-diffid-mismatch: the layer whose bytes were altered is a diff-id error', async () => {
    const src = `tar://${fixturePath('bad-diffid-mismatch.tar')}`;
    const text = await occystrap(['check', src]);
    assert.equal(text.code, 1, text.stderr);
    const line = completeLine(text.stdout);
    assert.ok(line.errors >= 1);
    assert.match(text.stdout, /^Errors:\n {2}\[diff-id\] .*has diff_id sha256:[0-9a-f]{64}, but the config says sha256:[0-9a-f]{64}/);
    assert.deepEqual(errorLines(text.stderr), [], 'reported as a result, not as a crash');

    const json = await occystrap(['-O', 'json', 'check', src]);
    assert.equal(json.code, 1);
    const report = parseJson(json.stdout);
    assert.ok(report.errors >= 1);
    assert.ok(report.results.some((r) => r.severity === 'error' && r.check === 'diff-id'));
  });

  const BAD = Object.entries(fixtureIndex().fixtures)
    .filter(([, f]) => !f.valid)
    .map(([name]) => name);
  for (const name of BAD) {
    test(`${name}: full check reports at least one error`, async () => {
      const r = await occystrap(['-O', 'json', 'check', `tar://${fixturePath(name)}`]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const report = parseJson(r.stdout);
      assert.equal(report.mode, 'full');
      assert.ok(report.errors >= 1, JSON.stringify(report));
      assert.deepEqual(errorLines(r.stderr), []);
    });
  }
});

describe('crafted layers', () => {
  test('a setuid world-writable file and a non-empty whiteout are warnings (exit 0)', async () => {
    const ws = await tmpDir('check-craft-warn');
    const file = path.join(ws, 'warn.tar');
    const base = await layerTar([
      { name: 'usr/', type: 'directory' },
      { name: 'usr/bin/', type: 'directory' },
      { name: 'usr/bin/helper', data: '#!/bin/sh\n', mode: 0o4777 },
      { name: 'etc/passwd', data: 'root:x:0:0::/root:/bin/sh\n' },
    ]);
    const top = await layerTar([
      { name: 'etc/.wh.passwd', data: 'not empty' },
      { name: 'srv/', type: 'directory', mode: 0o2777 },
    ]);
    await dockerSave(file, [base, top]);
    const r = await occystrap(['check', `tar://${file}`]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(completeLine(r.stdout), { mode: 'full', errors: 0, warnings: 3 });
    assert.match(r.stdout, /\n {2}\[tar-permissions\] Layer 0: usr\/bin\/helper has setuid\/setgid with world-writable \(mode=4777\)\n/);
    assert.match(r.stdout, /\n {2}\[tar-permissions\] Layer 1: srv has setuid\/setgid with world-writable \(mode=2777\)\n/);
    assert.match(r.stdout, /\n {2}\[whiteout-size\] Layer 1: whiteout etc\/.wh.passwd is 9 bytes; whiteouts should be empty\n/);

    const fast = await occystrap(['check', '--fast', `tar://${file}`]);
    assert.equal(fast.code, 0);
    assert.deepEqual(completeLine(fast.stdout), { mode: 'fast (metadata only)', errors: 0, warnings: 0 });
  });

  test('an empty whiteout target, a negative timestamp and a layer that is not a tar are errors (exit 1)', async () => {
    const ws = await tmpDir('check-craft-err');
    const file = path.join(ws, 'err.tar');
    const whiteout = await layerTar([{ name: 'etc/' , type: 'directory' }, { name: 'etc/.wh.' }, { name: 'etc/.wh..wh..opq' }]);
    const ancient = await layerTar([{ name: 'old.txt', data: 'x', pax: { mtime: '-86400' } }]);
    const notTar = Buffer.alloc(4096, 0x5a);
    await dockerSave(file, [whiteout, ancient, notTar]);
    const r = await occystrap(['-O', 'json', 'check', `tar://${file}`]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const report = parseJson(r.stdout);
    const errors = report.results.filter((x) => x.severity === 'error');
    assert.deepEqual(
      errors.map((e) => [e.check, e.message]),
      [
        ['whiteout', 'Layer 0: empty whiteout target at etc/.wh.'],
        ['tar-timestamp', 'Layer 1: negative timestamp on old.txt (mtime=-86400)'],
        ['tar-format', `Layer 2 is not a valid tar: ${errors[2]?.message.replace(/^Layer 2 is not a valid tar: /, '')}`],
      ],
    );
    assert.equal(report.errors, 3);
    assert.equal(report.results.filter((x) => x.check === 'diff-id' && x.severity === 'info').length, 3, 'the diff_ids themselves are right');
    const text = await occystrap(['check', `tar://${file}`]);
    assert.equal(text.code, 1);
    assert.deepEqual(completeLine(text.stdout), { mode: 'full', errors: 3, warnings: 0 });
  });

  test('history that does not match the layers is an error in fast mode too', async () => {
    const ws = await tmpDir('check-craft-history');
    const file = path.join(ws, 'hist.tar');
    const layer = await layerTar([{ name: 'a', data: 'a' }]);
    const diffId = sha256(layer);
    const config = Buffer.from(
      JSON.stringify({ rootfs: { type: 'layers', diff_ids: [diffId] }, history: [{ created_by: 'one' }, { created_by: 'two' }], config: { ArgsEscaped: true } }),
    );
    const configName = `${sha256(config).slice(7)}.json`;
    const archive = await packToBuffer(async (pack) => {
      await entry(pack, { name: 'manifest.json', mtime: new Date(0) }, JSON.stringify([{ Config: configName, RepoTags: ['h:1'], Layers: ['l/layer.tar'] }]));
      await entry(pack, { name: configName, mtime: new Date(0) }, config);
      await entry(pack, { name: 'l/layer.tar', mtime: new Date(0) }, layer);
    });
    await writeFile(file, archive);
    const r = await occystrap(['check', '--fast', `tar://${file}`]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /^Errors:\n {2}\[history-count\] History has 2 non-empty entries but image has 1 layers\n\nWarnings:\n {2}\[args-escaped\] /);
    assert.deepEqual(completeLine(r.stdout), { mode: 'fast (metadata only)', errors: 1, warnings: 1 });
  });
});

describe('check command line', () => {
  const cases: [string, string[], RegExp][] = [
    ['no SOURCE', ['check'], /usage error/],
    ['a missing file', ['check', 'tar://nope.tar'], /nope\.tar does not exist/],
    ['an unknown option', ['check', '--quick', 'tar://x.tar'], /usage error/],
    ['a bad -O', ['-O', 'yaml', 'check', 'tar://x.tar'], /--output-format takes text or json/],
    ['a planned scheme', ['check', 'dockerpush://busybox:latest'], /dockerpush:\/\/ is not available/],
  ];
  for (const [what, args, phrase] of cases) {
    test(`${what}: exit 2, one line`, async () => {
      const r = await occystrap(args);
      assert.match(assertOneErrorLine(r, 2), phrase);
      assert.equal(r.stdout, '');
    });
  }

  test('--help describes both modes', async () => {
    const r = await occystrap(['check', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--fast/);
    assert.match(r.stdout, /Check complete/);
  });
});
