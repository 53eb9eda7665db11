// The transport table through the real CLI: per-role messages for planned schemes, help
// lists built from the table (every usage form shown whole), aliases, and the registry
// modules (undici) left unloaded by runs that do not use a registry.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { isPlanned } from '../../src/shell/transports/types.js';
import { TRANSPORTS } from '../../src/shell/transports/index.js';
import { assertOneErrorLine, cleanEnv, errorLines, occystrap } from './cli-helpers.js';
import { availableSchemes } from '../../src/shell/transports/derive.js';

/** The source list messages give, derived from the table as the code derives it. */
const SOURCES = availableSchemes(TRANSPORTS, 'source').join(', ');
const DESTINATIONS = availableSchemes(TRANSPORTS, 'destination').join(', ');
import { cleanupTmpDirs, fixturePath, repoRoot, run, tmpDir } from './fixtures.js';

after(async () => {
  await cleanupTmpDirs();
});

const SAMPLE = 'skopeo-legacy.tar';

async function oneUsageLine(args: string[]): Promise<string> {
  const r = await occystrap(args);
  const line = assertOneErrorLine(r, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  return line;
}

describe('planned schemes: one line per role', () => {
  test('oci:// as a source says it is only a destination', async () => {
    const tmp = await tmpDir('transports-');
    const line = await oneUsageLine(['process', 'oci://x', `tar://${path.join(tmp, 'y.tar')}`]);
    assert.match(line, new RegExp(`^occystrap: usage error: oci:// \\(an OCI runtime bundle\\) is only a destination, not a source; sources: ${SOURCES}$`));
    assert.doesNotMatch(line, /output/);
  });

  test('dockerpush:// as a destination says it is not available yet', async () => {
    const tmp = await tmpDir('transports-');
    const line = await oneUsageLine(['--temp-dir', tmp, 'process', `tar://${fixturePath(SAMPLE)}`, 'dockerpush://y']);
    assert.match(line, /dockerpush:\/\/ is not available in this version yet \(it is planned\)/);
  });

  test('dir:// is a source: a directory that is not a store is refused in one line', async () => {
    const tmp = await tmpDir('transports-');
    const r = await occystrap(['info', `dir://${tmp}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.deepEqual(errorLines(r.stderr), [`occystrap: error: dir://${tmp}: no catalog.json in the directory; it is not a dir:// store (occystrap process SOURCE dir://DIR makes one)`]);
  });
});

describe('help derived from the table', () => {
  for (const [command, roles] of [
    ['process', ['source', 'destination']],
    ['info', ['source']],
    ['search', ['source']],
    ['check', ['source']],
  ] as const) {
    test(`${command} --help shows every usage form of the table whole, and the planned schemes`, async () => {
      const r = await occystrap([command, '--help']);
      assert.equal(r.code, 0, r.stderr);
      for (const role of roles) {
        for (const t of TRANSPORTS) {
          const entry = role === 'source' ? t.source : t.destination;
          if (entry === undefined) continue;
          if (isPlanned(entry)) assert.match(r.stdout.replace(/\s+/g, ' '), new RegExp(`Planned, not yet available: [^.]*${t.name}://`), `${t.name}:// in ${command} --help`);
          else assert.ok(r.stdout.includes(`- ${entry.usage}: `), `${entry.usage} whole in ${command} --help:\n${r.stdout}`);
        }
      }
    });
  }
});

describe('scheme names that are Object.prototype keys', () => {
  // A plain-object lookup of "constructor" found Object itself: the message named
  // "function Object() { [native code] }://".
  for (const scheme of ['constructor', 'toString', 'hasOwnProperty']) {
    test(`${scheme}:// is an unknown scheme, as a source and as a destination`, async () => {
      const tmp = await tmpDir('transports-');
      const asSource = await oneUsageLine(['--temp-dir', tmp, 'process', `${scheme}://x`, `dir://${path.join(tmp, 'out')}`]);
      assert.match(asSource, new RegExp(`unknown source scheme "${scheme.toLowerCase()}://" in ${scheme}://x; sources: ${SOURCES}$`));
      const asDestination = await oneUsageLine(['--temp-dir', tmp, 'process', `tar://${fixturePath(SAMPLE)}`, `${scheme}://y`]);
      assert.match(asDestination, new RegExp(`unknown destination scheme "${scheme.toLowerCase()}://" in ${scheme}://y; destinations: ${DESTINATIONS}$`));
    });
  }
});

describe('aliases', () => {
  test('directory:// is dir:// as a destination', async () => {
    const tmp = await tmpDir('transports-');
    const store = path.join(tmp, 'store');
    const r = await occystrap(['--temp-dir', tmp, 'process', `file:${fixturePath(SAMPLE)}`, `Directory://${store}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(path.join(store, 'manifest.json')));
  });
});

describe('registry modules load only for registry:// URIs', () => {
  // Runs the CLI's main() in a child and reports whether undici was loaded.
  const script = (args: string[]) => `
    import { createRequire } from 'node:module';
    const { main } = await import(${JSON.stringify(path.join(repoRoot, 'dist', 'src', 'shell', 'cli', 'main.js'))});
    const code = await main(${JSON.stringify(args)});
    const loaded = Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/undici/'));
    process.stdout.write(JSON.stringify({ code, loaded }));
  `;
  async function undiciLoaded(args: string[]): Promise<{ code: number; loaded: boolean }> {
    const r = await run(process.execPath, ['--input-type=module', '-e', script(args)], { env: cleanEnv(), timeoutMs: 60_000 });
    return JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{'))) as { code: number; loaded: boolean };
  }

  test('a tar:// to dir:// run does not load undici; a registry:// source does', async () => {
    const tmp = await tmpDir('transports-');
    assert.deepEqual(await undiciLoaded(['--temp-dir', tmp, 'process', `tar://${fixturePath(SAMPLE)}`, `dir://${path.join(tmp, 'store')}`]), { code: 0, loaded: false });
    // The control: the same check sees undici once a registry source is opened (port 9 refuses).
    const viaRegistry = await undiciLoaded(['--temp-dir', tmp, '--retries', '0', 'info', '--insecure', 'registry://127.0.0.1:9/x/y:z']);
    assert.equal(viaRegistry.loaded, true);
    assert.notEqual(viaRegistry.code, 0);
  });
});
