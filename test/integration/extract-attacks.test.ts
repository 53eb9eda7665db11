// The extraction attack suite (peers.md §9, docs/security.md "Extraction attacks"): each
// hostile image goes through `process tar://A oci://B` with the working directory set
// to a sentinel directory (holding victim.secret) and the links aimed at a sentinel tree
// outside the bundle. Before and after, both are listed with type, mode, size, sha256,
// link target and mtime: nothing outside the root may change. Each case also has its
// documented outcome: refused with a clear line (exit 1, no bundle), or contained inside
// the root (exit 0, the file where the policy puts it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { type ArchiveEntry, makeImage, manifestBytes, tarBytes, writeArchive } from './archive-builder.js';
import { errorLines, occystrap, strayTempFiles } from './cli-helpers.js';

const work = mkdtempSync(path.join(tmpdir(), 'occystrap-attacks-'));
after(() => rmSync(work, { recursive: true, force: true }));
/** The sentinel tree links aim at, outside every bundle. */
const sentinel = path.join(work, 'sentinel');
/** The working directory of every run (a hard link resolved against the CWD would find victim.secret). */
const cwd = path.join(work, 'cwd');
mkdirSync(path.join(sentinel, 'victim', '.ssh'), { recursive: true });
writeFileSync(path.join(sentinel, 'secret'), 'sentinel secret\n');
chmodSync(path.join(sentinel, 'secret'), 0o600);
writeFileSync(path.join(sentinel, 'victim', 'victim'), 'victim file\n');
writeFileSync(path.join(sentinel, 'victim', '.ssh', 'authorized_keys'), 'ssh-ed25519 AAAA sentinel\n');
mkdirSync(cwd);
writeFileSync(path.join(cwd, 'victim.secret'), 'cwd secret\n');
/** A sibling of the bundles sharing their name as a prefix (tar-fs's inCwd() confusion). */
const siblingPrefix = path.join(work, 'cases', 'bundle2');
mkdirSync(siblingPrefix, { recursive: true });
writeFileSync(path.join(siblingPrefix, 'x'), 'sibling\n');

/** Every path under `root`: type, mode, size, sha256, link target, mtime. */
function listing(root: string): string[] {
  const out: string[] = [];
  const visit = (rel: string) => {
    const abs = path.join(root, rel);
    const st = lstatSync(abs);
    const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : 'o';
    const extra = type === 'f' ? createHash('sha256').update(readFileSync(abs)).digest('hex') : type === 'l' ? readlinkSync(abs) : '';
    out.push(`${rel} ${type} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.size} ${Math.floor(st.mtimeMs)} ${extra}`);
    if (type === 'd') for (const n of readdirSync(abs).sort()) visit(path.join(rel, n));
  };
  visit('.');
  return out;
}

const outside = () => [...listing(sentinel), '--', ...listing(cwd), '--', ...listing(siblingPrefix)];

let counter = 0;

/** A docker-save archive of a base layer plus `layers` (entries in order), run into a fresh oci:// bundle. */
async function attack(layers: ArchiveEntry[][]): Promise<{ code: number; line: string; rootfs: string; dir: string }> {
  const dir = path.join(work, 'cases', `case${counter++}`);
  mkdirSync(dir, { recursive: true });
  const base = await makeImage(1, `base${counter}`);
  const tars = [base.layers[0] as Buffer, ...(await Promise.all(layers.map((entries) => tarBytes(entries))))];
  const diffIds = tars.map((t) => `sha256:${createHash('sha256').update(t).digest('hex')}`);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/true'] }, rootfs: { type: 'layers', diff_ids: diffIds }, history: diffIds.map(() => ({ created_by: 'attack' })) }));
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  const archive = path.join(dir, 'image.tar');
  await writeArchive(archive, [
    { name: configName, data: config },
    ...tars.map((data, i) => ({ name: `l${i}/layer.tar`, data })),
    { name: 'manifest.json', data: manifestBytes([{ Config: configName, RepoTags: ['attack:1'], Layers: tars.map((_, i) => `l${i}/layer.tar`) }]) },
  ]);
  const bundle = path.join(dir, 'bundle');
  const before = outside();
  const r = await occystrap(['process', `tar://${archive}`, `oci://${bundle}`], { cwd });
  assert.deepEqual(outside(), before, 'nothing outside the root changed (sentinel tree, working directory, sibling)');
  assert.deepEqual(strayTempFiles(dir), []);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.bundle.occystrap-')), [], 'no working directory left');
  const lines = errorLines(r.stderr);
  if (r.code !== 0) {
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(!existsSync(bundle), 'a refused image leaves no bundle');
  }
  return { code: r.code ?? -1, line: lines[0] ?? '', rootfs: path.join(bundle, 'rootfs'), dir };
}

const file = (name: string, text = 'pwned\n'): ArchiveEntry => ({ name, data: Buffer.from(text) });
const dir = (name: string): ArchiveEntry => ({ name, type: 'directory' });
const symlink = (name: string, linkname: string): ArchiveEntry => ({ name, type: 'symlink', linkname });
const hardlink = (name: string, linkname: string): ArchiveEntry => ({ name, type: 'link', linkname });
/** The sentinel's absolute path as a name under the root (what an absolute target means inside). */
const inRoot = (rootfs: string, abs: string) => path.join(rootfs, abs);
const relToSentinel = path.relative('/', sentinel); // e.g. tmp/occystrap-attacks-X/sentinel

function contained(r: { code: number; line: string }, where: string, text = 'pwned\n'): void {
  assert.equal(r.code, 0, r.line);
  assert.equal(readFileSync(where, 'utf8'), text, `${where} holds what the layer wrote`);
}

function refused(r: { code: number; line: string }, why: RegExp): void {
  assert.equal(r.code, 1);
  assert.match(r.line, /^occystrap: error: oci:\/\/.*: layer \d+: entry ".*": .*; refusing the image$/);
  assert.match(r.line, why);
}

test('chained symlinks (GHSL-2020-261): subdir/parent -> .., subdir/parent/escapes -> .., then a write: contained', async () => {
  const r = await attack([[dir('subdir'), symlink('subdir/parent', '..'), symlink('subdir/parent/escapes', '..'), file(`subdir/parent/escapes/${relToSentinel}/pwned`)]]);
  contained(r, path.join(inRoot(r.rootfs, sentinel), 'pwned'));
});

test('chained symlinks with ../../ variants reaching for the sentinel: contained', async () => {
  const up = '../'.repeat(12);
  const r = await attack([[symlink('a', up), symlink('b', 'a/' + up), file(`b/${relToSentinel}/secret`)]]);
  contained(r, path.join(inRoot(r.rootfs, sentinel), 'secret'));
});

test('layer N symlink to the sentinel, layer N+1 writes through it (CVE-2025-45582): contained', async () => {
  const r = await attack([[symlink('x', path.join(sentinel, 'victim', '.ssh'))], [file('x/authorized_keys', 'attacker key\n')]]);
  contained(r, path.join(inRoot(r.rootfs, sentinel), 'victim', '.ssh', 'authorized_keys'), 'attacker key\n');
});

test('. and ./ as a symlink (CVE-2021-29136): refused, the root keeps its type', async () => {
  refused(await attack([[symlink('.', sentinel), file('secret')]]), /the root stays a directory/);
  refused(await attack([[symlink('./', sentinel), file('secret')]]), /the root stays a directory/);
});

test('absolute and //// names: contained under the root', async () => {
  const r = await attack([[file(`${sentinel}/abs-pwned`), file(`////${relToSentinel}/slashes-pwned`)]]);
  contained(r, path.join(inRoot(r.rootfs, sentinel), 'abs-pwned'));
  contained(r, path.join(inRoot(r.rootfs, sentinel), 'slashes-pwned'));
});

test('.. in a name: refused; .. in a link target: resolved inside the root', async () => {
  refused(await attack([[file(`../../../../../../../../../../${relToSentinel}/secret`)]]), /its name has a "\.\." component/);
  const r = await attack([[symlink('up', '../../../../../../../../..'), file(`up/${relToSentinel}/up-pwned`)]]);
  contained(r, path.join(inRoot(r.rootfs, sentinel), 'up-pwned'));
});

test('a hard link to a path outside the root: refused', async () => {
  refused(await attack([[hardlink('stolen', path.join(sentinel, 'secret'))]]), /hard link target .* does not exist in the layers so far/);
  refused(await attack([[hardlink('stolen', `../../../../../../../../${relToSentinel}/secret`)]]), /hard link target .* "\.\." component/);
});

test('a hard link resolved against the working directory (CVE-2026-50163): refused; the CWD file is never linked', async () => {
  const r = await attack([[dir('x'), hardlink('x/evil', 'victim.secret')]]);
  refused(r, /hard link target "victim\.secret" does not exist in the layers so far/);
});

test('a whiteout through a symlinked parent: removes nothing, inside or out', async () => {
  const r = await attack([[symlink('etc', path.join(sentinel, 'victim'))], [file('etc/.wh.victim', ''), file('etc/.wh..wh..opq', '')]]);
  assert.equal(r.code, 0, r.line);
  assert.equal(lstatSync(path.join(r.rootfs, 'etc')).isSymbolicLink(), true);
});

test('directory-cache poisoning (CVE-2021-32803): d/, d -> sentinel, d/f: contained', async () => {
  const r = await attack([[dir('d'), symlink('d', sentinel), file('d/f')]]);
  contained(r, path.join(inRoot(r.rootfs, sentinel), 'f'));
});

test('sibling-prefix escape: a link to ../bundle2/x from the root: contained', async () => {
  const r = await attack([[symlink('l', '../../bundle2'), file('l/x')]]);
  contained(r, path.join(r.rootfs, 'bundle2', 'x'));
});

test('NFC/NFD twins: a directory and a symlink to the sentinel that differ only in normalisation: each stays its own name, inside', async () => {
  const nfc = 'caf\u00e9';
  const nfd = 'cafe\u0301';
  const r = await attack([[dir(nfc), symlink(nfd, sentinel), file(`${nfc}/a`), file(`${nfd}/b`)]]);
  contained(r, path.join(r.rootfs, nfc, 'a'));
  contained(r, path.join(inRoot(r.rootfs, sentinel), 'b'));
});

test('drive-letter and backslash names: ordinary characters on Linux, one component each, inside', async () => {
  const r = await attack([[file('C:..\\..\\pwned'), symlink('drive', `C:../../../../../../../../${relToSentinel}`), file('drive/x', 'drive\n')]]);
  contained(r, path.join(r.rootfs, 'C:..\\..\\pwned'));
  // `C:..` is one (missing, so made) directory, and the `..` after it climbs back to the root.
  contained(r, path.join(inRoot(r.rootfs, sentinel), 'x'), 'drive\n');
  assert.equal(lstatSync(path.join(r.rootfs, 'C:..')).isDirectory(), true);
});

test('metadata applied through a link (CVE-2021-32760): a file or directory entry over a symlink replaces it; the target keeps its mode', async () => {
  const r = await attack([[symlink('m', path.join(sentinel, 'secret')), symlink('n', path.join(sentinel, 'victim'))], [{ name: 'm', data: Buffer.from('mine\n') }, dir('n')]]);
  assert.equal(r.code, 0, r.line);
  assert.equal(lstatSync(path.join(r.rootfs, 'm')).isFile(), true);
  assert.equal(lstatSync(path.join(r.rootfs, 'n')).isDirectory(), true);
});

test('an invalid whiteout name: refused', async () => {
  refused(await attack([[file('d/.wh.', '')]]), /"\.wh\." is not a valid whiteout name/);
});
