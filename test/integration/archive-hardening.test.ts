// Hostile and unusual docker-save archives (built in the test) and bad URIs through the
// real CLI: one clear error line and the documented exit status, or the right result.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tarStream from 'tar-stream';
import { cleanupTmpDirs, run, tmpDir } from './fixtures.js';
import { assertOneErrorLine, cliPath, errorLines, occystrap, strayTempFiles } from './cli-helpers.js';
import { type ArchiveEntry, makeImage, manifestBytes, sha256Hex, tarBytes, writeArchive } from './archive-builder.js';

after(async () => {
  await cleanupTmpDirs();
});

test('a registry URI with a bad port or address is a usage error (exit 2), before any connection', async () => {
  for (const [uri, why] of [
    ['registry://127.0.0.1:99999/a/b:1', /port 99999 is outside 1-65535/],
    ['registry://127.0.0.1:0/a/b', /port 0 is outside/],
    ['registry://999.1.1.1/a', /IPv4/],
    ['registry://[::1::2]:5000/a', /IPv6/],
  ] as const) {
    for (const command of [['info', uri], ['process', uri, 'tar:///nonexistent-dir/x.tar']]) {
      const line = assertOneErrorLine(await occystrap(command), 2, command.join(' '));
      assert.match(line, /^occystrap: usage error: /);
      assert.match(line, why);
    }
  }
});

test('deeply nested JSON in manifest.json or the config gives one clear error naming the document (exit 1)', async () => {
  const dir = await tmpDir('deep-json');
  const image = await makeImage(1);
  const deep = (inner: string) => `${'{"a":'.repeat(50_000)}${inner}${'}'.repeat(50_000)}`;
  const cases: [string, Parameters<typeof writeArchive>[1], RegExp][] = [
    ['manifest-array', [{ name: 'manifest.json', data: Buffer.from(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) }], /manifest\.json: \(root\): nested more than 100 levels deep/],
    [
      'manifest-field',
      [{ name: 'manifest.json', data: Buffer.from(`[{"Config":"${image.configName}","Layers":[],"LayerSources":${deep('1')}}]`) }],
      /manifest\.json: \(root\): nested more than 100 levels deep/,
    ],
    [
      'config',
      [
        { name: 'manifest.json', data: manifestBytes([{ Config: 'c.json', Layers: [] }]) },
        { name: 'c.json', data: Buffer.from(`{"rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":${deep('1')}}}`) },
      ],
      /config c\.json: \(root\): nested more than 100 levels deep/,
    ],
  ];
  for (const [name, entries, why] of cases) {
    const file = path.join(dir, `${name}.tar`);
    await writeArchive(file, entries);
    const r = await occystrap(['info', `tar://${file}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /call stack/);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] as string, why);
  }
});

/** Runs `process SRC dir://OUT` and checks every layer landed, verified, under its diff_id. */
async function processToDir(file: string, dir: string, diffIds: readonly string[]): Promise<void> {
  const out = path.join(dir, 'store');
  const r = await occystrap(['process', `tar://${file}`, `dir://${out}`]);
  assert.equal(r.code, 0, r.stderr);
  for (const d of diffIds) {
    const layer = path.join(out, d.slice('sha256:'.length), 'layer.tar');
    assert.ok(existsSync(layer), `${layer} missing`);
    assert.equal(`sha256:${sha256Hex(readFileSync(layer))}`, d);
  }
}

test('manifest.json first, then a layer given as a hard link or symlink to an entry that came before it: the archive is read', async () => {
  const dir = await tmpDir('late-links');
  const image = await makeImage(2, 'links');
  for (const type of ['link', 'symlink'] as const) {
    const linkname = type === 'link' ? 'X/layer.tar' : '../X/layer.tar';
    const file = path.join(dir, `${type}.tar`);
    await writeArchive(file, [
      { name: 'manifest.json', data: manifestBytes([{ Config: image.configName, RepoTags: ['links:1'], Layers: ['a/layer.tar', 'h/layer.tar'] }]) },
      { name: image.configName, data: image.config },
      { name: 'X/layer.tar', data: image.layers[1] as Buffer }, // drained: nothing needs it yet
      { name: 'a/layer.tar', data: image.layers[0] as Buffer },
      { name: 'h/layer.tar', type, linkname },
    ]);
    await processToDir(file, path.join(dir, type), image.diffIds);
  }
  // The same file used by two layers, the second through a link seen after the first was delivered.
  const same = path.join(dir, 'same.tar');
  const twice = await makeImage(1, 'twice');
  const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [twice.diffIds[0], twice.diffIds[0]] } }));
  const configName = `${sha256Hex(config)}.json`;
  await writeArchive(same, [
    { name: 'manifest.json', data: manifestBytes([{ Config: configName, RepoTags: ['twice:1'], Layers: ['X/layer.tar', 'h/layer.tar'] }]) },
    { name: configName, data: config },
    { name: 'X/layer.tar', data: twice.layers[0] as Buffer },
    { name: 'h/layer.tar', type: 'link', linkname: 'X/layer.tar' },
  ]);
  await processToDir(same, path.join(dir, 'same'), twice.diffIds);
});

test('a link to an earlier entry with other content is still verified against the diff_id', async () => {
  const dir = await tmpDir('late-links-bad');
  const image = await makeImage(1, 'bad');
  const other = await tarBytes([{ name: 'other', data: Buffer.from('not the layer') }]);
  const file = path.join(dir, 'bad.tar');
  await writeArchive(file, [
    { name: 'manifest.json', data: manifestBytes([{ Config: image.configName, RepoTags: ['bad:1'], Layers: ['h/layer.tar'] }]) },
    { name: image.configName, data: image.config },
    { name: 'X/layer.tar', data: other },
    { name: 'h/layer.tar', type: 'link', linkname: 'X/layer.tar' },
  ]);
  const r = await occystrap(['process', `tar://${file}`, `dir://${path.join(dir, 'store')}`]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(errorLines(r.stderr)[0] as string, /diff_id .* but the config says .*corrupt/);
  assert.deepEqual(strayTempFiles(dir), []);
});

test('two manifest.json entries are refused as ambiguous, whichever is valid', async () => {
  const dir = await tmpDir('two-manifests');
  const a = await makeImage(1, 'a');
  const b = await makeImage(1, 'b');
  const entries: ArchiveEntry[] = [
    { name: a.configName, data: a.config },
    { name: 'a/layer.tar', data: a.layers[0] as Buffer },
    { name: b.configName, data: b.config },
    { name: 'b/layer.tar', data: b.layers[0] as Buffer },
    { name: 'manifest.json', data: manifestBytes([{ Config: a.configName, RepoTags: ['a:1'], Layers: ['a/layer.tar'] }]) },
    { name: './manifest.json', data: manifestBytes([{ Config: b.configName, RepoTags: ['b:1'], Layers: ['b/layer.tar'] }]) },
  ];
  const file = path.join(dir, 'two.tar');
  await writeArchive(file, entries);
  for (const command of [['info', `tar://${file}`], ['process', `tar://${file}`, `tar://${path.join(dir, 'out.tar')}`]]) {
    const r = await occystrap(command);
    assert.equal(r.code, 1, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] as string, /two manifest\.json entries/);
  }
  assert.ok(!existsSync(path.join(dir, 'out.tar')));
  assert.deepEqual(strayTempFiles(dir), []);
});

test('a config or layer name (or a link on the way) carried by two entries is refused as ambiguous', async () => {
  const dir = await tmpDir('two-names');
  const image = await makeImage(1, 'dup');
  const manifest = { name: 'manifest.json', data: manifestBytes([{ Config: 'config.json', RepoTags: ['dup:1'], Layers: ['l/layer.tar'] }]) };
  const config = { name: 'config.json', data: image.config };
  const layer = { name: 'l/layer.tar', data: image.layers[0] as Buffer };
  const cases: [string, ArchiveEntry[], RegExp][] = [
    ['config', [config, layer, { name: 'config.json', data: Buffer.from('{}') }, manifest], /2 entries named "config\.json"/],
    ['layer', [manifest, config, layer, layer], /2 entries named "l\/layer\.tar"/],
    ['link', [manifest, config, { name: 'X', data: image.layers[0] as Buffer }, { name: 'l/layer.tar', type: 'link', linkname: 'X' }, { name: 'X', type: 'symlink', linkname: 'Y' }], /2 entries named "X"/],
  ];
  for (const [name, entries, why] of cases) {
    const file = path.join(dir, `${name}.tar`);
    await writeArchive(file, entries);
    const r = await occystrap(['process', `tar://${file}`, `dir://${path.join(dir, `${name}-store`)}`]);
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] as string, why);
    assert.ok(!existsSync(path.join(dir, `${name}-store`, 'manifest.json')));
  }
  // A duplicate the image does not use is harmless.
  const unused = path.join(dir, 'unused.tar');
  await writeArchive(unused, [manifest, config, layer, { name: 'junk', data: Buffer.from('1') }, { name: 'junk', data: Buffer.from('2') }]);
  await processToDir(unused, path.join(dir, 'unused'), image.diffIds);
});

test('an archive without its end marker, or with the marker cut short, is refused as truncated', async () => {
  const dir = await tmpDir('end-marker');
  const image = await makeImage(1, 'end');
  const good = await tarBytes([
    { name: 'manifest.json', data: manifestBytes([{ Config: image.configName, RepoTags: ['end:1'], Layers: ['l/layer.tar'] }]) },
    { name: image.configName, data: image.config },
    { name: 'l/layer.tar', data: image.layers[0] as Buffer },
  ]);
  // tar-stream writes exactly the two zero blocks after the last entry.
  assert.ok(good.subarray(good.length - 1024).every((b) => b === 0));
  const body = good.subarray(0, good.length - 1024);
  for (const [name, bytes] of [
    ['no-marker', body],
    ['one-block', good.subarray(0, good.length - 512)],
    ['cut-by-one', good.subarray(0, good.length - 1)],
  ] as const) {
    const file = path.join(dir, `${name}.tar`);
    writeFileSync(file, bytes);
    const r = await occystrap(['process', `tar://${file}`, `tar://${path.join(dir, `${name}-out.tar`)}`]);
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] as string, /the archive is truncated/);
    assert.ok(!existsSync(path.join(dir, `${name}-out.tar`)));
  }
  // The whole archive, and one padded to a 10 KiB record (as GNU tar writes), are read.
  const padded = Buffer.concat([good, Buffer.alloc(10240 - (good.length % 10240))]);
  for (const [name, bytes] of [['good', good], ['padded', padded]] as const) {
    const file = path.join(dir, `${name}.tar`);
    writeFileSync(file, bytes);
    await processToDir(file, path.join(dir, name), image.diffIds);
  }
});

test('many large top-level JSON entries do not grow memory: 250 x 1 MiB, peak RSS under 200 MB', async () => {
  const dir = await tmpDir('many-json');
  const file = path.join(dir, 'many.tar');
  const image = await makeImage(1, 'many');
  const pack = tarStream.pack();
  const writing = pipeline(Readable.from(pack as unknown as AsyncIterable<Buffer>), createWriteStream(file));
  const add = (name: string, data: Buffer) =>
    new Promise<void>((resolve, reject) => pack.entry({ name, size: data.length, mode: 0o644, mtime: new Date(0) }, data, (e) => (e ? reject(e) : resolve())));
  // Docker 1.10-24 order: configs first, manifest.json last, so nothing is known while they stream past.
  for (let i = 0; i < 250; i++) {
    const json = Buffer.from(JSON.stringify({ pad: String(i).padEnd((1 << 20) - 12, 'x') }));
    await add(`${sha256Hex(json)}.json`, json);
  }
  await add(image.configName, image.config);
  await add('l/layer.tar', image.layers[0] as Buffer);
  await add('manifest.json', manifestBytes([{ Config: image.configName, RepoTags: ['many:1'], Layers: ['l/layer.tar'] }]));
  pack.finalize();
  await writing;
  assert.ok(statSync(file).size > 250 * (1 << 20));
  const r = await run('/usr/bin/time', ['-f', 'peak-rss-kb %M', process.execPath, cliPath, '-O', 'json', 'info', `tar://${file}`], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).config_digest, image.configDigest);
  const kb = Number(/peak-rss-kb (\d+)/.exec(r.stderr)?.[1]);
  assert.ok(kb > 0, r.stderr);
  assert.ok(kb < 200 * 1024, `peak RSS ${Math.round(kb / 1024)} MB`);
});

/** Control characters a terminal acts on; stderr/stdout lines must carry none raw. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/;

test('RepoTags with a newline or an escape sequence are refused by process and info, with a printable error, and never reach manifest.json', async () => {
  const dir = await tmpDir('bad-repotags');
  const image = await makeImage(1, 'tags');
  for (const [name, tag] of [
    ['newline', 'evil\n:1'],
    ['ansi', 'evil:\x1b[31mred'],
    ['c1', 'evil:1\u009b2J'],
    ['space', 'evil name:1'],
  ] as const) {
    const file = path.join(dir, `${name}.tar`);
    await writeArchive(file, [
      { name: 'manifest.json', data: manifestBytes([{ Config: image.configName, RepoTags: ['good:1', tag], Layers: ['l/layer.tar'] }]) },
      { name: image.configName, data: image.config },
      { name: 'l/layer.tar', data: image.layers[0] as Buffer },
    ]);
    const store = path.join(dir, `${name}-store`);
    const outTar = path.join(dir, `${name}-out.tar`);
    for (const command of [
      ['process', `tar://${file}`, `dir://${store}`],
      ['process', `tar://${file}`, `tar://${outTar}`],
      ['info', `tar://${file}`],
      ['-O', 'json', 'info', `tar://${file}`],
    ]) {
      const r = await occystrap(command);
      assert.equal(r.code, 1, `${command.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0] as string, /RepoTags\[1\]: .* is not a valid image reference/);
      assert.doesNotMatch(r.stderr, RAW_CONTROL);
      assert.equal(r.stderr.split('\n').filter((l) => l !== '').length, 1, JSON.stringify(r.stderr));
    }
    assert.ok(!existsSync(path.join(store, 'manifest.json')));
    assert.ok(!existsSync(outTar));
  }
});

test('an unchosen image with a hostile RepoTag is listed escaped when no image matches ?tag=', async () => {
  const dir = await tmpDir('bad-repotags-list');
  const image = await makeImage(1, 'list');
  const file = path.join(dir, 'list.tar');
  await writeArchive(file, [
    { name: 'manifest.json', data: manifestBytes([{ Config: image.configName, RepoTags: ['x:\x1b]0;pwned\x07'], Layers: ['l/layer.tar'] }]) },
    { name: image.configName, data: image.config },
    { name: 'l/layer.tar', data: image.layers[0] as Buffer },
  ]);
  const r = await occystrap(['info', `tar://${file}?tag=other:1`]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(errorLines(r.stderr)[0] as string, /no image tagged other:1 .*x:\\x1b\]0;pwned\\x07/);
  assert.doesNotMatch(r.stderr, RAW_CONTROL);
});

test('info escapes control characters from the config in text, and JSON carries them only as escapes', async () => {
  const dir = await tmpDir('info-escape');
  const layer = await tarBytes([{ name: 'f', data: Buffer.from('x') }]);
  const diffId = `sha256:${sha256Hex(layer)}`;
  const hostile = {
    author: 'me\x1b[2J',
    config: { Env: ['A=1\nFAKE=2', 'B=\u009b31m'], Labels: { 'k\x1b': 'v\r\u202e' }, WorkingDir: '/w\x07', User: 'u\x7f', Cmd: ['sh', '-c', '\x1b[31m'] },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created_by: 'RUN x\nLayers: 0' }],
  };
  const config = Buffer.from(JSON.stringify(hostile));
  const configName = `${sha256Hex(config)}.json`;
  const file = path.join(dir, 'escape.tar');
  await writeArchive(file, [
    { name: 'manifest.json', data: manifestBytes([{ Config: configName, RepoTags: ['esc:1'], Layers: ['l/layer.tar'] }]) },
    { name: configName, data: config },
    { name: 'l/layer.tar', data: layer },
  ]);
  const text = await occystrap(['info', `tar://${file}`]);
  assert.equal(text.code, 0, text.stderr);
  assert.doesNotMatch(text.stdout, RAW_CONTROL);
  assert.match(text.stdout, /^ {4}A=1\\nFAKE=2$/m);
  assert.match(text.stdout, /^Author: +me\\x1b\[2J$/m);
  assert.match(text.stdout, /\| RUN x\\nLayers: 0 +\|$/m);
  assert.equal(text.stdout.match(/^Layers: /gm)?.length, 1);
  const json = await occystrap(['-O', 'json', 'info', `tar://${file}`]);
  assert.equal(json.code, 0, json.stderr);
  assert.doesNotMatch(json.stdout, RAW_CONTROL);
  const parsed = JSON.parse(json.stdout) as { env: string[]; labels: Record<string, string>; author: string };
  assert.deepEqual(parsed.env, hostile.config.Env);
  assert.deepEqual(parsed.labels, hostile.config.Labels);
  assert.equal(parsed.author, hostile.author);
});

test('an error quoting a hostile entry name reaches stderr escaped', async () => {
  const dir = await tmpDir('entry-name-escape');
  const file = path.join(dir, 'name.tar');
  await writeArchive(file, [{ name: '../\u009b2J\x1b[31m', data: Buffer.from('x') }]);
  const r = await occystrap(['info', `tar://${file}`]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(errorLines(r.stderr)[0] as string, /"\.\." component/);
  assert.doesNotMatch(r.stderr, RAW_CONTROL);
});

test('search prints paths from layers escaped, in text and JSON', async () => {
  const dir = await tmpDir('search-escape');
  const layer = await tarBytes([
    { name: 'bin/a\x1b[31mred', data: Buffer.from('x') },
    { name: 'bin/c\u009b2Jd', data: Buffer.from('y') },
  ]);
  const diffId = `sha256:${sha256Hex(layer)}`;
  const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [diffId] } }));
  const configName = `${sha256Hex(config)}.json`;
  const file = path.join(dir, 'search.tar');
  await writeArchive(file, [
    { name: 'manifest.json', data: manifestBytes([{ Config: configName, RepoTags: ['s:1'], Layers: ['l/layer.tar'] }]) },
    { name: configName, data: config },
    { name: 'l/layer.tar', data: layer },
  ]);
  for (const args of [['search', `tar://${file}`, 'bin/*'], ['search', '--script-friendly', `tar://${file}`, 'bin/*'], ['-O', 'json', 'search', `tar://${file}`, 'bin/*']]) {
    const r = await occystrap(args);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, RAW_CONTROL, args.join(' '));
    if (args[0] === '-O') {
      const paths = JSON.stringify(JSON.parse(r.stdout));
      assert.ok(paths.includes('a\\u001b[31mred') && paths.includes('c\u009b2Jd'), paths);
    } else assert.match(r.stdout, /a\\x1b\[31mred/);
  }
});

test('check prints paths from layers escaped, in text and JSON', async () => {
  const dir = await tmpDir('check-escape');
  const layer = await tarBytes([{ name: 'etc/.wh.\x1b[31mred\u009b', data: Buffer.from('not empty') }]);
  const diffId = `sha256:${sha256Hex(layer)}`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] }, history: [{ created_by: 'x' }] }));
  const configName = `${sha256Hex(config)}.json`;
  const file = path.join(dir, 'check.tar');
  await writeArchive(file, [
    { name: 'manifest.json', data: manifestBytes([{ Config: configName, RepoTags: ['c:1'], Layers: ['l/layer.tar'] }]) },
    { name: configName, data: config },
    { name: 'l/layer.tar', data: layer },
  ]);
  for (const args of [['check', `tar://${file}`], ['-O', 'json', 'check', `tar://${file}`]]) {
    const r = await occystrap(args);
    assert.match(r.stdout, /whiteout/, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, RAW_CONTROL, args.join(' '));
    assert.doesNotMatch(r.stderr, RAW_CONTROL, args.join(' '));
  }
});
