// Hostile and unusual docker-save archives (built in the test) and bad URIs through the
// real CLI: one clear error line and the documented exit status, or the right result.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { cleanupTmpDirs, tmpDir } from './fixtures.js';
import { errorLines, occystrap } from './cli-helpers.js';
import { makeImage, manifestBytes, writeArchive } from './archive-builder.js';

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
      const r = await occystrap(command);
      assert.equal(r.code, 2, `${command.join(' ')}: ${r.stderr}`);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0] as string, /^occystrap: usage error: /);
      assert.match(lines[0] as string, why);
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
