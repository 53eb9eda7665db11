// The layer-apply planner (src/core/extract/layer-apply.ts): entries become operations on
// resolved paths inside the root; symlinks are followed as if the root were `/`;
// whiteouts remove only what lower layers made; the root keeps its type.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import { type ApplyOp, LayerApplier, layerEntryComponents } from '../../src/core/extract/layer-apply.js';
import type { TarHeader } from '../../src/core/tar/header.js';

const H = (p: Partial<TarHeader> & Pick<TarHeader, 'name'>): TarHeader => ({ type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, ...p });
const dir = (name: string) => H({ name, type: 'directory', mode: 0o755 });
const file = (name: string, size = 1) => H({ name, size });
const symlink = (name: string, linkname: string) => H({ name, type: 'symlink', linkname });
const hardlink = (name: string, linkname: string) => H({ name, type: 'link', linkname });

/** Apply layers of entries; returns every op in order (tags and paths only), or the refusal. */
function apply(layers: TarHeader[][], mode: 'merged' | 'overlay' = 'merged'): { ops: string[]; applier: LayerApplier } | { refused: string } {
  const applier = new LayerApplier(mode);
  const ops: string[] = [];
  for (const layer of layers) {
    for (const header of layer) {
      const r = applier.entry(header);
      if (E.isLeft(r)) return { refused: `${r.left.entry}: ${r.left.reason}` };
      ops.push(...r.right.map(opText));
    }
    applier.endLayer();
  }
  return { ops, applier };
}

function opText(op: ApplyOp): string {
  switch (op._tag) {
    case 'Symlink':
      return `Symlink ${op.path} -> ${op.target}`;
    case 'Hardlink':
      return `Hardlink ${op.path} => ${op.target}`;
    case 'Device':
      return `Device ${op.path} ${op.kind} ${op.major}:${op.minor}`;
    default:
      return `${op._tag} ${op.path}`;
  }
}

const ops = (layers: TarHeader[][], mode?: 'merged' | 'overlay') => {
  const r = apply(layers, mode);
  assert.ok('ops' in r, 'refused' in r ? r.refused : '');
  return r.ops;
};
const refusal = (layers: TarHeader[][]) => {
  const r = apply(layers);
  assert.ok('refused' in r, `expected a refusal, got ${JSON.stringify('ops' in r ? r.ops : r)}`);
  return r.refused;
};

describe('entry names', () => {
  test('leading slashes and ./ are dropped, the root is [], .. and NUL are refused, backslashes stay characters', () => {
    assert.deepEqual(layerEntryComponents('////etc/x'), E.right(['etc', 'x']));
    assert.deepEqual(layerEntryComponents('/./etc//./x/'), E.right(['etc', 'x']));
    assert.deepEqual(layerEntryComponents('./'), E.right([]));
    assert.deepEqual(layerEntryComponents('C:..\\x'), E.right(['C:..\\x']));
    assert.ok(E.isLeft(layerEntryComponents('a/../../etc')));
    assert.ok(E.isLeft(layerEntryComponents('a\0b')));
  });
});

describe('merged mode', () => {
  test('files, dirs, implicit parents, and directory metadata last, deepest first', () => {
    const r = apply([[dir('a'), file('a/b/c'), dir('./')]]);
    assert.ok('ops' in r);
    assert.deepEqual(r.ops, ['Mkdir a', 'Mkdir a/b', 'File a/b/c']);
    assert.deepEqual(r.applier.finish().map(opText), ['DirMeta a', 'DirMeta ']);
  });

  test('a symlink in a parent is followed inside the root: absolute targets start at the root', () => {
    assert.deepEqual(ops([[symlink('etc', '/srv/victim'), file('etc/passwd')]]), ['Symlink etc -> /srv/victim', 'Mkdir srv', 'Mkdir srv/victim', 'File srv/victim/passwd']);
  });

  test('layer N symlink + layer N+1 write stays inside (CVE-2025-45582)', () => {
    assert.deepEqual(ops([[symlink('x', '../../home/victim/.ssh')], [file('x/authorized_keys')]]), [
      'Symlink x -> ../../home/victim/.ssh',
      'Mkdir home',
      'Mkdir home/victim',
      'Mkdir home/victim/.ssh',
      'File home/victim/.ssh/authorized_keys',
    ]);
  });

  test('the chained-symlink sequence (GHSL-2020-261) resolves inside', () => {
    const r = ops([[dir('subdir'), symlink('subdir/parent', '..'), symlink('subdir/parent/escapes', '..'), file('subdir/parent/escapes/etc/passwd')]]);
    // subdir/parent -> .. is the root; root/escapes -> .. is the root again.
    assert.deepEqual(r.slice(-2), ['Mkdir etc', 'File etc/passwd']);
    assert.ok(r.includes('Symlink escapes -> ..'));
  });

  test('. or ./ as a symlink is refused: the root keeps its type (CVE-2021-29136)', () => {
    assert.match(refusal([[symlink('.', '/tmp/x'), file('etc/passwd')]]), /the root stays a directory/);
    assert.match(refusal([[symlink('./', '/tmp/x')]]), /the root stays a directory/);
    assert.match(refusal([[file('.')]]), /the root stays a directory/);
  });

  test('directory-cache poisoning: d/, d -> /x, d/f writes x/f inside the root (CVE-2021-32803)', () => {
    assert.deepEqual(ops([[dir('d'), symlink('d', '/x'), file('d/f')]]), ['Mkdir d', 'Remove d', 'Symlink d -> /x', 'Mkdir x', 'File x/f']);
  });

  test('an entry over a symlink replaces the link, never writes or chmods through it (CVE-2021-32760)', () => {
    assert.deepEqual(ops([[symlink('passwd', '/etc/passwd'), H({ name: 'passwd', mode: 0o777 })]]), ['Symlink passwd -> /etc/passwd', 'Remove passwd', 'File passwd']);
    assert.deepEqual(ops([[symlink('d', '/etc'), dir('d')]]), ['Symlink d -> /etc', 'Remove d', 'Mkdir d']);
  });

  test('hard links resolve inside the root; a target outside the layers or a directory is refused', () => {
    assert.deepEqual(ops([[file('a'), hardlink('b', 'a'), hardlink('c', '/a')]]), ['File a', 'Hardlink b => a', 'Hardlink c => a']);
    assert.match(refusal([[hardlink('x/evil', 'victim.secret')]]), /does not exist in the layers so far/);
    assert.match(refusal([[hardlink('x', '../../etc/shadow')]]), /".." component/);
    assert.match(refusal([[dir('d'), hardlink('x', 'd')]]), /is a directory/);
    // Through a symlinked directory: resolved inside.
    assert.deepEqual(ops([[dir('real'), file('real/f'), symlink('l', '/real'), hardlink('h', 'l/f')]]).slice(-1), ['Hardlink h => real/f']);
  });

  test('a later layer replacing a hard link target replaces the inode: Remove, then a new file', () => {
    assert.deepEqual(ops([[file('a'), hardlink('b', 'a')], [file('a')]]), ['File a', 'Hardlink b => a', 'Remove a', 'File a']);
  });

  test('type changes between layers: file -> dir -> symlink -> file', () => {
    assert.deepEqual(ops([[file('p')], [dir('p'), file('p/q')], [symlink('p', 'elsewhere')], [file('p')]]), [
      'File p',
      'Remove p',
      'Mkdir p',
      'File p/q',
      'Remove p',
      'Symlink p -> elsewhere',
      'Remove p',
      'File p',
    ]);
  });

  test('a whiteout removes what a lower layer made, not what its own layer made', () => {
    assert.deepEqual(ops([[file('a'), dir('d'), file('d/x')], [H({ name: '.wh.a' }), H({ name: 'd/.wh.x' }), file('b'), H({ name: '.wh.b' })]]), [
      'File a',
      'Mkdir d',
      'File d/x',
      'Remove a',
      'Remove d/x',
      'File b',
    ]);
  });

  test('an opaque directory drops the lower layers\' children, keeps this layer\'s, and prunes a lower dir this layer lists', () => {
    const r = ops([
      [dir('d'), file('d/old'), dir('d/sub'), file('d/sub/old')],
      [dir('d'), file('d/new'), dir('d/sub'), H({ name: 'd/.wh..wh..opq' }), file('d/sub/new')],
    ]);
    assert.deepEqual(r.slice(4), ['File d/new', 'Remove d/old', 'Remove d/sub/old', 'File d/sub/new']);
  });

  test('a whiteout under a symlinked parent names nothing: no removal, nothing followed', () => {
    assert.deepEqual(ops([[dir('srv'), dir('srv/victim'), file('srv/victim/victim'), symlink('etc', '/srv/victim')], [H({ name: 'etc/.wh.victim' }), H({ name: 'etc/.wh..wh..opq' })]]).slice(4), []);
  });

  test('invalid whiteout names are refused', () => {
    assert.match(refusal([[H({ name: 'd/.wh.' })]]), /not a valid whiteout name/);
    assert.match(refusal([[H({ name: '.wh..wh.x' })]]), /not a valid whiteout name/);
  });

  test('a symlink loop is refused after 40 hops', () => {
    assert.match(refusal([[symlink('a', 'b'), symlink('b', 'a'), file('a/x')]]), /more than 40 symlinks/);
  });

  test('a file where a directory is needed is refused', () => {
    assert.match(refusal([[file('a'), file('a/b')]]), /a is not a directory/);
  });

  test('resolve() follows the last symlink too', () => {
    const r = apply([[dir('usr'), dir('usr/lib'), symlink('lib', 'usr/lib'), symlink('usr/lib/x', '../../../../etc')]]);
    assert.ok('applier' in r);
    assert.deepEqual(r.applier.resolve('lib/x'), E.right('etc'));
    assert.deepEqual(r.applier.resolve('lib'), E.right('usr/lib'));
  });
});

describe('overlay mode (one applier per layer)', () => {
  test('whiteouts become 0/0 character devices and opaque markers', () => {
    assert.deepEqual(ops([[dir('d'), H({ name: 'd/.wh.gone' }), H({ name: 'd/.wh..wh..opq' })]], 'overlay'), ['Mkdir d', 'Device d/gone character 0:0', 'Opaque d']);
  });
});
