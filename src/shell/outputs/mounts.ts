/**
 * `mounts://DIR` output: each layer extracted alone into `layers/<diff_id hex>/`, its
 * whiteouts turned into what overlayfs reads (a 0/0 character device for `.wh.NAME`, the
 * `trusted.overlay.opaque=y` xattr for `.wh..wh..opq`), then the overlay mounted at
 * `rootfs/` (`lowerdir` newest first, `upperdir=delta`, `workdir=working`), with
 * `config.json` and `container-config.json` as for `oci://`, so `runc run -b DIR` works.
 *
 * Root only (mount, mknod, trusted.* xattrs), and overlayfs must be in /proc/filesystems;
 * both are checked before a layer is read. The tree is built in a fresh private directory
 * beside DIR and renamed to DIR before the mount; if the mount or anything after it fails,
 * DIR is unmounted and removed, so nothing is left. `umount DIR/rootfs` takes it down.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { digestHex } from '../../core/digest.js';
import type { ConfigElement, DataPayload, LayerDescriptor, TarConsumerOffer } from '../../core/element.js';
import { outputError } from '../../core/errors.js';
import { type CommittedImage, CopyOutput, type ImageDestination, type PutLayerResult } from '../../core/pipeline/copy-image.js';
import type { StageContext } from '../../core/pipeline/types.js';
import type { UserDatabase } from '../../core/plans/runtime-spec.js';
import { RootfsBuilder } from '../extract/rootfs-builder.js';
import { readUserDatabase } from '../extract/user-database.js';
import { trackPartialOutput } from '../partial-outputs.js';
import { applyTarPayload, checkFreshTarget, workDirBeside, writeBundleConfig } from './bundle-dir.js';
import { TarConsumers } from './tar-consumers.js';

const ADVICE = 'remove it (umount DIR/rootfs first if it is mounted) or give a new path';

const run = promisify(execFile);

export interface MountsOptions {
  readonly path: string;
  readonly label?: string;
}

interface MountsRun {
  readonly work: string;
  config: ConfigElement;
  untrack: () => void;
  /** Per layer directory (diff_id hex): the directories only its entries' parents made. */
  readonly implicit: Map<string, string[]>;
  readonly signal: AbortSignal;
  /** `layers/` exists: layers may be applied. */
  ready: boolean;
}

export class MountsDestination implements ImageDestination<string> {
  readonly description: string;
  readonly order = 'completion' as const;
  readonly needs = { _tag: 'Tar' } as const;
  readonly concurrency = 1;
  private current: MountsRun | undefined;
  private readonly target: string;
  /** Layers streamed from the input straight into their directories, one at a time, in any order once the run has begun. */
  private readonly consumers: TarConsumers;

  constructor(options: MountsOptions) {
    this.description = options.label ?? `mounts://${options.path}`;
    this.target = path.resolve(options.path);
    this.consumers = new TarConsumers({ description: this.description, mayStart: () => this.current?.ready === true });
  }

  async begin(config: ConfigElement, ctx: StageContext): Promise<void> {
    if (this.current) throw outputError(`${this.description}: overlay mounts hold one image; this source gives more than one`);
    if (process.getuid?.() !== 0) throw outputError(`${this.description}: mounts:// needs root (an overlay mount, whiteout devices, trusted.* xattrs); run as root, or use oci:// or dir://?expand=true`);
    const filesystems = await fs.readFile('/proc/filesystems', 'utf8').catch(() => '');
    if (!/\toverlay$/m.test(filesystems)) throw outputError(`${this.description}: this kernel has no overlayfs (not in /proc/filesystems); load it (modprobe overlay) or use oci://`);
    if (/[,:\\]/.test(this.target)) throw outputError(`${this.description}: ${this.target} has a ',' ':' or '\\', which overlay mount options cannot carry; choose another path`);
    await checkFreshTarget(this.target, this.description, ADVICE);
    const work = await workDirBeside(this.target);
    this.current = {
      work,
      config,
      untrack: trackPartialOutput(() => this.undo(work)),
      implicit: new Map(),
      signal: ctx.signal,
      ready: false,
    };
    await fs.mkdir(path.join(work, 'layers'), { mode: 0o700 });
    this.current.ready = true;
    this.consumers.changed();
  }

  /** Layers are taken as the input reads them (see {@link TarConsumers}). */
  consume(layer: LayerDescriptor): TarConsumerOffer {
    return this.consumers.offer(layer, (tar) => this.apply(this.state(), layer, tar));
  }

  async putLayer(layer: LayerDescriptor, payload: DataPayload, ctx: StageContext): Promise<PutLayerResult<string>> {
    const runState = this.state();
    const bytes = await applyTarPayload(this.consumers, layer, payload, ctx, this.description, (tar) => this.apply(runState, layer, tar));
    return { stored: path.join(runState.work, 'layers', digestHex(layer.diffId)), bytes };
  }

  /** One layer into its own directory, whiteouts as overlayfs wants them. */
  private async apply(runState: MountsRun, layer: LayerDescriptor, tar: AsyncIterable<Uint8Array>): Promise<void> {
    const root = path.join(runState.work, 'layers', digestHex(layer.diffId));
    const builder = new RootfsBuilder({ root, mode: 'overlay', privileged: true, label: this.description });
    await fs.mkdir(root, { mode: 0o700 });
    await builder.applyLayer(tar, layer.index, runState.signal);
    builder.finish();
    runState.implicit.set(digestHex(layer.diffId), builder.implicitDirs());
  }

  async putConfig(config: ConfigElement): Promise<void> {
    this.state().config = config;
  }

  async commit(_image: CommittedImage<string>): Promise<{ destination: string }> {
    const runState = this.state();
    this.consumers.checkAllDelivered();
    // Newest first; a diff_id listed twice is one directory, at its topmost place (the
    // same content again hides all a lower copy did; overlayfs refuses a lower twice).
    const lower: string[] = [];
    for (const layer of [...runState.config.layers].reverse()) {
      const dir = path.join(this.target, 'layers', digestHex(layer.diffId));
      if (!lower.includes(dir)) lower.push(dir);
    }
    await inheritImplicitDirs(path.join(runState.work, 'layers'), runState.config.layers.map((l) => digestHex(l.diffId)), runState.implicit);
    await checkFreshTarget(this.target, this.description, ADVICE, true);
    await fs.rename(runState.work, this.target);
    let mounted = false;
    try {
      for (const d of ['rootfs', 'working', 'delta']) await fs.mkdir(path.join(this.target, d), { mode: 0o755 });
      const rootfs = path.join(this.target, 'rootfs');
      const options = `lowerdir=${lower.join(':')},upperdir=${path.join(this.target, 'delta')},workdir=${path.join(this.target, 'working')}`;
      try {
        await run('mount', ['-t', 'overlay', 'overlay', '-o', options, rootfs]);
      } catch (e) {
        throw outputError(`${this.description}: mounting the overlay at ${rootfs} failed: ${((e as { stderr?: string }).stderr ?? (e as Error).message).trim().split('\n')[0]}`);
      }
      mounted = true;
      await writeBundleConfig(this.target, runState.config, await userDatabase(rootfs), this.description);
    } catch (e) {
      if (mounted) await run('umount', [path.join(this.target, 'rootfs')]).catch(() => undefined);
      await fs.rm(this.target, { recursive: true, force: true }).catch(() => undefined);
      runState.untrack();
      this.current = undefined;
      throw e;
    }
    runState.untrack();
    this.current = undefined;
    return { destination: this.target };
  }

  async abort(): Promise<void> {
    const runState = this.current;
    await this.consumers.close();
    if (!runState) return;
    this.current = undefined;
    await this.undo(runState.work);
    runState.untrack();
  }

  private async undo(work: string): Promise<void> {
    await fs.rm(work, { recursive: true, force: true }).catch(() => undefined);
  }

  private state(): MountsRun {
    if (!this.current) throw outputError(`${this.description}: no run under way`);
    return this.current;
  }
}

/**
 * Give each directory a layer made only as an implicit parent the metadata (mode, owner,
 * times) of the same directory in the nearest lower layer that has it as a real directory
 * (every component a directory, no link followed), as containerd's applier does; bottom
 * up, so a lower implicit one is settled first. Without one it keeps 0755 and the time it
 * was made, as in a merged extraction.
 */
async function inheritImplicitDirs(layersDir: string, order: readonly string[], implicit: ReadonlyMap<string, string[]>): Promise<void> {
  const isRealDir = async (root: string, rel: string): Promise<boolean> => {
    let at = root;
    for (const part of rel === '' ? [] : rel.split('/')) {
      at = path.join(at, part);
      const st = await fs.lstat(at).catch(() => undefined);
      if (!st?.isDirectory()) return false;
    }
    return true;
  };
  const seen: string[] = [];
  for (const [at, hex] of order.entries()) {
    // A repeated layer is one directory, in lowerdir at its topmost place: settle it there.
    if (order.indexOf(hex, at + 1) >= 0) continue;
    for (const rel of implicit.get(hex) ?? []) {
      for (const lower of [...seen].reverse()) {
        if (lower === hex) continue;
        const from = path.join(layersDir, lower, rel);
        if (!(await isRealDir(path.join(layersDir, lower), rel))) continue;
        const st = await fs.lstat(from);
        const handle = await fs.open(path.join(layersDir, hex, rel), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
        try {
          await handle.chown(st.uid, st.gid);
          await handle.chmod(st.mode & 0o7777);
          await handle.utimes(st.atime, st.mtime);
        } finally {
          await handle.close();
        }
        break;
      }
    }
    seen.push(hex);
  }
}

/** The merged view's /etc/passwd and /etc/group, when `etc` is a real directory there. */
async function userDatabase(rootfs: string): Promise<UserDatabase> {
  const st = await fs.lstat(path.join(rootfs, 'etc')).catch(() => undefined);
  return st?.isDirectory() ? readUserDatabase((name) => path.join(rootfs, name)) : {};
}

/** `mounts://` as an output: the copy loop into a {@link MountsDestination}. */
export class MountsOutput extends CopyOutput<string> {
  constructor(options: MountsOptions) {
    super(new MountsDestination(options));
  }
}
