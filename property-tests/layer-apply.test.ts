// The layer-apply planner against a model file system that behaves as the shell's guards
// do: every operation's parent is a real directory (no symlink on the way, which is what
// resolving on disk with O_NOFOLLOW would insist on), creation is exclusive, a removal
// finds its node, a hard link finds a non-directory. Random layers of hostile names
// (absolute, `..` in link targets, chains of symlinks, whiteouts, type changes) either
// are refused or give operations that all hold: nothing is ever reached through a link,
// so nothing outside the root is named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { type ApplyOp, LayerApplier } from '../src/core/extract/layer-apply.js';
import type { TarHeader, TarEntryType } from '../src/core/tar/header.js';

type VNode = { kind: 'dir'; children: Map<string, VNode> } | { kind: 'file' } | { kind: 'symlink'; target: string };

/** A file system that refuses what the shell's guards refuse. */
class GuardedFs {
  readonly root: VNode & { kind: 'dir' } = { kind: 'dir', children: new Map() };

  /** The parent directory of `path`, walking real directories only. */
  private parent(path: string): { dir: VNode & { kind: 'dir' }; name: string } {
    const parts = path.split('/');
    const name = parts.pop() as string;
    let current: VNode = this.root;
    for (const p of parts) {
      const next: VNode | undefined = current.kind === 'dir' ? current.children.get(p) : undefined;
      if (next === undefined) throw new Error(`ENOENT: ${p} on the way to ${path}`);
      if (next.kind === 'symlink') throw new Error(`ELOOP: ${p} is a symlink on the way to ${path}`);
      if (next.kind !== 'dir') throw new Error(`ENOTDIR: ${p} on the way to ${path}`);
      current = next;
    }
    return { dir: current as VNode & { kind: 'dir' }, name };
  }

  private node(path: string): VNode | undefined {
    if (path === '') return this.root;
    const { dir, name } = this.parent(path);
    return dir.children.get(name);
  }

  private create(path: string, node: VNode): void {
    assert.ok(path !== '', 'never creates the root');
    const { dir, name } = this.parent(path);
    if (dir.children.has(name)) throw new Error(`EEXIST: ${path}`);
    dir.children.set(name, node);
  }

  perform(op: ApplyOp): void {
    for (const p of [op.path, ...(op._tag === 'Hardlink' ? [op.target] : [])]) {
      assert.ok(!p.startsWith('/') && !p.split('/').includes('..') && !p.split('/').includes('.'), `op path ${p} is resolved and relative`);
    }
    switch (op._tag) {
      case 'Remove': {
        const { dir, name } = this.parent(op.path);
        if (!dir.children.delete(name)) throw new Error(`ENOENT: remove ${op.path}`);
        return;
      }
      case 'Mkdir':
        return this.create(op.path, { kind: 'dir', children: new Map() });
      case 'File':
      case 'Device':
        return this.create(op.path, { kind: 'file' });
      case 'Symlink':
        return this.create(op.path, { kind: 'symlink', target: op.target });
      case 'Hardlink': {
        const target = this.node(op.target);
        if (target === undefined || target.kind === 'dir') throw new Error(`hard link to ${op.target}: ${target ? 'a directory' : 'missing'}`);
        return this.create(op.path, target);
      }
      case 'Opaque':
      case 'DirMeta': {
        const node = this.node(op.path);
        if (node?.kind !== 'dir') throw new Error(`${op._tag} on ${op.path}: not a directory`);
        return;
      }
    }
  }
}

const segment = fc.constantFrom('a', 'b', 'etc', 'd', '..', '.', '', 'x y', 'C:..\\x', '.wh.a', '.wh.b', '.wh..wh..opq', '.wh.');
const nameArb = fc.tuple(fc.constantFrom('', '/', './', '////'), fc.array(segment, { minLength: 1, maxLength: 4 })).map(([lead, parts]) => lead + parts.join('/'));
const targetArb = fc.tuple(fc.constantFrom('', '/', '../', '../../'), fc.array(fc.constantFrom('a', 'b', 'etc', 'd', '..', '.'), { minLength: 0, maxLength: 4 })).map(([lead, parts]) => lead + parts.join('/'));
const typeArb = fc.constantFrom<TarEntryType>('file', 'file', 'directory', 'directory', 'symlink', 'symlink', 'link', 'fifo');
const headerArb = fc.record({ name: nameArb, type: typeArb, target: targetArb }).map(
  ({ name, type, target }): TarHeader => ({
    name,
    type,
    size: 0,
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 0,
    ...(type === 'symlink' || type === 'link' ? { linkname: target } : {}),
  }),
);
const layersArb = fc.array(fc.array(headerArb, { maxLength: 12 }), { minLength: 1, maxLength: 4 });

test('merged mode: every operation holds on a file system with the shell guards; no link is ever followed on disk', () => {
  let refused = 0;
  let applied = 0;
  fc.assert(
    fc.property(layersArb, (layers) => {
      const applier = new LayerApplier('merged');
      const fs = new GuardedFs();
      for (const layer of layers) {
        for (const header of layer) {
          const r = applier.entry(header);
          if (E.isLeft(r)) {
            refused++;
            return; // a refusal fails the whole run: nothing after it is applied
          }
          for (const op of r.right) fs.perform(op);
          applied++;
        }
        applier.endLayer();
      }
      for (const op of applier.finish()) fs.perform(op);
    }),
    { numRuns: 3000 },
  );
  // The generator reaches both outcomes (a test of the test).
  assert.ok(refused > 100 && applied > 1000, `refused ${refused}, applied ${applied}`);
});

test('overlay mode, one applier per layer: the same, with whiteout devices and opaque markers', () => {
  fc.assert(
    fc.property(fc.array(headerArb, { maxLength: 16 }), (entries) => {
      const applier = new LayerApplier('overlay');
      const fs = new GuardedFs();
      for (const header of entries) {
        const r = applier.entry(header);
        if (E.isLeft(r)) return;
        for (const op of r.right) fs.perform(op);
      }
      for (const op of applier.finish()) fs.perform(op);
    }),
    { numRuns: 2000 },
  );
});
