/**
 * The layer-apply planner: the pure half of extraction. It keeps a model of the tree being
 * built (every node the layers made, with symlink targets) and turns each tar entry into
 * file-system operations on paths that are already resolved inside the root, so the shell
 * performs them without ever resolving a name on disk.
 *
 * Resolution is chroot-style (as umoci's SecureJoin): a symlink met in a parent component
 * is followed as if the root were `/` (absolute targets start at the root, `..` stops at
 * it), so nothing a layer holds can name a path outside the root. The shell adds its own
 * guards (`O_NOFOLLOW`, exclusive creation, a fresh private working root): if the disk
 * ever disagrees with the model, an operation fails instead of escaping.
 *
 * Two modes:
 *
 * - `merged` (`dir://?expand=true`, `oci://`): layers applied in order onto one tree; OCI
 *   whiteouts remove what lower layers made and are never written.
 * - `overlay` (`mounts://`): each layer alone in its own directory; whiteouts become what
 *   overlayfs reads (a 0/0 character device for `.wh.NAME`, the `trusted.overlay.opaque`
 *   xattr for `.wh..wh..opq`).
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import type { PaxValue, TarHeader } from '../tar/header.js';

/** Metadata an operation applies (numbers as the tar header has them). */
export interface NodeMeta {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Seconds since the epoch. */
  readonly mtime: number;
  /** Extended attributes from `SCHILY.xattr.NAME` PAX records (values as bytes). */
  readonly xattrs: readonly (readonly [string, Uint8Array])[];
}

/**
 * What the shell does, in order. Every `path` is a resolved path relative to the root,
 * `/`-separated, with no symlink in any component ('' is the root itself).
 */
export type ApplyOp =
  /** Remove the node at `path` (a directory with everything in it). It exists. */
  | { readonly _tag: 'Remove'; readonly path: string }
  /** Make a directory that does not exist (`meta` is applied at the end, by `DirMeta`). */
  | { readonly _tag: 'Mkdir'; readonly path: string; readonly meta: NodeMeta }
  /** A regular file from the entry's data (`size` bytes): created exclusively, never through a link. */
  | { readonly _tag: 'File'; readonly path: string; readonly size: number; readonly meta: NodeMeta }
  | { readonly _tag: 'Symlink'; readonly path: string; readonly target: string; readonly meta: NodeMeta }
  /** A hard link at `path` to the existing non-directory at `target` (both resolved). */
  | { readonly _tag: 'Hardlink'; readonly path: string; readonly target: string }
  | { readonly _tag: 'Device'; readonly path: string; readonly kind: 'character' | 'block' | 'fifo'; readonly major: number; readonly minor: number; readonly meta: NodeMeta }
  /** overlay mode: mark `path` opaque (`trusted.overlay.opaque=y`). */
  | { readonly _tag: 'Opaque'; readonly path: string }
  /** A directory's metadata, applied after every layer (deepest first), so modes and mtimes stick. */
  | { readonly _tag: 'DirMeta'; readonly path: string; readonly meta: NodeMeta };

/** Why an entry was refused: the message names the entry; the layer is refused with it. */
export interface ApplyRefusal {
  readonly entry: string;
  readonly reason: string;
}

type Node = DirNode | LeafNode | LinkNode;
interface DirNode {
  readonly kind: 'dir';
  readonly children: Map<string, Node>;
  /** The layer that made it (a directory an entry only updates keeps its maker). */
  readonly layer: number;
  /** The last layer with an entry for it (an opaque whiteout keeps it, pruned, when that is the current one). */
  touched: number;
  meta: NodeMeta | undefined;
}
interface LeafNode {
  readonly kind: 'leaf';
  readonly layer: number;
}
interface LinkNode {
  readonly kind: 'symlink';
  readonly target: string;
  readonly layer: number;
}

/** Symlinks followed while resolving one name, at most (Linux's own limit). */
export const MAX_SYMLINK_HOPS = 40;
/** Path components at most: deeper names are refused rather than walked. */
const MAX_DEPTH = 4096;

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

/** Implicit parents (a layer that writes `a/b/c` without `a/b`) get these. */
const IMPLICIT_DIR_META: NodeMeta = { mode: 0o755, uid: 0, gid: 0, mtime: 0, xattrs: [] };

/**
 * The name of a layer entry as path components under the root: leading `/`, `./` and
 * repeated slashes are dropped; `[]` is the root itself (`.`, `./`, `/`). A `..`
 * component or a NUL is refused: a layer has no business naming them. Backslashes and
 * drive-letter-like names are ordinary characters on Linux (systemd's unit names use
 * `\x2d`), so they stay one component each, inside the root.
 */
export function layerEntryComponents(name: string): E.Either<string, string[]> {
  if (name.includes('\0')) return E.left('contains a NUL byte');
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') return E.left('has a ".." component');
    parts.push(part);
  }
  if (parts.length > MAX_DEPTH) return E.left(`is more than ${MAX_DEPTH} components deep`);
  return E.right(parts);
}

/** `SCHILY.xattr.*` records of a header, as (name, bytes). */
export function xattrsOf(header: TarHeader): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  for (const [key, value] of Object.entries(header.pax ?? {})) {
    if (!key.startsWith('SCHILY.xattr.')) continue;
    out.push([key.slice('SCHILY.xattr.'.length), asBytes(value)]);
  }
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

const encoder = new TextEncoder();
const asBytes = (v: PaxValue): Uint8Array => (typeof v === 'string' ? encoder.encode(v) : v);

function metaOf(header: TarHeader): NodeMeta {
  return { mode: header.mode & 0o7777, uid: header.uid, gid: header.gid, mtime: header.mtime, xattrs: xattrsOf(header) };
}

/**
 * The planner for one extraction. Feed it each layer's entries in manifest order
 * ({@link LayerApplier.entry}), call {@link LayerApplier.endLayer} after each layer and
 * {@link LayerApplier.finish} once at the end.
 *
 * - Errors: an entry that cannot be applied safely is refused (`Left`), never bent into
 *   something else; the caller fails the run with it.
 * - Ownership: none; it holds only the model (memory grows with the number of nodes).
 */
export class LayerApplier {
  private readonly root: DirNode = { kind: 'dir', children: new Map(), layer: -1, touched: -1, meta: undefined };
  private layer = 0;

  constructor(readonly mode: 'merged' | 'overlay') {}

  /** The layer the next entries belong to (0 for the base). */
  get currentLayer(): number {
    return this.layer;
  }

  /**
   * The operations for one entry. For a `File` op the caller writes the entry's data;
   * for every other op the data (if any) is skipped.
   */
  entry(header: TarHeader): E.Either<ApplyRefusal, ApplyOp[]> {
    const refuse = (reason: string): E.Either<ApplyRefusal, ApplyOp[]> => E.left({ entry: header.name, reason });
    const components = layerEntryComponents(header.name);
    if (E.isLeft(components)) return refuse(`its name ${components.left}`);
    const parts = components.right;
    const base = parts[parts.length - 1];

    if (base !== undefined && base.startsWith(WHITEOUT_PREFIX)) return this.whiteout(header, parts, base, refuse);

    if (parts.length === 0) {
      // `.` / `./`: the root itself. Its type never changes (CVE-2021-29136).
      if (header.type !== 'directory') return refuse(`it would make the root a ${header.type}; the root stays a directory`);
      this.root.meta = metaOf(header);
      return E.right([]);
    }

    const ops: ApplyOp[] = [];
    const parent = this.parentFor(parts, ops);
    if (E.isLeft(parent)) return refuse(parent.left);
    const { dir, path: parentPath } = parent.right;
    const name = base as string;
    const path = [...parentPath, name].join('/');
    const existing = dir.children.get(name);
    const meta = metaOf(header);

    if (header.type === 'directory') {
      if (existing?.kind === 'dir') {
        existing.meta = meta;
        existing.touched = this.layer;
        return E.right(ops);
      }
      if (existing) ops.push({ _tag: 'Remove', path });
      dir.children.set(name, { kind: 'dir', children: new Map(), layer: this.layer, touched: this.layer, meta });
      ops.push({ _tag: 'Mkdir', path, meta });
      return E.right(ops);
    }

    let op: ApplyOp;
    let node: Node;
    switch (header.type) {
      case 'file':
        op = { _tag: 'File', path, size: header.size, meta };
        node = { kind: 'leaf', layer: this.layer };
        break;
      case 'symlink': {
        const target = header.linkname ?? '';
        if (target === '') return refuse('it is a symlink with an empty target');
        if (target.includes('\0')) return refuse('its symlink target contains a NUL byte');
        op = { _tag: 'Symlink', path, target, meta };
        node = { kind: 'symlink', target, layer: this.layer };
        break;
      }
      case 'link': {
        const target = this.hardlinkTarget(header.linkname ?? '');
        if (E.isLeft(target)) return refuse(target.left);
        if (target.right.path === path) return E.right(ops); // a link to itself: nothing to do
        op = { _tag: 'Hardlink', path, target: target.right.path };
        node = target.right.node.kind === 'symlink' ? { kind: 'symlink', target: target.right.node.target, layer: this.layer } : { kind: 'leaf', layer: this.layer };
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo':
        op = {
          _tag: 'Device',
          path,
          kind: header.type === 'fifo' ? 'fifo' : header.type === 'block-device' ? 'block' : 'character',
          major: header.devmajor ?? 0,
          minor: header.devminor ?? 0,
          meta,
        };
        node = { kind: 'leaf', layer: this.layer };
        break;
    }
    // Never write into what is there: the old inode goes, a new one comes (a hardlink to
    // it elsewhere keeps the old content; a symlink is never written through).
    if (existing) ops.push({ _tag: 'Remove', path });
    dir.children.set(name, node);
    ops.push(op);
    return E.right(ops);
  }

  /** Close the current layer; the next entries belong to the next one. */
  endLayer(): void {
    this.layer++;
  }

  /**
   * The directories' metadata, deepest first (a parent's mtime is set after its
   * children are done), the root last.
   */
  finish(): ApplyOp[] {
    const ops: ApplyOp[] = [];
    const visit = (dir: DirNode, path: string[]) => {
      for (const [name, child] of dir.children) if (child.kind === 'dir') visit(child, [...path, name]);
      if (dir.meta) ops.push({ _tag: 'DirMeta', path: path.join('/'), meta: dir.meta });
    };
    visit(this.root, []);
    return ops;
  }

  /**
   * Directories made only as implicit parents (no entry of their own set their metadata),
   * the root included ('') when no entry named it. In overlay mode the caller gives them
   * the metadata of the same directory in a lower layer, as containerd's applier does, so
   * the merged view shows what a merged extraction shows.
   */
  implicitDirs(): string[] {
    const out: string[] = [];
    const visit = (dir: DirNode, path: string[]) => {
      if (dir.meta === undefined) out.push(path.join('/'));
      for (const [name, child] of dir.children) if (child.kind === 'dir') visit(child, [...path, name]);
    };
    visit(this.root, []);
    return out;
  }

  /**
   * Where `name` leads: its resolved path, every symlink on the way followed (the last
   * one too) as if the root were `/`; for tests and callers that inspect the tree.
   */
  resolve(name: string): E.Either<string, string> {
    const parts = layerEntryComponents(name);
    if (E.isLeft(parts)) return parts;
    const walked = this.walkDirs(parts.right, undefined, true);
    return E.isLeft(walked) ? walked : E.right(walked.right.path.join('/'));
  }

  /**
   * The directory that will hold the entry `parts`: its parent components resolved
   * chroot-style, missing ones made (ops pushed); the last component is not followed.
   */
  private parentFor(parts: string[], ops: ApplyOp[]): E.Either<string, { dir: DirNode; path: string[] }> {
    const walked = this.walkDirs(parts.slice(0, -1), ops, false);
    if (E.isLeft(walked)) return walked;
    const { node, path } = walked.right;
    if (node?.kind !== 'dir') return E.left(`its parent ${path.join('/')} is missing`);
    return E.right({ dir: node, path });
  }

  /**
   * Walk `parts` from the root as directories, following every symlink as if the root
   * were `/` (absolute targets restart at the root, `..` stops there). A missing
   * directory is made when `ops` is given (an implicit parent, its op pushed); without
   * `ops` the walk ends there with no node. With `leafAtEnd`, the last component may be
   * a non-directory (then it is the node returned).
   */
  private walkDirs(parts: readonly string[], ops: ApplyOp[] | undefined, leafAtEnd: boolean): E.Either<string, { path: string[]; node: Node | undefined }> {
    const clean = (xs: readonly string[]) => xs.filter((x) => x !== '' && x !== '.');
    const queue = clean(parts);
    const stack: DirNode[] = [];
    const path: string[] = [];
    let current: DirNode = this.root;
    let hops = 0;
    while (queue.length > 0) {
      const c = queue.shift() as string;
      if (c === '..') {
        if (path.length > 0) {
          path.pop();
          current = stack.pop() as DirNode;
        }
        continue;
      }
      let child = current.children.get(c);
      if (child?.kind === 'symlink') {
        if (++hops > MAX_SYMLINK_HOPS) return E.left(`resolving it follows more than ${MAX_SYMLINK_HOPS} symlinks`);
        if (child.target.startsWith('/')) {
          path.length = 0;
          stack.length = 0;
          current = this.root;
        }
        queue.unshift(...clean(child.target.split('/')));
        if (queue.length > MAX_DEPTH) return E.left(`resolving it goes more than ${MAX_DEPTH} components deep`);
        continue;
      }
      if (child === undefined) {
        if (!ops) return E.right({ path: [...path, c, ...queue], node: undefined });
        child = { kind: 'dir', children: new Map(), layer: this.layer, touched: this.layer, meta: undefined };
        current.children.set(c, child);
        ops.push({ _tag: 'Mkdir', path: [...path, c].join('/'), meta: IMPLICIT_DIR_META });
      }
      if (child.kind !== 'dir') {
        if (leafAtEnd && queue.length === 0) return E.right({ path: [...path, c], node: child });
        return E.left(`${[...path, c].join('/')} is not a directory`);
      }
      stack.push(current);
      current = child;
      path.push(c);
    }
    return E.right({ path, node: current });
  }

  /** A hard link's target: an existing non-directory inside the root, its last component not followed. */
  private hardlinkTarget(linkname: string): E.Either<string, { path: string; node: LeafNode | LinkNode }> {
    const what = `its hard link target ${JSON.stringify(linkname)}`;
    const parts = layerEntryComponents(linkname);
    if (E.isLeft(parts)) return E.left(`${what} ${parts.left}`);
    const last = parts.right[parts.right.length - 1];
    if (last === undefined) return E.left(`${what} is the root`);
    const parent = this.walkDirs(parts.right.slice(0, -1), undefined, false);
    if (E.isLeft(parent)) return E.left(`${what}: ${parent.left}`);
    const dir = parent.right.node;
    const node = dir?.kind === 'dir' ? dir.children.get(last) : undefined;
    if (node === undefined) return E.left(`${what} does not exist in the layers so far`);
    if (node.kind === 'dir') return E.left(`${what} is a directory`);
    return E.right({ path: [...parent.right.path, last].join('/'), node });
  }

  private whiteout(
    header: TarHeader,
    parts: string[],
    base: string,
    refuse: (reason: string) => E.Either<ApplyRefusal, ApplyOp[]>,
  ): E.Either<ApplyRefusal, ApplyOp[]> {
    const opaque = base === OPAQUE_MARKER;
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (!opaque && (hidden === '' || hidden === '.' || hidden === '..' || hidden.startsWith(WHITEOUT_PREFIX))) {
      return refuse(`${JSON.stringify(base)} is not a valid whiteout name`);
    }
    if (header.type === 'directory') return refuse('a whiteout must not be a directory');
    const dirParts = parts.slice(0, -1);
    if (this.mode === 'overlay') {
      const ops: ApplyOp[] = [];
      const parent = this.parentFor([...dirParts, base], ops);
      if (E.isLeft(parent)) return refuse(parent.left);
      const { dir, path } = parent.right;
      if (opaque) {
        ops.push({ _tag: 'Opaque', path: path.join('/') });
        return E.right(ops);
      }
      const at = [...path, hidden].join('/');
      const existing = dir.children.get(hidden);
      if (existing) return refuse(`it hides ${at}, which this same layer holds`);
      dir.children.set(hidden, { kind: 'leaf', layer: this.layer });
      ops.push({ _tag: 'Device', path: at, kind: 'character', major: 0, minor: 0, meta: { ...IMPLICIT_DIR_META, mode: 0 } });
      return E.right(ops);
    }
    // merged: the directory is found without following any symlink (a whiteout under a
    // symlinked parent names nothing in the lower layers' tree), and nothing is made.
    const dir = this.realDir(dirParts);
    if (dir === undefined) return E.right([]);
    const prefix = dirParts.join('/');
    const join = (n: string) => (prefix === '' ? n : `${prefix}/${n}`);
    if (opaque) {
      const ops: ApplyOp[] = [];
      this.prune(dir, prefix, ops);
      return E.right(ops);
    }
    const existing = dir.children.get(hidden);
    if (!existing || existing.layer >= this.layer) return E.right([]);
    dir.children.delete(hidden);
    return E.right([{ _tag: 'Remove', path: join(hidden) }]);
  }

  /**
   * An opaque directory: remove what lower layers put in `dir`. What this layer made
   * stays; a lower directory this layer has an entry for stays too, pruned the same way.
   */
  private prune(dir: DirNode, prefix: string, ops: ApplyOp[]): void {
    for (const [name, child] of [...dir.children]) {
      const path = prefix === '' ? name : `${prefix}/${name}`;
      if (child.layer >= this.layer) continue;
      if (child.kind === 'dir' && child.touched >= this.layer) {
        this.prune(child, path, ops);
        continue;
      }
      dir.children.delete(name);
      ops.push({ _tag: 'Remove', path });
    }
  }

  /** The directory at exactly `parts`, every component a real directory (no symlink followed). */
  private realDir(parts: readonly string[]): DirNode | undefined {
    let current: DirNode = this.root;
    for (const c of parts) {
      const child = current.children.get(c);
      if (child?.kind !== 'dir') return undefined;
      current = child;
    }
    return current;
  }
}
