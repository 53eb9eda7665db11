// Broken archives and bad command lines through the real CLI: the exit
// status, the single error line, and that nothing is left behind (no
// destination, no temp files, an existing store untouched).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BAD_ARCHIVES, cleanupTmpDirs, fixture, fixturePath, sha256File, tmpDir } from './fixtures.js';
import { errorLines, identity, listDir, occystrap, runDirs, strayTempFiles, summaryLines } from './cli-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Each bad fixture and what its one error line must say. */
function expectations(name: string): RegExp[] {
  const f = fixture(name);
  const str = (k: string) => {
    const v = f[k];
    if (typeof v !== 'string') throw new Error(`fixtures.json ${name} lacks ${k}`);
    return v;
  };
  switch (name) {
    case 'bad-truncated.tar':
      return [/truncated/, new RegExp(escape(str('truncatedEntry')))];
    case 'bad-missing-layer.tar':
      return [/not in the archive/, new RegExp(escape(str('missingPath')))];
    case 'bad-dotdot-config.tar':
      return [/"\.\." component/, /Config/, new RegExp(escape(str('badPath')))];
    case 'bad-dotdot-layer.tar':
      return [/"\.\." component/, /Layers\[0\]/, new RegExp(escape(str('badPath')))];
    case 'bad-digest-mismatch.tar':
      return [/digest/, /corrupt/, new RegExp(escape(str('actualDigest'))), new RegExp(escape(str('blobPath')))];
    case 'bad-digest-syntax.tar':
      return [/invalid digest/, new RegExp(escape(str('badPath')))];
    case 'bad-digest-uppercase.tar':
      return [/invalid digest/, /lowercase/, new RegExp(escape(str('badPath')))];
    case 'bad-digest-short.tar':
      return [/invalid digest/, /64 hex/, new RegExp(escape(str('badPath')))];
    case 'bad-diffid-mismatch.tar':
      return [/diff_id/, /corrupt/, new RegExp(escape(str('expectedDiffId'))), new RegExp(escape(str('actualDigest')))];
    case 'legacy-repositories-only.tar':
      return [/pre-1\.10/, /manifest\.json/];
    case 'bad-not-a-tar.tar':
      return [/not a valid tar/];
    default:
      throw new Error(`no expectation for ${name}`);
  }
}

describe('bad archives: exit 1, one error line, nothing left behind', { concurrency: 4 }, () => {
  for (const name of BAD_ARCHIVES) {
    for (const kind of ['dir', 'tar'] as const) {
      test(`${name} -> ${kind}://`, async () => {
        const base = await tmpDir(`bad-${kind}-${name}`);
        const temp = path.join(base, 'tmp');
        const dest = path.join(base, kind === 'dir' ? 'store' : 'out.tar');
        const r = await occystrap(['--temp-dir', temp, 'process', `tar://${fixturePath(name)}`, `${kind}://${dest}`]);
        assert.equal(r.code, 1, `exit status\n${r.stderr}`);
        const errors = errorLines(r.stderr);
        assert.equal(errors.length, 1, r.stderr);
        const line = errors[0] as string;
        assert.match(line, /^occystrap: error: /);
        assert.ok(line.includes(fixturePath(name)), `the message names the source: ${line}`);
        for (const re of expectations(name)) assert.match(line, re);
        assert.deepEqual(summaryLines(r.stderr), [], 'no summary for a failed run');
        assert.equal(r.stdout, '');
        assert.equal(existsSync(dest), false, `${dest} must not exist`);
        assert.deepEqual(listDir(base), ['tmp'], 'nothing beside the destination');
        assert.deepEqual(listDir(temp), [], 'temp dir empty');
      });
    }
  }

  test('a corrupt layer into an existing store: the store is left exactly as it was', async () => {
    // other:v2 shares its base layer with the bad archive's image; the bad
    // archive's layers before the corrupt one are moved in, then rolled back.
    const base = await tmpDir('bad-existing-store');
    const temp = path.join(base, 'tmp');
    const store = path.join(base, 'store');
    const ok = await occystrap(['--temp-dir', temp, 'process', `tar://${fixturePath('podman-multi.tar')}?index=1`, `dir://${store}`]);
    assert.equal(ok.code, 0, ok.stderr);
    const snapshot = async () => {
      const files: Record<string, unknown> = {};
      for (const entry of listDir(store)) {
        const p = path.join(store, entry);
        if (statSync(p).isDirectory()) {
          for (const inner of listDir(p)) files[`${entry}/${inner}`] = { ...identity(path.join(p, inner)), sha: await sha256File(path.join(p, inner)) };
        } else files[entry] = { ...identity(p), sha: await sha256File(p) };
      }
      return files;
    };
    const before = await snapshot();
    for (const bad of ['bad-diffid-mismatch.tar', 'bad-digest-mismatch.tar', 'bad-missing-layer.tar', 'bad-truncated.tar']) {
      const r = await occystrap(['--temp-dir', temp, 'process', `tar://${fixturePath(bad)}`, `dir://${store}`]);
      assert.equal(r.code, 1, `${bad}: ${r.stderr}`);
      assert.equal(errorLines(r.stderr).length, 1, r.stderr);
      assert.deepEqual(await snapshot(), before, `${bad}: the store is unchanged`);
      assert.deepEqual(strayTempFiles(store), []);
      assert.deepEqual(listDir(temp), []);
    }
  });
});

describe('usage errors: exit 2 with one line', { concurrency: 4 }, () => {
  const sample = () => fixturePath('skopeo-legacy.tar');
  const cases: Array<{ title: string; args: (ws: { base: string; temp: string; out: string }) => string[]; phrase: RegExp }> = [
    {
      title: 'missing source file',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${ws.base}/no-such.tar`, `dir://${ws.out}`],
      phrase: /no-such\.tar does not exist/,
    },
    {
      title: 'source is a directory',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${ws.base}`, `dir://${ws.out}`],
      phrase: /is not a file/,
    },
    { title: 'unknown scheme foo://', args: (ws) => ['--temp-dir', ws.temp, 'process', 'foo://x', `dir://${ws.out}`], phrase: /unknown source scheme "foo:\/\/"/ },
    {
      title: 'unknown destination scheme',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${sample()}`, 'bar://y'],
      phrase: /unknown destination scheme "bar:\/\/"/,
    },
    {
      title: 'dockerpush:// as a destination is not available yet',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${sample()}`, 'dockerpush://x/y:z'],
      phrase: /dockerpush:\/\/ is not available/,
    },
    {
      title: 'registry:// destination with an unknown compression',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${sample()}`, 'registry://127.0.0.1:9/x/y:z?compression=lz4'],
      phrase: /\?compression= takes gzip or zstd, got "lz4"/,
    },
    {
      title: 'registry:// destination with an unknown manifest format',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${sample()}`, 'registry://127.0.0.1:9/x/y:z?format=v1'],
      phrase: /\?format= takes auto, oci or docker, got "v1"/,
    },
    {
      title: 'bad registry reference',
      args: (ws) => ['--temp-dir', ws.temp, 'process', 'registry://127.0.0.1:9/UPPER/case:tag', `dir://${ws.out}`],
      phrase: /not a valid repository name/,
    },
    {
      title: 'credentials in a registry URI host',
      args: (ws) => ['--temp-dir', ws.temp, 'process', 'registry://user:pw@127.0.0.1:9/x:y', `dir://${ws.out}`],
      phrase: /credentials in the URI host are not accepted/,
    },
    { title: 'no scheme', args: (ws) => ['--temp-dir', ws.temp, 'process', sample(), `dir://${ws.out}`], phrase: /has no scheme/ },
    {
      title: 'unknown URI option on dir://',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${sample()}`, `dir://${ws.out}?bogus=1`],
      phrase: /does not take \?bogus/,
    },
    {
      title: 'unknown URI option on tar:// source',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${sample()}?bogus=1`, `dir://${ws.out}`],
      phrase: /does not take \?bogus/,
    },
    {
      title: '?index= and ?tag= together',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${sample()}?index=0&tag=sample:v1`, `dir://${ws.out}`],
      phrase: /not both/,
    },
    {
      title: 'negative ?index=',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${sample()}?index=-1`, `dir://${ws.out}`],
      phrase: /\?index= takes a number/,
    },
    {
      title: 'bad ?unique_names= value',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${sample()}`, `dir://${ws.out}?unique_names=maybe`],
      phrase: /unique_names= takes true or false/,
    },
    {
      title: 'unknown filter -f nope',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${sample()}`, `dir://${ws.out}`, '-f', 'nope'],
      phrase: /unknown filter "nope"/,
    },
    { title: 'bad -j 0', args: (ws) => ['-j', '0', '--temp-dir', ws.temp, 'process', `tar://${sample()}`, `dir://${ws.out}`], phrase: /--parallel/ },
    { title: 'bad -j x after the command', args: (ws) => ['process', `tar://${sample()}`, `dir://${ws.out}`, '--temp-dir', ws.temp, '-j', 'x'], phrase: /--parallel/ },
    { title: 'bad -O xml', args: (ws) => ['-O', 'xml', '--temp-dir', ws.temp, 'process', `tar://${sample()}`, `dir://${ws.out}`], phrase: /--output-format/ },
    {
      title: 'unknown CLI option',
      args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${sample()}`, `dir://${ws.out}`, '--bogus'],
      phrase: /--bogus/,
    },
    { title: 'missing DESTINATION argument', args: (ws) => ['--temp-dir', ws.temp, 'process', `tar://${sample()}`], phrase: /process: missing DESTINATION; usage: occystrap \[OPTIONS\] process SOURCE DESTINATION/ },
    { title: 'unknown command', args: (ws) => ['--temp-dir', ws.temp, 'frobnicate', `tar://${sample()}`], phrase: /unknown command "frobnicate"/ },
    { title: '-j without a value', args: () => ['-j'], phrase: /-j needs a value|--parallel|-j/ },
  ];

  for (const c of cases) {
    test(c.title, async () => {
      const base = await tmpDir('usage');
      const ws = { base, temp: path.join(base, 'tmp'), out: path.join(base, 'store') };
      const r = await occystrap(c.args(ws));
      assert.equal(r.code, 2, `exit status\n${r.stderr}`);
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1, `exactly one stderr line:\n${r.stderr}`);
      assert.match(lines[0] as string, /^occystrap: usage error: /);
      assert.match(lines[0] as string, c.phrase);
      assert.equal(r.stdout, '');
      assert.equal(existsSync(ws.out), false, 'no destination created');
      assert.deepEqual(runDirs(ws.temp), [], 'no run dir');
      assert.deepEqual(listDir(ws.temp), []);
    });
  }
});

describe('destinations that cannot be written', () => {
  test('dir:// naming an existing regular file: exit 1, file untouched', async () => {
    const base = await tmpDir('dest-file');
    const temp = path.join(base, 'tmp');
    const file = path.join(base, 'not-a-dir');
    writeFileSync(file, 'precious contents\n');
    const before = identity(file);
    const r = await occystrap(['--temp-dir', temp, 'process', `tar://${fixturePath('skopeo-legacy.tar')}`, `dir://${file}`]);
    assert.equal(r.code, 1, r.stderr);
    const errors = errorLines(r.stderr);
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0] as string, /^occystrap: error: .*exists and is not a directory/);
    assert.equal(readFileSync(file, 'utf8'), 'precious contents\n');
    assert.deepEqual(identity(file), before);
    assert.deepEqual(listDir(base), ['not-a-dir', 'tmp']);
    assert.deepEqual(listDir(temp), []);
  });

  test('tar:// naming an existing directory: exit 1, directory untouched, no temp file left', async () => {
    const base = await tmpDir('dest-isdir');
    const temp = path.join(base, 'tmp');
    const dir = path.join(base, 'out.tar');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'keep'), 'x');
    const r = await occystrap(['--temp-dir', temp, 'process', `tar://${fixturePath('skopeo-legacy.tar')}`, `tar://${dir}`]);
    assert.equal(r.code, 1, r.stderr);
    const errors = errorLines(r.stderr);
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0] as string, /^occystrap: error: .*directory/);
    assert.deepEqual(listDir(dir), ['keep']);
    assert.deepEqual(listDir(base), ['out.tar', 'tmp']);
    assert.deepEqual(listDir(temp), []);
  });

  test('a corrupt catalog.json in an existing store: exit 1 and the store is left exactly as it was', async () => {
    // dir:// rewrites manifest.json before it reads catalog.json; when the
    // catalog cannot be decoded the run fails and rolls back the layers and
    // config it added, so manifest.json must not name them either.
    const base = await tmpDir('dest-bad-catalog');
    const temp = path.join(base, 'tmp');
    const store = path.join(base, 'store');
    const ok = await occystrap(['--temp-dir', temp, 'process', `tar://${fixturePath('podman-multi.tar')}?index=1`, `dir://${store}`]);
    assert.equal(ok.code, 0, ok.stderr);
    writeFileSync(path.join(store, 'catalog.json'), '{"bad": 1}\n');
    const before: Record<string, string> = {};
    for (const n of listDir(store)) before[n] = statSync(path.join(store, n)).isFile() ? readFileSync(path.join(store, n), 'utf8') : '<dir>';

    const r = await occystrap(['--temp-dir', temp, 'process', `tar://${fixturePath('podman-multi.tar')}?index=0`, `dir://${store}`]);
    assert.equal(r.code, 1, r.stderr);
    const errors = errorLines(r.stderr);
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0] as string, /catalog\.json/);

    const after: Record<string, string> = {};
    for (const n of listDir(store)) after[n] = statSync(path.join(store, n)).isFile() ? readFileSync(path.join(store, n), 'utf8') : '<dir>';
    assert.deepEqual(after, before, 'the failed run left the store as it was (manifest.json included)');
    const manifest = JSON.parse(readFileSync(path.join(store, 'manifest.json'), 'utf8')) as Array<{ Config: string; Layers: string[] }>;
    for (const p of [manifest[0]?.Config as string, ...(manifest[0]?.Layers ?? [])]) {
      assert.ok(existsSync(path.join(store, p)), `manifest.json names ${p}, which must exist`);
    }
    assert.deepEqual(listDir(temp), []);
  });

  test('tar:// in a directory that does not exist: exit 1, nothing created', async () => {
    const base = await tmpDir('dest-nodir');
    const temp = path.join(base, 'tmp');
    const out = path.join(base, 'missing', 'out.tar');
    const r = await occystrap(['--temp-dir', temp, 'process', `tar://${fixturePath('skopeo-legacy.tar')}`, `tar://${out}`]);
    assert.equal(r.code, 1, r.stderr);
    const errors = errorLines(r.stderr);
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0] as string, /^occystrap: error: .*does not exist/);
    assert.deepEqual(listDir(base), ['tmp']);
    assert.deepEqual(listDir(temp), []);
  });
});
