// Platform choice from a multi-platform OCI index (linux/arm64, linux/arm/v7,
// linux/amd64 -- amd64 deliberately last) pushed to a real docker-registry:
// the default, --os/--architecture/--variant, the URI's ?os=&arch=&variant=
// (which override the globals), and the one-line error listing what exists.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cleanupTmpDirs } from './fixtures.js';
import { hexOf } from './cli-helpers.js';
import { pushMultiPlatform, startRegistry, type MultiPlatformImage, type PlatformImage, type Registry } from '../registry/harness.js';
import { assertDirStore, assertFailsOneLine, assertOk, cli, stdoutJson, workspace } from '../registry/cli.js';

let registry: Registry;
let multi: MultiPlatformImage;

before(async () => {
  registry = await startRegistry();
  multi = await pushMultiPlatform(registry, 'multi:v1');
});

after(async () => {
  await registry?.stop();
  await cleanupTmpDirs();
});

function platform(name: string): PlatformImage {
  const p = multi.platforms.find((x) => x.platform === name);
  assert.ok(p, `pushed ${name}`);
  return p;
}

/** Runs process -> dir:// and checks that exactly the config of `expected` was stored. */
async function pullAndCheck(label: string, args: readonly string[], uriSuffix: string, expected: string): Promise<void> {
  const ws = await workspace(label);
  const store = ws.out('store');
  assertOk(await cli(ws, ['--insecure', ...args, 'process', `registry://${multi.reference}${uriSuffix}`, `dir://${store}`]), ws);
  const chosen = platform(expected);
  await assertDirStore(store, { configDigest: chosen.configDigest, diffIds: multi.diffIds, repoTag: multi.reference });
  for (const p of multi.platforms) {
    if (p !== chosen) assert.equal(existsSync(`${store}/${hexOf(p.configDigest)}.json`), false, `${p.platform} config not stored`);
  }
}

describe('platform choice (process)', () => {
  test('default: linux/amd64 (the last entry of the index)', async () => {
    assert.equal(multi.platforms.at(-1)?.platform, 'linux/amd64');
    await pullAndCheck('plat-default', [], '', 'linux/amd64');
  });

  test('--os linux --architecture arm64', async () => {
    await pullAndCheck('plat-arm64', ['--os', 'linux', '--architecture', 'arm64'], '', 'linux/arm64');
  });

  test('--architecture arm --variant v7', async () => {
    await pullAndCheck('plat-armv7', ['--architecture', 'arm', '--variant', 'v7'], '', 'linux/arm/v7');
  });

  test('URI ?os=linux&arch=arm&variant=v7', async () => {
    await pullAndCheck('plat-uri', [], '?os=linux&arch=arm&variant=v7', 'linux/arm/v7');
  });

  test('URI ?arch= overrides the global --architecture', async () => {
    await pullAndCheck('plat-uri-wins', ['--architecture', 'arm', '--variant', 'v7'], '?arch=arm64&variant=', 'linux/arm64');
  });
});

describe('platform choice (errors and info)', () => {
  const available = ['linux/arm64', 'linux/arm/v7', 'linux/amd64'];

  test('no match (s390x): exit 1, one line listing the available platforms, nothing written', async () => {
    const ws = await workspace('plat-none');
    const store = ws.out('store');
    const r = await cli(ws, ['--insecure', '--architecture', 's390x', 'process', `registry://${multi.reference}`, `dir://${store}`]);
    const line = assertFailsOneLine(r, ws);
    assert.match(line, /s390x/);
    for (const p of available) assert.ok(line.includes(p), `${line} lists ${p}`);
    assert.equal(existsSync(store), false);
  });

  test('variant matching is exact: --architecture arm alone does not pick arm/v7', async () => {
    const ws = await workspace('plat-novariant');
    const r = await cli(ws, ['--insecure', '--architecture', 'arm', 'process', `registry://${multi.reference}`, `tar://${ws.out('x.tar')}`]);
    const line = assertFailsOneLine(r, ws);
    assert.ok(line.includes('linux/arm/v7'), line);
    assert.equal(existsSync(ws.out('x.tar')), false);
  });

  test('info -O json reports the chosen platform and its config; by index digest too', async () => {
    const ws = await workspace('plat-info');
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', '--architecture', 'arm64', 'info', `registry://${multi.reference}`]), ws);
    const info = stdoutJson(r);
    assert.equal(info['platform'], 'linux/arm64');
    assert.equal(info['config_digest'], platform('linux/arm64').configDigest);
    assert.equal((info['labels'] as Record<string, string>)['org.example.platform'], 'linux/arm64');
    const byDigest = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'info', `registry://${registry.host}/multi@${multi.indexDigest}?variant=v7&arch=arm`]), ws);
    const info2 = stdoutJson(byDigest);
    assert.equal(info2['platform'], 'linux/arm/v7');
    assert.equal(info2['config_digest'], platform('linux/arm/v7').configDigest);
  });
});
