// `occystrap process ... -f normalize-timestamps` on real layers made by GNU tar (see
// test/fixtures/make-filter-fixtures.mjs): every mtime becomes N, the capability xattr and
// the 3000000 uid survive, the output is byte-identical across runs, its diff_ids are the
// sha256 of its layers, skopeo reads it and podman loads it, and no temp file is left.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, fixture, podmanLoadAndInspect, skopeo, tmpDir } from './fixtures.js';
import { errorLines, hexOf, listDir, occystrap } from './cli-helpers.js';
import { filterFacts, fixtureFile, FIXTURE, gnuListing, isRoot, parseListing, readSaved, sha256, tarEnv } from './filters-helpers.js';

after(async () => {
  await cleanupTmpDirs();
});

const TS = 1234567890; // 2009-02-13 23:31:30 UTC
const TS_TEXT = '2009-02-13 23:31:30';

describe('normalize-timestamps on real layers', () => {
  let work = '';
  let temp = '';
  let outA = '';

  test('tar:// -> tar://: exit 0, byte-identical on a second run, temp dir empty', async () => {
    work = await tmpDir('normalize');
    temp = path.join(work, 'tmp');
    outA = path.join(work, 'a.tar');
    const outB = path.join(work, 'b.tar');
    for (const out of [outA, outB]) {
      const r = await occystrap(['--temp-dir', temp, 'process', `tar://${fixtureFile()}`, `tar://${out}`, '-f', `normalize-timestamps:ts=${TS}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(errorLines(r.stderr), []);
    }
    assert.ok(readFileSync(outA).equals(readFileSync(outB)), 'byte-identical output');
    assert.deepEqual(listDir(temp), [], 'temp dir empty');
    assert.deepEqual(listDir(work), ['a.tar', 'b.tar', 'tmp']);
  });

  test('every entry of every layer has mtime N; the capability, the 3000000 uid and the links survive', async () => {
    assert.notEqual(outA, '', 'needs the first test');
    const facts = filterFacts();
    const saved = await readSaved(outA);
    const scratch = path.join(work, 'scratch');
    mkdirSync(scratch, { recursive: true });
    const listings = saved.layers.map((l) => parseListing(gnuListing(l, scratch)));
    let entries = 0;
    for (const listing of listings) {
      for (const e of listing) {
        entries++;
        assert.equal(e.date, TS_TEXT, `${e.name}: ${e.date}`);
      }
    }
    assert.ok(entries > 40, `entries checked: ${entries}`);
    const l0 = listings[0] ?? [];
    const byName = new Map(l0.map((e) => [e.name, e]));
    assert.equal(byName.get(facts.layer0.bigId)?.owner, `${facts.bigId}/${facts.bigId}`);
    assert.equal(new Map((listings[1] ?? []).map((e) => [e.name, e])).get(facts.layer1.gnuBigId)?.owner, `${facts.bigId}/${facts.bigId}`);
    for (const p of [facts.layer0.longPath, facts.layer0.veryLongPath, facts.layer0.longBasename, facts.layer0.nonAscii, facts.layer0.hardlink, facts.layer0.symlink, facts.layer0.longLink]) {
      assert.ok(byName.has(p), `${p} is in layer 0`);
    }
    assert.ok(byName.get(facts.layer0.hardlink)?.mode.startsWith('h'), 'the hard link is still a hard link');
    if (facts.capability) {
      assert.deepEqual(byName.get(facts.capability.path)?.xattrs, ['security.capability']);
      // Extract and ask the kernel: the capability bytes are intact (they include a 0x80 byte).
      const dest = path.join(work, 'extracted');
      mkdirSync(dest);
      const layerFile = path.join(scratch, 'layer0.tar');
      writeFileSync(layerFile, saved.layers[0] as Buffer);
      execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-xpf', layerFile, '-C', dest], { env: tarEnv });
      const caps = execFileSync('getcap', [path.join(dest, facts.capability.path)], { encoding: 'utf8' });
      assert.match(caps, new RegExp(`${facts.capability.caps.replace(/[+]/g, '\\+')}`));
    }
    // The whiteouts of layer 1 are still there (they are ordinary entries to the filter).
    const l1 = new Set((listings[1] ?? []).map((e) => e.name));
    assert.ok(l1.has(facts.layer1.whiteout) && l1.has(facts.layer1.opaque) && l1.has(facts.layer1.gnuLongName));
  });

  test('the config lists the new diff_ids, each the sha256 of its layer; history kept; repeated layer mapped', async () => {
    assert.notEqual(outA, '', 'needs the first test');
    const facts = filterFacts();
    const original = fixture(FIXTURE);
    const saved = await readSaved(outA);
    const diffIds = saved.config.rootfs.diff_ids;
    assert.equal(diffIds.length, original.layerCount);
    saved.layers.forEach((l, i) => assert.equal(sha256(l), diffIds[i], `layer ${i}`));
    assert.equal(`${hexOf(sha256(saved.configBytes))}.json`, saved.configName, 'config named by its digest');
    assert.equal(diffIds[facts.repeated.index], diffIds[facts.repeated.sameAs], 'the repeated layer got the same new diff_id');
    assert.equal(diffIds[facts.empty.index], original.diffIds[facts.empty.index], 'the empty layer is unchanged');
    assert.notEqual(diffIds[0], original.diffIds[0]);
    const originalConfig = (await readSaved(fixtureFile())).config;
    assert.deepEqual(saved.config.history, originalConfig.history);
    assert.deepEqual(saved.repoTags, [facts.repoTag]);
  });

  test('occystrap check passes on the output', async () => {
    assert.notEqual(outA, '', 'needs the first test');
    const r = await occystrap(['check', `tar://${outA}`]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /Check complete .*: 0 error\(s\)/);
  });

  test('skopeo inspect reads the output', async () => {
    assert.notEqual(outA, '', 'needs the first test');
    const saved = await readSaved(outA);
    const r = await skopeo(['inspect', `docker-archive:${outA}`]);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout) as { Layers: string[]; Os: string };
    assert.deepEqual(info.Layers, saved.config.rootfs.diff_ids);
    assert.equal(info.Os, 'linux');
  });

  test('podman load accepts the output (private store; rmi afterwards)', async () => {
    assert.notEqual(outA, '', 'needs the first test');
    const saved = await readSaved(outA);
    const { id, layers } = await podmanLoadAndInspect(outA, { timeoutMs: 180_000 });
    assert.equal(id, hexOf(sha256(saved.configBytes)), 'image id = new config digest');
    assert.deepEqual(layers, saved.config.rootfs.diff_ids);
  });

  test('tar:// -> dir://: every layer.tar hashes to the new config\'s diff_ids, the same ones as the tar:// output', async () => {
    assert.notEqual(outA, '', 'needs the first test');
    const store = path.join(work, 'store');
    const r = await occystrap(['--temp-dir', temp, 'process', `tar://${fixtureFile()}`, `dir://${store}`, '-f', `normalize-timestamps:ts=${TS}`]);
    assert.equal(r.code, 0, r.stderr);
    const saved = await readSaved(outA);
    const configName = `${hexOf(sha256(saved.configBytes))}.json`;
    assert.ok(listDir(store).includes(configName), `the store holds ${configName}: ${listDir(store).join(', ')}`);
    const config = JSON.parse(readFileSync(path.join(store, configName), 'utf8')) as { rootfs: { diff_ids: string[] } };
    for (const d of new Set(config.rootfs.diff_ids)) {
      assert.equal(sha256(readFileSync(path.join(store, hexOf(d), 'layer.tar'))), d);
    }
    assert.deepEqual(config.rootfs.diff_ids, saved.config.rootfs.diff_ids);
    assert.deepEqual(listDir(temp), [], 'temp dir empty');
  });

  test('the default is 0; usage errors for bad options; two filters chain', async () => {
    const dir = await tmpDir('normalize-default');
    const t = path.join(dir, 'tmp');
    const out = path.join(dir, 'zero.tar');
    const r = await occystrap(['--temp-dir', t, 'process', `tar://${fixtureFile()}`, `tar://${out}`, '-f', 'normalize_timestamps', '-f', 'exclude:pattern=*.pyc']);
    assert.equal(r.code, 0, r.stderr);
    const saved = await readSaved(out);
    const listing = parseListing(gnuListing(saved.layers[0] as Buffer, dir));
    assert.ok(listing.every((e) => e.date === '1970-01-01 00:00:00'));
    assert.ok(!listing.some((e) => e.name.endsWith('.pyc')));
    assert.deepEqual(listDir(t), []);
    const bad = await occystrap(['process', `tar://${fixtureFile()}`, `tar://${path.join(dir, 'x.tar')}`, '-f', 'normalize-timestamps:ts=soon']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /normalize-timestamps: ts= takes whole seconds since the epoch/);
    const unknown = await occystrap(['process', `tar://${fixtureFile()}`, `tar://${path.join(dir, 'x.tar')}`, '-f', 'normalize-timestamps:tz=utc']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown option tz; it takes ts=N \(or timestamp=N\)/);
    assert.ok(!listDir(dir).includes('x.tar'));
  });
});
