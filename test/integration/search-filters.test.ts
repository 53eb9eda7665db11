// The search and inspect filters inside `occystrap process`, with the real CLI: both
// are pass-throughs (the written image is byte for byte what it is without them), search
// prints its report, inspect appends one JSON line per run, and filters chain in
// command-line order.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, fixture, fixtureIndex, fixturePath, sha256File, tmpDir } from './fixtures.js';
import { errorLines, hexOf, listDir, occystrap } from './cli-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});

const SRC = 'skopeo-legacy.tar';
const src = () => `tar://${fixturePath(SRC)}`;

interface InspectLine {
  name: string;
  layers: { Id: string; Size: number; Created: number; CreatedBy: string; Comment: string; Tags: string[] | null }[];
}

function inspectLines(file: string): InspectLine[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as InspectLine);
}

describe('search as a filter', () => {
  test('dir:// output: layers stored untouched (each hashes to its diff_id); the report goes to stdout', async () => {
    const ws = await tmpDir('sf-dir');
    const store = path.join(ws, 'store');
    const r = await occystrap(['process', src(), `dir://${store}`, '-f', 'search:pattern=*.txt']);
    assert.equal(r.code, 0, r.stderr);
    for (const diffId of new Set(fixture(SRC).diffIds)) {
      assert.equal(await sha256File(path.join(store, hexOf(diffId), 'layer.tar')), diffId);
    }
    const alone = await occystrap(['search', src(), '*.txt']);
    assert.equal(r.stdout, alone.stdout, 'the filter prints what the search command prints');
    assert.match(r.stdout, /^Layer: [0-9a-f]{64}\n/);
    assert.match(r.stdout, /Found 7 matches in 1 layer\.\n$/);
  });

  test('tar:// output: byte-identical to a run without filters; script_friendly option; a second store run re-reads present layers', async () => {
    const ws = await tmpDir('sf-tar');
    const plain = path.join(ws, 'plain.tar');
    const filtered = path.join(ws, 'filtered.tar');
    const a = await occystrap(['process', src(), `tar://${plain}`]);
    assert.equal(a.code, 0, a.stderr);
    const b = await occystrap(['process', src(), `tar://${filtered}`, '-f', 'search:pattern=passwd,script_friendly=true']);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(await sha256File(filtered), await sha256File(plain));
    assert.equal(b.stdout, `docker.io/library/sample:v1:${hexOf(fixture(SRC).diffIds[0] as string)}:etc/passwd\n`);

    // search wants every layer: a store that has them all still lets search see them.
    const store = path.join(ws, 'store');
    assert.equal((await occystrap(['process', src(), `dir://${store}`])).code, 0);
    const again = await occystrap(['process', src(), `dir://${store}`, '-f', 'search:pattern=passwd,script_friendly=true']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, b.stdout);
  });

  test('after a rewriting filter, a rewritten layer is named by its new diff_id hex (occystrap renames it so), an unchanged one keeps its name', async () => {
    const classic = 'docker-classic.tar';
    const img = fixture(classic).images[0];
    assert.ok(img?.layers);
    const v1Id = (i: number) => (img.layers?.[i]?.path ?? '').slice(0, -'/layer.tar'.length);
    const ws = await tmpDir('sf-rewrite');
    const store = path.join(ws, 'store');
    const r = await occystrap(['process', `tar://${fixturePath(classic)}`, `dir://${store}`, '-f', 'exclude:pattern=etc/passwd', '-f', 'search:pattern=os-release,script_friendly=true']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n').filter((l) => l !== '').map((l) => l.split(':'));
    assert.deepEqual(lines.map((f) => [f.length, f[0], f[1], f[3]]), [
      [4, 'sample', 'v1', 'etc/os-release'],
      [4, 'sample', 'v1', 'etc/os-release'],
    ]);
    const [rewritten, other] = lines.map((f) => f[2] as string);
    assert.notEqual(rewritten, hexOf(img.diffIds[0] as string), 'layer 0 lost etc/passwd: new content');
    assert.notEqual(rewritten, v1Id(0));
    assert.equal(await sha256File(path.join(store, rewritten as string, 'layer.tar')), `sha256:${rewritten}`, 'the name is the diff_id of the layer stored');
    // Layer 3 has no etc/passwd: the rewrite changed nothing, so the layer is the input's, named as before.
    assert.equal(other, v1Id(3));
    assert.ok(existsSync(path.join(store, hexOf(img.diffIds[3] as string))), 'layer 3 stored under its own diff_id');
  });

  test('a filter that changes nothing leaves the input\'s names (v1 ids) in place', async () => {
    const classic = 'docker-classic.tar';
    const img = fixture(classic).images[0];
    const ws = await tmpDir('sf-norewrite');
    const r = await occystrap(['process', `tar://${fixturePath(classic)}`, `tar://${path.join(ws, 'out.tar')}`, '-f', 'inspect:file=' + path.join(ws, 'i.jsonl'), '-f', 'search:pattern=os-release,script_friendly=true']);
    assert.equal(r.code, 0, r.stderr);
    const ids = [0, 3].map((i) => (img?.layers?.[i]?.path ?? '').slice(0, -'/layer.tar'.length));
    assert.equal(r.stdout, ids.map((id) => `sample:v1:${id}:etc/os-release\n`).join(''));
  });

  test('bad specs are usage errors (exit 2)', async () => {
    for (const [spec, phrase] of [
      ['search', /search needs a pattern/],
      ['search:pattern=(,regex=true', /invalid regular expression/],
      ['search:pattern=a,colour=red', /unknown option colour/],
      ['inspect', /inspect needs a file/],
    ] as const) {
      const ws = await tmpDir('sf-bad');
      const r = await occystrap(['process', src(), `dir://${path.join(ws, 'out')}`, '-f', spec]);
      assert.equal(r.code, 2, `${spec}: ${r.stderr}`);
      assert.match(errorLines(r.stderr)[0] ?? '', phrase);
      assert.equal(existsSync(path.join(ws, 'out')), false, 'nothing written');
    }
  });
});

describe('inspect', () => {
  test('appends one line per run; layers newest first with sizes, history and Tags', async () => {
    const ws = await tmpDir('inspect');
    const store = path.join(ws, 'store');
    const file = path.join(ws, 'layers.jsonl');
    for (const target of [`dir://${store}`, `tar://${path.join(ws, 'image.tar')}`]) {
      const r = await occystrap(['process', src(), target, '-f', `inspect:file=${file}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '', 'inspect writes nothing to stdout');
    }
    const raw = readFileSync(file, 'utf8');
    const lines = raw.split('\n');
    assert.equal(lines.length, 3, 'two lines and a final newline');
    assert.equal(lines[0], lines[1], 'same image, same line');

    // Into a store that already has every layer: nothing is delivered, sizes are 0.
    const again = await occystrap(['process', src(), `dir://${store}`, '-f', `inspect:file=${file}`]);
    assert.equal(again.code, 0, again.stderr);
    const third = inspectLines(file)[2] as InspectLine;
    assert.deepEqual(
      third.layers.map((l) => l.Size),
      [0, 0, 0, 0, 0],
    );
    assert.match(lines[0] as string, /^\{"layers": \[\{"Comment": "", "Created": \d+, "CreatedBy": /, 'Python json.dumps(sort_keys=True) layout');

    const [record] = inspectLines(file) as [InspectLine];
    const sample = fixtureIndex().sample;
    const history = (sample.config['history'] as { created_by: string }[]).filter((h) => !(h as { empty_layer?: boolean }).empty_layer);
    assert.equal(record.name, 'docker.io/library/sample:v1');
    assert.deepEqual(
      record.layers.map((l) => l.Id),
      [...sample.diffIds].reverse(),
    );
    assert.deepEqual(
      record.layers.map((l) => l.Size),
      [...sample.diffIds].reverse().map((d) => statSync(path.join(store, hexOf(d), 'layer.tar')).size),
      'sizes are the layer.tar sizes (a repeated layer counts its size too)',
    );
    assert.deepEqual(
      record.layers.map((l) => l.CreatedBy),
      history.map((h) => h.created_by).reverse(),
    );
    assert.ok(record.layers.every((l) => l.Created === Date.parse('2024-01-02T03:04:05Z') / 1000));
    assert.deepEqual(
      record.layers.map((l) => l.Tags),
      [['docker.io/library/sample:v1'], null, null, null, null],
    );
  });

  test('chained at two positions around search: both lines agree; filters keep command-line order', async () => {
    const ws = await tmpDir('inspect-chain');
    const out = path.join(ws, 'out.tar');
    const before = path.join(ws, 'before.jsonl');
    const afterFile = path.join(ws, 'after.jsonl');
    const r = await occystrap(['process', src(), `tar://${out}`, '-f', `inspect:file=${before}`, '-f', 'search:pattern=blob.bin', '-f', `inspect:file=${afterFile}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(inspectLines(before), inspectLines(afterFile));
    assert.match(r.stdout, /srv\/www\/blob\.bin \(file, \d+ bytes\)/);
    const plain = path.join(ws, 'plain.tar');
    assert.equal((await occystrap(['process', src(), `tar://${plain}`])).code, 0);
    assert.equal(await sha256File(out), await sha256File(plain), 'the chain changed nothing');
  });

  test('with a content-changing filter between two inspects, the second sees the new diff_ids', async () => {
    const ws = await tmpDir('inspect-normalize');
    const out = path.join(ws, 'out.tar');
    const a = path.join(ws, 'a.jsonl');
    const b = path.join(ws, 'b.jsonl');
    const r = await occystrap(['process', src(), `tar://${out}`, '-f', `inspect:file=${a}`, '-f', 'normalize-timestamps:ts=42', '-f', `inspect:file=${b}`]);
    assert.equal(r.code, 0, r.stderr);
    const [first] = inspectLines(a) as [InspectLine];
    const [second] = inspectLines(b) as [InspectLine];
    assert.deepEqual(first.layers.map((l) => l.Id), [...fixtureIndex().sample.diffIds].reverse());
    assert.equal(second.layers.length, first.layers.length);
    assert.notDeepEqual(second.layers.map((l) => l.Id), first.layers.map((l) => l.Id));
    assert.deepEqual(second.layers.map((l) => l.CreatedBy), first.layers.map((l) => l.CreatedBy));
  });

  test('a failed run appends nothing', async () => {
    const ws = await tmpDir('inspect-fail');
    const file = path.join(ws, 'layers.jsonl');
    const r = await occystrap(['process', `tar://${fixturePath('bad-diffid-mismatch.tar')}`, `dir://${path.join(ws, 'out')}`, '-f', `inspect:file=${file}`]);
    assert.equal(r.code, 1);
    assert.equal(existsSync(file), false);
    assert.deepEqual(listDir(ws), []);
  });

  test('an inspect file that cannot be written fails the run and leaves no output', async () => {
    const ws = await tmpDir('inspect-unwritable');
    const out = path.join(ws, 'store');
    const r = await occystrap(['process', src(), `dir://${out}`, '-f', `inspect:file=${path.join(ws, 'no', 'such', 'dir', 'x.jsonl')}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLines(r.stderr)[0] ?? '', /ENOENT|no such file/i);
    assert.equal(existsSync(out), false, 'the partial store was rolled back');
  });
});
