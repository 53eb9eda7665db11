// `occystrap info` against a real registry (through a recording proxy, to
// prove no layer is downloaded) and on a docker-save archive: text and
// `-O json`, checked against the facts of the pushed fixture image.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupTmpDirs, fixture, fixtureIndex, fixturePath, type ImageFacts } from './fixtures.js';
import { blobPath, manifestPath, pushImage, pushImageDocker, startFaultProxy, startRegistry, type FaultProxy, type PushedImage, type Registry } from '../registry/harness.js';
import { assertFailsOneLine, assertOk, cli, stdoutJson, workspace } from '../registry/cli.js';

let registry: Registry;
let proxy: FaultProxy;
let oci: PushedImage;
let docker: PushedImage;

before(async () => {
  registry = await startRegistry();
  oci = await pushImage(registry, 'sample', 'sample:v1');
  docker = await pushImageDocker(registry, 'sample', 'sample-docker:v1');
  proxy = await startFaultProxy(registry.url);
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await cleanupTmpDirs();
});

beforeEach(() => {
  proxy.requests.length = 0;
});

function sample(): ImageFacts {
  const img = fixture('oci').images.find((i) => i.ref === 'sample');
  assert.ok(img);
  return img;
}

interface InfoLayer {
  digest: string;
  size: number | null;
  mediaType: string | null;
  diffId: string;
  createdBy: string | null;
}

interface Info {
  image: string;
  tag: string | null;
  mediaType: string | null;
  manifestDigest?: string | null;
  platform: string;
  configDigest: string;
  labels: Record<string, string>;
  env: string[];
  entrypoint: string[] | null;
  cmd: string[] | null;
  layers: InfoLayer[];
  [k: string]: unknown;
}

const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

/** The fixture config's facts every info output must show. */
function assertConfigFacts(info: Info): void {
  const config = fixtureIndex().sample.config as { config: { Env: string[]; Entrypoint: string[]; Cmd: string[]; Labels: Record<string, string> } };
  assert.equal(info.platform, 'linux/amd64');
  assert.equal(info.configDigest, sample().configDigest);
  assert.deepEqual(info.labels, config.config.Labels);
  assert.deepEqual(info.env, config.config.Env);
  assert.deepEqual(info.entrypoint, config.config.Entrypoint);
  assert.deepEqual(info.cmd, config.config.Cmd);
  assert.deepEqual(
    info.layers.map((l) => l.diffId),
    sample().diffIds,
  );
  assert.deepEqual(
    info.layers.map((l) => l.createdBy),
    ['fixture: base', 'fixture: app', 'fixture: empty', 'fixture: update', 'fixture: empty'],
  );
}

/** Only the manifest and the config were fetched: no layer blob. */
function assertNoLayerDownloaded(): void {
  const blobGets = proxy.matching(blobPath(), 'GET').filter((q) => q.status === 200);
  assert.deepEqual(
    blobGets.map((q) => /sha256:[0-9a-f]{64}/.exec(q.path)?.[0]),
    [sample().configDigest],
    'only the config blob is read',
  );
  assert.ok(proxy.matching(manifestPath(), 'GET').length >= 1);
}

describe('info registry://', () => {
  test('-O json: the pushed image facts (OCI media types); only manifest + config fetched', async () => {
    const ws = await workspace('info-json');
    const ref = `${proxy.host}/sample:v1`;
    const r = assertOk(await cli(ws, ['-O', 'json', 'info', `registry://${ref}?insecure=true`]), ws);
    const info = stdoutJson<Info>(r);
    assert.equal(info.image, `${proxy.host}/sample`);
    assert.equal(info.tag, 'v1');
    assert.equal(info.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(info.manifestDigest, oci.manifestDigest);
    assertConfigFacts(info);
    assert.deepEqual(
      info.layers.map((l) => [l.digest, l.size, l.mediaType]),
      (sample().layers ?? []).map((l) => [l.digest, l.size, OCI_LAYER]),
    );
    assertNoLayerDownloaded();
  });

  test('-O json for the Docker media type push', async () => {
    const ws = await workspace('info-docker');
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'info', `registry://${docker.reference}`]), ws);
    const info = stdoutJson<Info>(r);
    assert.equal(info.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(info.manifestDigest, docker.manifestDigest);
    assertConfigFacts(info);
    assert.ok(info.layers.every((l) => l.mediaType === DOCKER_LAYER));
  });

  test('text: names the image, tag, platform, config, every layer digest and diff_id, labels, env', async () => {
    const ws = await workspace('info-text');
    const r = assertOk(await cli(ws, ['--insecure', 'info', `registry://${proxy.host}/sample:v1`]), ws);
    const text = r.stdout;
    for (const needle of [
      `${proxy.host}/sample`,
      'v1',
      'linux/amd64',
      sample().configDigest as string,
      oci.manifestDigest,
      ...(sample().layers ?? []).map((l) => l.digest),
      ...sample().diffIds,
      'org.example.fixture=sample-v1',
      'SAMPLE=1',
      '/opt/app/run.sh',
      '--verbose',
      'fixture: update',
    ]) {
      assert.ok(text.includes(needle), `text output has ${needle}:\n${text}`);
    }
    assertNoLayerDownloaded();
  });

  test('by digest reference', async () => {
    const ws = await workspace('info-digest');
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'info', `registry://${registry.host}/sample@${oci.manifestDigest}`]), ws);
    const info = stdoutJson<Info>(r);
    assert.equal(info.manifestDigest, oci.manifestDigest);
    assertConfigFacts(info);
  });

  test('a digest reference reports the digest as its tag, never "latest"', async () => {
    const ws = await workspace('info-digest-tag');
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'info', `registry://${registry.host}/sample@${oci.manifestDigest}`]), ws);
    assert.equal(stdoutJson<Info>(r).tag, oci.manifestDigest);
  });

  test('an unknown tag: exit 1, one line', async () => {
    const ws = await workspace('info-unknown');
    const r = await cli(ws, ['--insecure', 'info', `registry://${registry.host}/sample:nope`]);
    const line = assertFailsOneLine(r, ws);
    assert.match(line, /nope/);
    assert.equal(r.stdout, '');
  });
});

describe('info tar://', () => {
  test('skopeo-legacy.tar: config facts in -O json and text', async () => {
    const ws = await workspace('info-tar');
    const file = fixturePath('skopeo-legacy.tar');
    const r = assertOk(await cli(ws, ['-O', 'json', 'info', `tar://${file}`]), ws);
    const info = stdoutJson<Info>(r);
    assert.equal(info.image, 'docker.io/library/sample');
    assert.equal(info.tag, 'v1');
    assertConfigFacts(info);
    const text = assertOk(await cli(ws, ['info', `tar://${file}`]), ws).stdout;
    for (const needle of ['docker.io/library/sample', 'v1', sample().configDigest as string, ...sample().diffIds, 'org.opencontainers.image.title=sample']) {
      assert.ok(text.includes(needle), `text has ${needle}:\n${text}`);
    }
  });
});
