// `occystrap search` with the real CLI on the fixtures: what it finds must be what GNU
// tar lists in each layer (the layer.tar files of a dir:// store), in both report formats.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { cleanupTmpDirs, fixture, fixtureIndex, fixturePath, run, tmpDir, type ImageFacts } from './fixtures.js';
import { assertOneErrorLine, errorLines, hexOf, listDir, occystrap, splitRepoTag } from './cli-helpers.js';
import { probe, type PushedImage, type Registry } from '../registry/harness.js';
import { registryWith } from '../support/sample-registry.js';
import { assertOk, cli, workspace } from '../registry/cli.js';

let registry: Registry | undefined;

after(async () => {
  await registry?.stop();
  await cleanupTmpDirs();
});

const SOURCES = ['skopeo-legacy.tar', 'docker25-zstd.tar', 'podman-legacy.tar', 'docker-classic.tar', 'filters-sample.tar'];

/** diff_id hex → paths GNU tar lists in that layer (trailing / removed). */
type Listing = Map<string, Set<string>>;

const listings = new Map<string, Listing>();

async function gnuTarListing(source: string): Promise<Listing> {
  const ws = await tmpDir(`search-list-${source}`);
  const store = path.join(ws, 'store');
  const r = await occystrap(['process', `tar://${fixturePath(source)}`, `dir://${store}`]);
  assert.equal(r.code, 0, r.stderr);
  const listing: Listing = new Map();
  for (const diffId of new Set(fixture(source).diffIds)) {
    const hex = hexOf(diffId);
    const t = await run('tar', ['--quoting-style=literal', '-tf', path.join(store, hex, 'layer.tar')], { env: { ...process.env, LC_ALL: 'C.UTF-8' } });
    assert.equal(t.code, 0, t.stderr);
    const paths = t.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (l.length > 1 ? l.replace(/\/+$/, '') : l));
    listing.set(hex, new Set(paths));
  }
  return listing;
}

/**
 * Script-friendly lines (`IMAGE:TAG:LAYER:PATH`, IMAGE:TAG being `imageTag`) grouped by
 * LAYER, translated to the diff_id hex by `names` (layer name → diff_id hex).
 */
function parseScriptFriendly(stdout: string, imageTag: string, names: ReadonlyMap<string, string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    if (line === '') continue;
    assert.ok(line.startsWith(`${imageTag}:`), `line starts with ${imageTag}: ${line}`);
    const m = /^([0-9a-f]{64}):(.*)$/s.exec(line.slice(imageTag.length + 1));
    assert.ok(m, `IMAGE:TAG:LAYER:PATH: ${line}`);
    const hex = names.get(m[1] as string);
    assert.ok(hex, `LAYER ${m[1]} is the name of one of the image's layers: ${line}`);
    const list = out.get(hex) ?? [];
    list.push(m[2] as string);
    out.set(hex, list);
  }
  return out;
}

/**
 * occystrap's name for a docker-save layer, from its manifest path: the basename of a
 * `blobs/…` path, the directory of `<id>/layer.tar`; for a top-level `<name>.tar` (where
 * occystrap prints an empty name) ours is `<name>`.
 */
function saveLayerName(layerPath: string): string {
  if (layerPath.startsWith('blobs/')) return path.posix.basename(layerPath);
  const dir = path.posix.dirname(layerPath);
  return dir !== '.' ? dir : path.posix.basename(layerPath, '.tar');
}

/** Layer name → diff_id hex, for each layer of an image (from the fixture facts). */
function layerNames(image: ImageFacts, nameOf: (layerPath: string) => string): Map<string, string> {
  const layers = image.layers ?? [];
  assert.equal(layers.length, image.diffIds.length);
  return new Map(layers.map((l, i) => [nameOf(l.path), hexOf(image.diffIds[i] as string)]));
}

const saveNames = (source: string) => layerNames(fixture(source).images[0] as ImageFacts, saveLayerName);

function assertSameAsTar(found: Map<string, string[]>, listing: Listing, what: string): void {
  for (const [hex, paths] of found) {
    assert.ok(listing.has(hex), `${what}: layer ${hex} is a layer of the image`);
    assert.equal(new Set(paths).size, paths.length, `${what}: no path reported twice in layer ${hex}`);
  }
  for (const [hex, paths] of listing) {
    assert.deepEqual(new Set(found.get(hex) ?? []), paths, `${what}: layer ${hex} matches GNU tar's listing`);
  }
}

before(async () => {
  for (const source of SOURCES) listings.set(source, await gnuTarListing(source));
});

const sample = () => fixtureIndex().sample;
const SAMPLE_TAG = 'docker.io/library/sample:v1';

describe('search finds what tar -t lists', () => {
  for (const source of SOURCES) {
    test(`${source}: glob * (script-friendly) = every entry of every layer`, async () => {
      const r = await occystrap(['search', '--script-friendly', `tar://${fixturePath(source)}`, '*']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assertSameAsTar(parseScriptFriendly(r.stdout, fixture(source).repoTags[0] as string, saveNames(source)), listings.get(source) as Listing, source);
    });
  }

  test('regex "." finds every entry too', async () => {
    const source = 'skopeo-legacy.tar';
    const r = await occystrap(['search', '--regex', '--script-friendly', `tar://${fixturePath(source)}`, '.']);
    assert.equal(r.code, 0, r.stderr);
    assertSameAsTar(parseScriptFriendly(r.stdout, SAMPLE_TAG, saveNames(source)), listings.get(source) as Listing, 'regex .');
  });

  test('every basename, given as the pattern, finds its entry (long, non-ASCII, whiteout, link names)', async () => {
    const listing = listings.get('skopeo-legacy.tar') as Listing;
    const notable = sample().notable;
    for (const p of [notable.longPath, notable.nonAsciiName, notable.whiteout, notable.symlink.path, notable.hardlink.path, notable.bigFile.path]) {
      const base = p.slice(p.lastIndexOf('/') + 1);
      const r = await occystrap(['search', '--script-friendly', `tar://${fixturePath('skopeo-legacy.tar')}`, base]);
      assert.equal(r.code, 0, r.stderr);
      const found = parseScriptFriendly(r.stdout, SAMPLE_TAG, saveNames('skopeo-legacy.tar'));
      const hits = [...found.entries()].flatMap(([hex, paths]) => paths.map((x) => [hex, x] as const));
      assert.ok(hits.some(([, x]) => x === p), `${base} finds ${p}: ${r.stdout}`);
      for (const [hex, x] of hits) assert.ok(listing.get(hex)?.has(x), `${x} is in layer ${hex} per tar -t`);
    }
  });
});

describe('report formats', () => {
  const src = () => `tar://${fixturePath('skopeo-legacy.tar')}`;
  const layerHex = (i: number) => hexOf(sample().diffIds[i] as string);

  test('human: links, files, directories; the count line', async () => {
    const r = await occystrap(['search', src(), 'opt/app/[cdr]*']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        `Layer: ${layerHex(1)}`,
        '  opt/app/current -> data.bin (symlink)',
        `  opt/app/data.bin (file, ${sample().notable.bigFile.size} bytes)`,
        `  opt/app/deeply-nested-directory-name (directory)`,
        `  opt/app/deeply-nested-directory-name/deeply-nested-directory-name (directory)`,
        `  opt/app/deeply-nested-directory-name/deeply-nested-directory-name/deeply-nested-directory-name (directory)`,
        `  opt/app/deeply-nested-directory-name/deeply-nested-directory-name/deeply-nested-directory-name/deeply-nested-directory-name (directory)`,
        `  opt/app/deeply-nested-directory-name/deeply-nested-directory-name/deeply-nested-directory-name/deeply-nested-directory-name/file-with-a-rather-long-name.txt (file, 10 bytes)`,
        '  opt/app/readonly.txt (file, 10 bytes)',
        '  opt/app/run-hardlink.sh (file, 35 bytes)',
        '  opt/app/run.sh -> opt/app/run-hardlink.sh (hardlink)',
        '',
        'Found 10 matches in 1 layer.',
        '',
      ].join('\n'),
    );
  });

  test('human: matches in two layers, in manifest order', async () => {
    const r = await occystrap(['search', src(), 'os-release']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      `Layer: ${layerHex(0)}\n  etc/os-release (file, ${sizeOf(0, 'etc/os-release')} bytes)\n\nLayer: ${layerHex(3)}\n  etc/os-release (file, ${sizeOf(3, 'etc/os-release')} bytes)\n\nFound 2 matches in 2 layers.\n`,
    );
  });

  test('one match: singular wording; the 2 MiB file and its size', async () => {
    const big = sample().notable.bigFile;
    const r = await occystrap(['search', src(), 'data.bin']);
    assert.equal(r.stdout, `Layer: ${layerHex(1)}\n  ${big.path} (file, ${big.size} bytes)\n\nFound 1 match in 1 layer.\n`);
  });

  test('script-friendly: exact lines', async () => {
    const r = await occystrap(['search', '--script-friendly', src(), '*.html']);
    assert.equal(r.stdout, `${SAMPLE_TAG}:${layerHex(3)}:srv/www/index.html\n`);
  });

  test('regex: searched anywhere in the path', async () => {
    const r = await occystrap(['search', '--regex', '--script-friendly', src(), 'h[eé]llo w']);
    assert.equal(r.stdout, `${SAMPLE_TAG}:${layerHex(1)}:${sample().notable.nonAsciiName}\n`);
    const anchored = await occystrap(['search', '--regex', '--script-friendly', src(), '^srv/www/[a-z]+\\.bin$']);
    assert.equal(anchored.stdout, `${SAMPLE_TAG}:${layerHex(3)}:srv/www/blob.bin\n`);
  });

  test('no match: "No matches found." (human), nothing (script-friendly); exit 0', async () => {
    const human = await occystrap(['search', src(), '*.nothing']);
    assert.equal(human.code, 0, human.stderr);
    assert.equal(human.stdout, 'No matches found.\n');
    const script = await occystrap(['search', '--script-friendly', src(), '*.nothing']);
    assert.equal(script.code, 0, script.stderr);
    assert.equal(script.stdout, '');
    assert.equal(script.stderr, '');
  });

  test('-O json: one document with every match', async () => {
    const r = await occystrap(['-O', 'json', 'search', src(), 'current']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { image: string; tag: string; layersSearched: number; matches: { layer: string; path: string; type: string; linkname?: string }[] };
    assert.equal(doc.image, 'docker.io/library/sample');
    assert.equal(doc.tag, 'v1');
    assert.equal(doc.layersSearched, new Set(sample().diffIds).size);
    assert.deepEqual(doc.matches.map((m) => [m.layer, m.path, m.type, m.linkname]), [[layerHex(1), 'opt/app/current', 'symlink', 'data.bin']]);
  });

  test('global options before or after; the temp dir is left empty', async () => {
    const temp = path.join(await tmpDir('search-temp'), 't');
    const r = await occystrap(['-j', '2', 'search', src(), 'passwd', '--temp-dir', temp, '--verbose']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /etc\/passwd \(file/);
    assert.match(r.stderr, /temp files in /);
    assert.deepEqual(listDir(temp), []);
  });
});

function sizeOf(layer: number, name: string): number {
  const e = sample().layers[layer]?.find((x) => x.name === name);
  assert.ok(e, `${name} in layer ${layer}`);
  return e.size;
}

describe("occystrap's script-friendly fields: IMAGE:TAG:LAYER:PATH", () => {
  /** Each line split at every ':' must give exactly occystrap's four fields. */
  function fields(stdout: string): string[][] {
    assert.ok(stdout.endsWith('\n'), stdout);
    const lines = stdout.slice(0, -1).split('\n');
    for (const line of lines) assert.equal(line.split(':').length, 4, `4 fields: ${line}`);
    return lines.map((l) => l.split(':'));
  }
  /** The `Layer:` names of a human report, in order. */
  const humanLayers = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('Layer: ')).map((l) => l.slice('Layer: '.length));
  const OS_RELEASE = [0, 3]; // the layers of the sample image with etc/os-release

  test('tar:// classic docker-save: LAYER is the v1 directory id (not the diff_id); the human report agrees', async () => {
    const source = 'docker-classic.tar';
    const img = fixture(source).images[0] as ImageFacts;
    const ids = (img.layers ?? []).map((l) => l.path.slice(0, -'/layer.tar'.length));
    assert.ok(ids.every((id, i) => /^[0-9a-f]{64}$/.test(id) && id !== hexOf(img.diffIds[i] as string)), 'the fixture\'s v1 ids differ from its diff_ids');
    const { name, tag } = splitRepoTag(img.repoTags[0] as string);
    const r = await occystrap(['search', '--script-friendly', `tar://${fixturePath(source)}`, 'os-release']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fields(r.stdout), OS_RELEASE.map((i) => [name, tag, ids[i], 'etc/os-release']));
    const human = await occystrap(['search', `tar://${fixturePath(source)}`, 'os-release']);
    assert.deepEqual(humanLayers(human.stdout), OS_RELEASE.map((i) => ids[i]));
  });

  test('tar:// Docker 25+: LAYER is the blob hex of blobs/sha256/<hex>', async () => {
    const source = 'docker25-zstd.tar';
    const img = fixture(source).images[0] as ImageFacts;
    const blobs = (img.layers ?? []).map((l) => {
      assert.equal(l.path, `blobs/sha256/${hexOf(l.digest)}`);
      return hexOf(l.digest);
    });
    assert.notEqual(blobs[0], hexOf(img.diffIds[0] as string), 'zstd blobs: blob digest and diff_id differ');
    const r = await occystrap(['search', '--script-friendly', `tar://${fixturePath(source)}`, 'os-release']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fields(r.stdout), OS_RELEASE.map((i) => ['sample', 'v1', blobs[i], 'etc/os-release']));
    const human = await occystrap(['search', `tar://${fixturePath(source)}`, 'os-release']);
    assert.deepEqual(humanLayers(human.stdout), OS_RELEASE.map((i) => blobs[i]));
  });

  test('ocidir://: LAYER is the blob hex', async () => {
    const img = fixture('oci').images.find((i) => i.ref === 'sample') as ImageFacts;
    const blobs = (img.layers ?? []).map((l) => hexOf(l.digest));
    const r = await occystrap(['search', '--script-friendly', `ocidir://${fixturePath('oci')}:sample`, 'os-release']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fields(r.stdout), OS_RELEASE.map((i) => ['oci', 'sample', blobs[i], 'etc/os-release']));
  });

  describe('registry://127.0.0.1:PORT', () => {
    let pushed: PushedImage;
    /** The layer digests hex of the manifest as the registry serves it. */
    let manifestLayers: string[];
    before(async () => {
      ({ registry, pushed: [pushed] } = await registryWith([['sample', 'fixtures/small:latest']]));
      const m = await probe(`${registry.url}/v2/fixtures/small/manifests/latest`, { Accept: 'application/vnd.oci.image.manifest.v1+json' });
      assert.equal(m?.status, 200, m?.body);
      manifestLayers = (JSON.parse(m.body) as { layers: { digest: string }[] }).layers.map((l) => hexOf(l.digest));
    });
    const diffHex = (i: number) => hexOf(sample().diffIds[i] as string);

    test('command and filter: IMAGE without the host, TAG, LAYER = the manifest\'s compressed digest hex, PATH', async () => {
      assert.match(pushed.host, /^127\.0\.0\.1:\d+$/);
      assert.notEqual(manifestLayers[0], diffHex(0), 'gzip blobs: blob digest and diff_id differ');
      const ws = await workspace('search-fields-reg');
      const r = assertOk(await cli(ws, ['--insecure', 'search', '--script-friendly', `registry://${pushed.reference}`, 'os-release']), ws);
      assert.deepEqual(fields(r.stdout), OS_RELEASE.map((i) => ['fixtures/small', 'latest', manifestLayers[i], 'etc/os-release']));
      const human = assertOk(await cli(ws, ['--insecure', 'search', `registry://${pushed.reference}`, 'os-release']), ws);
      assert.deepEqual(humanLayers(human.stdout), OS_RELEASE.map((i) => manifestLayers[i]));
      const filtered = assertOk(await cli(ws, ['--insecure', 'process', `registry://${pushed.reference}`, `dir://${ws.out('store')}`, '-f', 'search:pattern=os-release,script_friendly=true']), ws);
      assert.equal(filtered.stdout, r.stdout, 'the filter prints what the command prints');
    });

    test('-O json: layer is the compressed digest hex, diffId the uncompressed digest, image the full name', async () => {
      const ws = await workspace('search-json-reg');
      const r = assertOk(await cli(ws, ['--insecure', '-O', 'json', 'search', `registry://${pushed.reference}`, 'os-release']), ws);
      const doc = JSON.parse(r.stdout) as { image: string; tag: string; matches: { layer: string; diffId: string; index: number; path: string }[] };
      assert.equal(doc.image, `${pushed.host}/fixtures/small`);
      assert.equal(doc.tag, 'latest');
      assert.deepEqual(
        doc.matches.map((m) => [m.layer, m.diffId, m.index, m.path]),
        OS_RELEASE.map((i) => [manifestLayers[i], sample().diffIds[i], i, 'etc/os-release']),
      );
    });
  });
});

describe('search command line errors (exit 2, one line)', () => {
  const cases: [string, string[], RegExp][] = [
    ['no PATTERN', ['search', 'tar://x.tar'], /usage error/],
    ['a bad regex', ['search', '--regex', `tar://${'.fixtures/skopeo-legacy.tar'}`, '(unclosed'], /invalid regular expression/],
    ['an empty pattern', ['search', 'tar://.fixtures/skopeo-legacy.tar', ''], /non-empty PATTERN/],
    ['a missing file', ['search', 'tar://nope.tar', '*'], /nope.tar does not exist/],
    ['an unknown option', ['search', '--glob', 'tar://.fixtures/skopeo-legacy.tar', '*'], /usage error/],
  ];
  for (const [what, args, phrase] of cases) {
    test(what, async () => {
      const r = await occystrap(args);
      assert.match(assertOneErrorLine(r, 2), phrase);
      assert.equal(r.stdout, '');
    });
  }

  test('a corrupt source fails with exit 1 and prints no report', async () => {
    const r = await occystrap(['search', `tar://${fixturePath('bad-diffid-mismatch.tar')}`, '*']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(errorLines(r.stderr)[0] ?? '', /diff_id/);
  });
});
