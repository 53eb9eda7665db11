/**
 * A tree manifest: one line per path under a root (path, type, mode, uid, gid, size,
 * sha256 of a file, link target, device numbers, xattrs), sorted, to compare two root
 * file systems, as mtree does for umoci. Hard links show as equal content (no inode
 * numbers: two trees never share them).
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { loadAddon } from '../../src/shell/fs/native-addons.js';
import type { FsOps } from '../../src/shell/extract/rootfs-builder.js';

export interface TreeManifestOptions {
  /** Leave mtimes out (default: in, whole seconds). */
  readonly mtimes?: boolean;
}

function fsops(): FsOps {
  const ops = loadAddon<FsOps>('fsops');
  if (typeof ops === 'string') throw new Error(ops);
  return ops;
}

/** Every path under `root` ('.' for the root itself), one line each, sorted by path. */
export function treeManifest(root: string, options: TreeManifestOptions = {}): string[] {
  const lines: string[] = [];
  const visit = (rel: string) => {
    const abs = rel === '.' ? root : path.join(root, rel);
    const st = lstatSync(abs);
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'other';
    const fields = [rel, type, `mode=${(st.mode & 0o7777).toString(8)}`, `uid=${st.uid}`, `gid=${st.gid}`];
    if (type === 'file') fields.push(`size=${st.size}`, `sha256=${createHash('sha256').update(readFileSync(abs)).digest('hex')}`);
    if (type === 'symlink') fields.push(`target=${readlinkSync(abs)}`);
    if (type === 'char' || type === 'block') fields.push(`rdev=${st.rdev}`);
    if (options.mtimes !== false && type !== 'symlink') fields.push(`mtime=${Math.floor(st.mtimeMs / 1000)}`);
    const xattrs = fsops()
      .llistxattr(abs)
      .sort()
      .map((name) => `${name}=${Buffer.from(fsops().lgetxattr(abs, name) ?? []).toString('hex')}`);
    if (xattrs.length > 0) fields.push(`xattrs=${xattrs.join(',')}`);
    lines.push(fields.join(' '));
    if (type === 'dir') for (const name of readdirSync(abs).sort()) visit(rel === '.' ? name : path.join(rel, name));
  };
  visit('.');
  return lines;
}
