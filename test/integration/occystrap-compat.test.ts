// Scripts written for the Python occystrap keep working: its summary line, its legacy
// commands (rewritten into process/search with one deprecation line), its global options
// this version does not have yet (one line, not every command's usage), the RepoTag a
// tar:// output writes (?name=), and a process --help that keeps every URI grammar whole.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { cleanupTmpDirs, fixture, fixturePath, run, skopeo, tmpDir } from './fixtures.js';
import { errorLines, hexOf, occystrap, summaryLines } from './cli-helpers.js';
import { makeImage, manifestBytes, writeArchive } from './archive-builder.js';
import type { Registry } from '../registry/harness.js';
import { registryWith } from '../support/sample-registry.js';
import { TRANSPORTS } from '../../src/shell/transports/index.js';

let registry: Registry;

before(async () => {
  ({ registry } = await registryWith([['sample', 'team/sample:v1']]));
});

after(async () => {
  await registry?.stop();
  await cleanupTmpDirs();
});

/** The warning lines (`occystrap: warning: …`) on stderr. */
function warnings(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('occystrap: warning: '));
}

async function manifestOf(archive: string): Promise<{ RepoTags: string[]; Layers: string[] }[]> {
  const r = await run('tar', ['-xOf', archive, 'manifest.json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { RepoTags: string[]; Layers: string[] }[];
}

describe('Summary line', () => {
  test('one layer reads "1 layer", and images are counted as occystrap counts them (N/M images)', async () => {
    const dir = await tmpDir('compat-summary');
    const image = await makeImage(1, 'one');
    const file = path.join(dir, 'one.tar');
    await writeArchive(file, [
      { name: 'manifest.json', data: manifestBytes([{ Config: image.configName, RepoTags: ['one:1'], Layers: ['l0/layer.tar'] }]) },
      { name: image.configName, data: image.config },
      { name: 'l0/layer.tar', data: image.layers[0] as Buffer },
    ]);
    const r = await occystrap(['process', `tar://${file}`, `dir://${dir}/store`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(summaryLines(r.stderr)[0] ?? '', /^Summary: 1\/1 images, 1 layer, [\d.]+ (B|KB) written, [\d.]+s at [\d.]+ (B|KB|MB)\/s$/);
    assert.match(r.stderr, /^config sha256:[0-9a-f]{12} one:1, 1 layer$/m);
  });

  test('several layers read "N layers"', async () => {
    const dir = await tmpDir('compat-summary-n');
    const r = await occystrap(['process', `tar://${fixturePath('docker-classic.tar')}`, `dir://${dir}/store`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(summaryLines(r.stderr)[0] ?? '', /^Summary: 1\/1 images, 5 layers \(1 skipped\), /);
  });
});

describe('process --help', () => {
  test('keeps every URI grammar of the transport table whole, on one line', async () => {
    const r = await occystrap(['process', '--help']);
    assert.equal(r.code, 0, r.stderr);
    const usages = TRANSPORTS.flatMap((t) => [t.source, t.destination]).flatMap((role) => (role && 'usage' in role ? [role.usage] : []));
    assert.ok(usages.includes('registry://HOST/NAME[:TAG|@DIGEST]'), usages.join(' '));
    for (const usage of usages) assert.ok(r.stdout.split('\n').some((line) => line.includes(usage)), `process --help shows ${usage} whole:\n${r.stdout}`);
  });
});

describe('legacy commands', () => {
  test('fetch-to-tarfile REGISTRY IMAGE TAG FILE runs process registry:// tar://, with one deprecation line', async () => {
    const dir = await tmpDir('compat-fetch');
    const out = path.join(dir, 'out.tar');
    const r = await occystrap(['--insecure', 'fetch-to-tarfile', registry.host, 'team/sample', 'v1', out, '--normalize-timestamps', '--timestamp', '7']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(warnings(r.stderr), [`occystrap: warning: "fetch-to-tarfile" is deprecated; it runs: occystrap process registry://${registry.host}/team/sample:v1 tar://${out} -f normalize-timestamps:ts=7`]);
    const [entry] = await manifestOf(out);
    assert.deepEqual(entry?.RepoTags, [`${registry.host}/team/sample:v1`]);
    const inspected = await skopeo(['inspect', `docker-archive:${out}`]);
    assert.equal(inspected.code, 0, inspected.stderr);
  });

  test('tarfile-to-extracted FILE DIR --use-unique-names writes the store process would', async () => {
    const dir = await tmpDir('compat-extracted');
    const r = await occystrap(['tarfile-to-extracted', '--use-unique-names', fixturePath('docker-classic.tar'), `${dir}/store`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(warnings(r.stderr).length, 1);
    assert.match(warnings(r.stderr)[0] as string, /it runs: occystrap process tar:\/\/\S+docker-classic\.tar 'dir:\/\/\S+\/store\?unique_names=true'$/);
    const names = readdirSync(`${dir}/store`);
    assert.ok(names.some((n) => /^manifest-.+\.json$/.test(n)), names.join(' '));
    for (const diffId of fixture('docker-classic.tar').images[0]?.diffIds ?? []) assert.ok(names.includes(hexOf(diffId)));
  });

  test('recreate-image DIR IMAGE TAG FILE rebuilds a loadable archive from a dir:// store, named IMAGE:TAG', async () => {
    const dir = await tmpDir('compat-recreate');
    const store = `${dir}/store`;
    assert.equal((await occystrap(['process', `tar://${fixturePath('docker-classic.tar')}`, `dir://${store}?unique_names=true`])).code, 0);
    const [repoTag] = fixture('docker-classic.tar').images[0]?.repoTags ?? [];
    const colon = (repoTag as string).lastIndexOf(':');
    const [image, tag] = [(repoTag as string).slice(0, colon), (repoTag as string).slice(colon + 1)];
    const out = path.join(dir, 'again.tar');
    const r = await occystrap(['recreate-image', store, image, tag, out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(warnings(r.stderr).length, 1);
    const [entry] = await manifestOf(out);
    assert.deepEqual(entry?.RepoTags, [`${image}:${tag}`]);
    const inspected = await skopeo(['inspect', '--config', `docker-archive:${out}`]);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.deepEqual((JSON.parse(inspected.stdout) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids, fixture('docker-classic.tar').images[0]?.diffIds);
  });

  test('search-layers-tarfile FILE PATTERN --script-friendly prints what search prints', async () => {
    const legacy = await occystrap(['search-layers-tarfile', fixturePath('docker-classic.tar'), '*run*', '--script-friendly']);
    const modern = await occystrap(['search', '--script-friendly', `tar://${fixturePath('docker-classic.tar')}`, '*run*']);
    assert.equal(legacy.code, 0, legacy.stderr);
    assert.equal(modern.code, 0, modern.stderr);
    assert.ok(modern.stdout.length > 0);
    assert.equal(legacy.stdout, modern.stdout);
    assert.equal(warnings(legacy.stderr).length, 1);
  });

  test('search-layers REGISTRY IMAGE TAG PATTERN searches the registry image', async () => {
    const r = await occystrap(['--insecure', 'search-layers', registry.host, 'team/sample', 'v1', 'opt/app/*.sh']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /opt\/app\/run\.sh/);
  });

  test('the docker aliases reach the daemon through --socket: a missing socket is one line naming it, exit 1, nothing written', async () => {
    const dir = await tmpDir('compat-docker');
    for (const argv of [
      ['docker-to-tarfile', 'busybox', 'latest', `${dir}/x.tar`, '--socket', '/run/none.sock'],
      ['search-layers-docker', 'busybox', 'latest', '*sh', '--socket', '/run/none.sock'],
    ]) {
      const r = await occystrap(['--insecure', ...argv]);
      assert.equal(r.code, 1, `${argv[0]}: ${r.stderr}`);
      assert.equal(warnings(r.stderr).length, 1, r.stderr);
      const errors = errorLines(r.stderr);
      assert.equal(errors.length, 1, r.stderr);
      assert.match(errors[0] as string, /docker:\/\/busybox:latest\?socket=\/run\/none\.sock: no Docker daemon socket at \/run\/none\.sock \(\?socket=\); start dockerd/);
    }
    assert.deepEqual(readdirSync(dir), []);
  });

  test('fetch-to-oci and fetch-to-mounts write a runtime bundle and overlay mounts, with one deprecation line each', async () => {
    const dir = await tmpDir('compat-bundles');
    const oci = await occystrap(['--insecure', 'fetch-to-oci', registry.host, 'team/sample', 'v1', `${dir}/bundle`]);
    assert.equal(oci.code, 0, oci.stderr);
    assert.equal(warnings(oci.stderr).length, 1, oci.stderr);
    assert.ok(existsSync(path.join(dir, 'bundle', 'config.json')) && existsSync(path.join(dir, 'bundle', 'rootfs', 'etc', 'os-release')));
    const mounts = await occystrap(['--insecure', 'fetch-to-mounts', registry.host, 'team/sample', 'v1', `${dir}/mounts`]);
    assert.equal(mounts.code, 0, mounts.stderr);
    assert.equal(warnings(mounts.stderr).length, 1, mounts.stderr);
    assert.ok(existsSync(path.join(dir, 'mounts', 'rootfs', 'etc', 'os-release')), 'the overlay is mounted');
    execFileSync('umount', [path.join(dir, 'mounts', 'rootfs')]);
  });

  test('wrong arity or an unknown option: one usage line naming the legacy command and its arguments', async () => {
    const few = await occystrap(['fetch-to-tarfile', 'host', 'image']);
    assert.equal(few.code, 2);
    assert.deepEqual(errorLines(few.stderr), ['occystrap: usage error: fetch-to-tarfile takes 4 arguments (REGISTRY IMAGE TAG FILE), got 2; usage: occystrap fetch-to-tarfile REGISTRY IMAGE TAG FILE [--normalize-timestamps] [--timestamp VALUE]; see "occystrap --help"']);
    const unknown = await occystrap(['tarfile-to-extracted', 'a.tar', 'dir', '--bogus']);
    assert.equal(unknown.code, 2);
    assert.match(errorLines(unknown.stderr)[0] as string, /^occystrap: usage error: tarfile-to-extracted: unknown option --bogus; usage: occystrap tarfile-to-extracted FILE DIR/);
  });
});

describe("occystrap's global options that are planned here", () => {
  for (const argv of [
    ['--layer-cache', 'cache.json', 'process', 'tar://a.tar', 'dir://b'],
    ['-J', '4', 'info', 'tar://a.tar'],
    ['--image-parallel=2', 'info', 'tar://a.tar'],
    ['process', 'tar://a.tar', 'dir://b', '--no-verify'],
    ['--verify-full', 'check', 'tar://a.tar'],
    ['--verify', 'process', 'tar://a.tar', 'dir://b'],
  ]) {
    test(`${argv.join(' ')}: one line naming the option, exit 2`, async () => {
      const r = await occystrap(argv);
      assert.equal(r.code, 2, r.stderr);
      const option = (argv.find((a) => a.startsWith('-')) as string).replace(/=.*/, '');
      assert.deepEqual(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^occystrap: usage error: ${option} \\(occystrap's option for [^)]+\\) is not available yet; run without it`));
    });
  }
});

describe('tar:// ?name=', () => {
  test('sets the RepoTag written (and what docker load would tag); default is the source name', async () => {
    const dir = await tmpDir('compat-name');
    const source = `tar://${fixturePath('docker-classic.tar')}`;
    const named = path.join(dir, 'named.tar');
    const r = await occystrap(['process', source, `tar://${named}?name=myorg/app:2.0`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await manifestOf(named))[0]?.RepoTags, ['myorg/app:2.0']);
    const inspected = await skopeo(['inspect', `docker-archive:${named}:myorg/app:2.0`]);
    assert.equal(inspected.code, 0, inspected.stderr);

    const untagged = path.join(dir, 'untagged.tar');
    assert.equal((await occystrap(['process', source, `tar://${untagged}?name=app`])).code, 0);
    assert.deepEqual((await manifestOf(untagged))[0]?.RepoTags, ['app:latest']);

    const plain = path.join(dir, 'plain.tar');
    assert.equal((await occystrap(['process', source, `tar://${plain}`])).code, 0);
    assert.deepEqual((await manifestOf(plain))[0]?.RepoTags, fixture('docker-classic.tar').images[0]?.repoTags);
  });

  test('a bad name is a usage error before anything is written', async () => {
    const dir = await tmpDir('compat-badname');
    for (const name of ['Bad:x', 'a@sha256:' + '0'.repeat(64), 'a:b:c:d']) {
      const out = path.join(dir, 'out.tar');
      const r = await occystrap(['process', `tar://${fixturePath('docker-classic.tar')}`, `tar://${out}?name=${name}`]);
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.equal(errorLines(r.stderr).length, 1, r.stderr);
      assert.match(errorLines(r.stderr)[0] as string, /\?name=/);
      assert.equal(existsSync(out), false);
    }
  });
});
