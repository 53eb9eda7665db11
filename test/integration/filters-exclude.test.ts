// `occystrap process ... -f exclude:...` on real layers made by GNU tar (see
// test/fixtures/make-filter-fixtures.mjs): the named files are gone, their siblings (and
// their times, owners and xattrs) remain, diff_ids are consistent, both grammars work, a
// hard link to an excluded file is refused cleanly, and no temp file is left.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, fixture, fixturePath, skopeo, tmpDir } from './fixtures.js';
import { errorLines, hexOf, listDir, occystrap, strayTempFiles } from './cli-helpers.js';
import { filterFacts, fixtureFile, FIXTURE, gnuListing, layerNames, parseListing, readSaved, sha256 } from './filters-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});

describe('exclude on real layers', () => {
  let work = '';
  let temp = '';
  let out = '';

  test('both grammars in one run: named files gone, siblings kept, exit 0, temp dir empty, deterministic', async () => {
    const f = filterFacts().layer0;
    work = await tmpDir('exclude');
    temp = path.join(work, 'tmp');
    out = path.join(work, 'out.tar');
    // occystrap's form (pattern=a,b) and the repeated key, mixed.
    const spec = `exclude:pattern=*.pyc,app/.git/*,pattern=${f.gone}`;
    const r = await occystrap(['--temp-dir', temp, 'process', `tar://${fixtureFile()}`, `tar://${out}`, '-f', spec]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(errorLines(r.stderr), []);
    assert.deepEqual(listDir(temp), [], 'temp dir empty');

    const saved = await readSaved(out);
    const names = await layerNames(saved.layers[0] as Buffer);
    for (const gone of [f.exclude.pyc, f.exclude.gitHead, f.exclude.gitConfig, f.gone]) assert.ok(!names.includes(gone), `${gone} excluded`);
    for (const kept of [f.exclude.pycSibling, f.exclude.readme, f.exclude.cacheFile, f.kept, f.capability, f.bigId, f.hardlink, f.hardlinkTarget, f.nonAscii, f.veryLongPath]) {
      assert.ok(names.includes(kept), `${kept} kept`);
    }
    assert.ok(names.includes(f.exclude.gitDir), 'directories are not pruned: app/.git itself stays');
    assert.ok(names.includes('app/__pycache__'), 'the directory of an excluded file stays');

    const again = path.join(work, 'again.tar');
    const r2 = await occystrap(['--temp-dir', temp, 'process', `tar://${fixtureFile()}`, `tar://${again}`, '-f', `exclude:pattern=*.pyc,pattern=app/.git/*,pattern=${f.gone}`]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok(readFileSync(again).equals(readFileSync(out)), 'same patterns in the other grammar: byte-identical output');
  });

  test('kept entries keep their sub-second times, owners and capability; other layers keep their content', async () => {
    assert.notEqual(out, '', 'needs the first test');
    const facts = filterFacts();
    const saved = await readSaved(out);
    const original = await readSaved(fixtureFile());
    const before = new Map(parseListing(gnuListing(original.layers[0] as Buffer, work)).map((e) => [e.name, e]));
    const after_ = parseListing(gnuListing(saved.layers[0] as Buffer, work));
    assert.ok(after_.length > 20);
    for (const e of after_) {
      const b = before.get(e.name);
      assert.ok(b, `${e.name} was in the input`);
      assert.deepEqual(e, b, `${e.name}: unchanged listing (mode, owner, time to the nanosecond, xattrs)`);
    }
    assert.match(after_.find((e) => e.name === facts.layer0.capability)?.date ?? '', /\.\d{6,9}$/, 'a sub-second time is listed');
    // Layer 1 has no match: rewritten, but the same entries.
    assert.deepEqual(
      parseListing(gnuListing(saved.layers[1] as Buffer, work)),
      parseListing(gnuListing(original.layers[1] as Buffer, work)),
    );
  });

  test('diff_ids are consistent: config, layers, skopeo', async () => {
    assert.notEqual(out, '', 'needs the first test');
    const facts = filterFacts();
    const saved = await readSaved(out);
    const diffIds = saved.config.rootfs.diff_ids;
    saved.layers.forEach((l, i) => assert.equal(sha256(l), diffIds[i], `layer ${i}`));
    assert.equal(diffIds[facts.repeated.index], diffIds[facts.repeated.sameAs]);
    assert.notEqual(diffIds[0], fixture(FIXTURE).diffIds[0]);
    assert.equal(`${hexOf(sha256(saved.configBytes))}.json`, saved.configName);
    const r = await skopeo(['inspect', `docker-archive:${out}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { Layers: string[] }).Layers, diffIds);
  });

  test('occystrap check passes on the output', async () => {
    assert.notEqual(out, '', 'needs the first test');
    const r = await occystrap(['check', `tar://${out}`]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /Check complete .*: 0 error\(s\)/);
  });

  test('tar:// -> dir://: the store holds the rewritten layers under their new diff_ids', async () => {
    assert.notEqual(out, '', 'needs the first test');
    const f = filterFacts().layer0;
    const store = path.join(work, 'store');
    const r = await occystrap(['--temp-dir', temp, 'process', `tar://${fixtureFile()}`, `dir://${store}`, '-f', `exclude:pattern=*.pyc,app/.git/*,${f.gone}`]);
    assert.equal(r.code, 0, r.stderr);
    const saved = await readSaved(out);
    const config = JSON.parse(readFileSync(path.join(store, `${hexOf(sha256(saved.configBytes))}.json`), 'utf8')) as { rootfs: { diff_ids: string[] } };
    assert.deepEqual(config.rootfs.diff_ids, saved.config.rootfs.diff_ids);
    for (const d of new Set(config.rootfs.diff_ids)) assert.equal(sha256(readFileSync(path.join(store, hexOf(d), 'layer.tar'))), d);
    assert.deepEqual(listDir(temp), []);
  });

  test('excluding a hard link\'s target but not the link fails cleanly; excluding both works', async () => {
    const f = filterFacts().layer0;
    const dir = await tmpDir('exclude-hardlink');
    const t = path.join(dir, 'tmp');
    const target = path.join(dir, 'bad.tar');
    const r = await occystrap(['--temp-dir', t, 'process', `tar://${fixtureFile()}`, `tar://${target}`, '-f', `exclude:pattern=${f.hardlinkTarget}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`hard link "${f.hardlink.replace(/\./g, '\\.')}" points at "${f.hardlinkTarget.replace(/\./g, '\\.')}", which is excluded`));
    assert.deepEqual(listDir(dir).filter((n) => n !== 'tmp'), [], 'no output');
    assert.deepEqual(strayTempFiles(dir), []);
    assert.deepEqual(listDir(t), [], 'temp dir empty after a failure');
    const ok = await occystrap(['--temp-dir', t, 'process', `tar://${fixtureFile()}`, `tar://${target}`, '-f', `exclude:pattern=${f.hardlinkTarget},${f.hardlink}`]);
    assert.equal(ok.code, 0, ok.stderr);
    const names = await layerNames((await readSaved(target)).layers[0] as Buffer);
    assert.ok(!names.includes(f.hardlink) && !names.includes(f.hardlinkTarget) && names.includes(f.symlink));
  });

  test('a pattern that removes nothing leaves every layer byte-identical: same diff_ids, same config', async () => {
    // GNU tar's layers (filters-sample) and the fixture builder's (docker-classic) carry header
    // fields our encoder writes differently (devmajor/devminor, record padding).
    for (const file of [fixtureFile(), fixturePath('docker-classic.tar')]) {
      const dir = await tmpDir('exclude-nothing');
      const store = path.join(dir, 'store');
      const r = await occystrap(['--temp-dir', path.join(dir, 'tmp'), 'process', `tar://${file}`, `dir://${store}`, '-f', 'exclude:pattern=no/such/path/*']);
      assert.equal(r.code, 0, r.stderr);
      const before = await readSaved(file);
      const diffIds = before.config.rootfs.diff_ids;
      const stored = listDir(store).filter((n) => /^[0-9a-f]{64}$/.test(n));
      assert.deepEqual(stored.sort(), [...new Set(diffIds.map(hexOf))].sort(), `${file}: the stored layers are the input's`);
      for (const hex of stored) assert.equal(sha256(readFileSync(path.join(store, hex, 'layer.tar'))), `sha256:${hex}`);
      assert.ok(listDir(store).includes(`${sha256(before.configBytes).slice(7)}.json`), "the config is the input's, unchanged");
    }
  });

  test('usage errors name the grammar', async () => {
    const dir = await tmpDir('exclude-usage');
    for (const [spec, message] of [
      ['exclude', /exclude needs at least one pattern/],
      ['exclude:*.pyc', /comes before any pattern=/],
      ['exclude:pattern=a,regex=true', /unknown option "regex"; it takes pattern=GLOB/],
    ] as const) {
      const r = await occystrap(['process', `tar://${fixtureFile()}`, `tar://${path.join(dir, 'x.tar')}`, '-f', spec]);
      assert.equal(r.code, 2, `${spec}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.deepEqual(listDir(dir), []);
  });
});
