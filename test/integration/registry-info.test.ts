// `occystrap info` against a real registry (through a recording proxy, to
// prove no layer is downloaded) and on a docker-save archive: text and
// `-O json`, checked against the facts of the pushed fixture image.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fixtureIndex, fixturePath } from './fixtures.js';
import { blobPath, manifestPath } from '../registry/harness.js';
import { sample, sampleBehindFaultProxy } from '../support/sample-registry.js';
import { assertFailsOneLine, assertOk, cli, stdoutJson, workspace } from '../registry/cli.js';

const suite = sampleBehindFaultProxy({ docker: 'sample-docker:v1' });

interface InfoLayer {
  index: number;
  digest?: string;
  size?: number;
  media_type: string;
  compression?: string;
  diff_id: string;
  created_by?: string;
}

interface Info {
  image: string;
  tag: string;
  media_type?: string;
  schema_version?: number;
  manifest_digest?: string;
  registry?: string;
  platform: string;
  config_digest: string;
  labels: Record<string, string>;
  env: string[];
  entrypoint: string[] | null;
  cmd: string[] | null;
  layers: InfoLayer[];
  [k: string]: unknown;
}

/** Every key the Python occystrap's `info -O json` prints for a registry image (its _build_info). */
const OCCYSTRAP_REGISTRY_KEYS = [
  'image', 'tag', 'schema_version', 'media_type', 'config_digest', 'config_size', 'layer_count', 'total_compressed_size', 'layers',
  'architecture', 'os', 'variant', 'created', 'diff_ids', 'history_count', 'empty_layer_count',
  'labels', 'env', 'entrypoint', 'cmd', 'working_dir', 'exposed_ports', 'volumes',
];
/** occystrap's per-layer keys with a manifest. */
const OCCYSTRAP_LAYER_KEYS = ['index', 'digest', 'size', 'media_type', 'compression', 'diff_id', 'created_by'];

const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

/** The fixture config's facts every info output must show. */
function assertConfigFacts(info: Info): void {
  const config = fixtureIndex().sample.config as { config: { Env: string[]; Entrypoint: string[]; Cmd: string[]; Labels: Record<string, string> } };
  assert.equal(info.platform, 'linux/amd64');
  assert.equal(info.config_digest, sample().configDigest);
  assert.deepEqual(info.labels, config.config.Labels);
  assert.deepEqual(info.env, config.config.Env);
  assert.deepEqual(info.entrypoint, config.config.Entrypoint);
  assert.deepEqual(info.cmd, config.config.Cmd);
  assert.deepEqual(
    info.layers.map((l) => l.diff_id),
    sample().diffIds,
  );
  assert.deepEqual(
    info.layers.map((l) => l.created_by),
    ['fixture: base', 'fixture: app', 'fixture: empty', 'fixture: update', 'fixture: empty'],
  );
}

/** Only the manifest and the config were fetched: no layer blob. */
function assertNoLayerDownloaded(): void {
  const blobGets = suite.proxy.matching(blobPath(), 'GET').filter((q) => q.status === 200);
  assert.deepEqual(
    blobGets.map((q) => /sha256:[0-9a-f]{64}/.exec(q.path)?.[0]),
    [sample().configDigest],
    'only the config blob is read',
  );
  assert.ok(suite.proxy.matching(manifestPath(), 'GET').length >= 1);
}

describe('info registry://', () => {
  test('-O json: the pushed image facts (OCI media types); only manifest + config fetched', async () => {
    const ws = await workspace('info-json');
    const ref = `${suite.proxy.host}/sample:v1`;
    const r = assertOk(await cli(ws, ['-O', 'json', 'info', `registry://${ref}?insecure=true`]), ws);
    const info = stdoutJson<Info>(r);
    // occystrap's image field is the repository path; the host is an extra field.
    assert.equal(info.image, 'sample');
    assert.equal(info.registry, suite.proxy.host);
    assert.equal(info.tag, 'v1');
    assert.equal(info.media_type, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(info.manifest_digest, suite.oci.manifestDigest);
    assertConfigFacts(info);
    assert.deepEqual(
      info.layers.map((l) => [l.digest, l.size, l.media_type, l.compression]),
      (sample().layers ?? []).map((l) => [l.digest, l.size, OCI_LAYER, 'gzip']),
    );
    assertNoLayerDownloaded();
  });

  test("-O json has occystrap's fields, with occystrap's values", async () => {
    const ws = await workspace('info-occystrap-json');
    const info = stdoutJson<Info>(assertOk(await cli(ws, ['--insecure', '-O', 'json', 'info', `registry://${suite.proxy.host}/sample:v1`]), ws));
    for (const key of OCCYSTRAP_REGISTRY_KEYS) assert.ok(key in info, `info has ${key}`);
    for (const layer of info.layers) for (const key of OCCYSTRAP_LAYER_KEYS) assert.ok(key in layer, `layer ${layer.index} has ${key}`);
    const config = fixtureIndex().sample.config as { architecture: string; os: string; history: { empty_layer?: boolean }[] };
    const layers = sample().layers ?? [];
    assert.deepEqual(
      [info['schema_version'], info['layer_count'], info['total_compressed_size'], info['architecture'], info['os'], info['diff_ids'], info['history_count'], info['empty_layer_count']],
      [2, layers.length, layers.reduce((n, l) => n + l.size, 0), config.architecture, config.os, sample().diffIds, config.history.length, config.history.filter((h) => h.empty_layer === true).length],
    );
    assert.deepEqual(info.layers.map((l) => l.index), layers.map((_, i) => i), 'counted from 0, as occystrap counts');
    assert.ok(Array.isArray(info['exposed_ports']) && Array.isArray(info['volumes']));
  });

  test("text has occystrap's sections: Layers: N with a table, Total compressed size, History, Container Config", async () => {
    const ws = await workspace('info-occystrap-text');
    const text = assertOk(await cli(ws, ['--insecure', 'info', `registry://${suite.proxy.host}/sample:v1`]), ws).stdout;
    const layers = sample().layers ?? [];
    assert.match(text, /^Image: +sample:v1$/m);
    assert.match(text, new RegExp(`^Layers: ${layers.length}$`, 'm'));
    assert.match(text, /^Total compressed size: \d+(\.\d)? (B|KB|MB)$/m);
    assert.match(text, /^\| # +\| Compressed Digest +\| DiffID +\| Size +\| Compression +\| Created By +\|$/m);
    assert.equal(text.match(/^\| \d+ +\| sha256:[0-9a-f]{18}\.\.\. \|/gm)?.length, layers.length, 'one table row per layer, digests cut as occystrap cuts them');
    assert.match(text, /^History: \d+ entries \(\d+ empty\)$/m);
    assert.match(text, /^Container Config:$/m);
    assert.match(text, /^ {2}Entrypoint: /m);
  });

  test('-O json for the Docker media type push', async () => {
    const ws = await workspace('info-docker');
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'info', `registry://${suite.docker.reference}`]), ws);
    const info = stdoutJson<Info>(r);
    assert.equal(info.media_type, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(info.manifest_digest, suite.docker.manifestDigest);
    assertConfigFacts(info);
    assert.ok(info.layers.every((l) => l.media_type === DOCKER_LAYER && l.compression === 'gzip'));
  });

  test('text: names the image, tag, platform, config, every layer digest and diff_id, labels, env', async () => {
    const ws = await workspace('info-text');
    const r = assertOk(await cli(ws, ['--insecure', 'info', `registry://${suite.proxy.host}/sample:v1`]), ws);
    const text = r.stdout;
    for (const needle of [
      'sample:v1',
      suite.proxy.host,
      'linux/amd64',
      sample().configDigest as string,
      suite.oci.manifestDigest,
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
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'info', `registry://${suite.registry.host}/sample@${suite.oci.manifestDigest}`]), ws);
    const info = stdoutJson<Info>(r);
    assert.equal(info.manifest_digest, suite.oci.manifestDigest);
    assertConfigFacts(info);
  });

  test('a digest reference reports the digest as its tag, never "latest"', async () => {
    const ws = await workspace('info-digest-tag');
    const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'info', `registry://${suite.registry.host}/sample@${suite.oci.manifestDigest}`]), ws);
    assert.equal(stdoutJson<Info>(r).tag, suite.oci.manifestDigest);
  });

  test('an unknown tag: exit 1, one line', async () => {
    const ws = await workspace('info-unknown');
    const r = await cli(ws, ['--insecure', 'info', `registry://${suite.registry.host}/sample:nope`]);
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
    // Without a manifest occystrap has no manifest fields and no blob digests or sizes.
    for (const key of ['schema_version', 'media_type', 'total_compressed_size', 'config_size', 'manifest_digest']) assert.ok(!(key in info), `no ${key}`);
    assert.ok(info.layers.every((l) => !('digest' in l) && !('size' in l)));
    assert.equal(info['layer_count'], sample().diffIds.length);
    const text = assertOk(await cli(ws, ['info', `tar://${file}`]), ws).stdout;
    for (const needle of ['docker.io/library/sample', 'v1', sample().configDigest as string, ...sample().diffIds, 'org.opencontainers.image.title=sample']) {
      assert.ok(text.includes(needle), `text has ${needle}:\n${text}`);
    }
  });
});
