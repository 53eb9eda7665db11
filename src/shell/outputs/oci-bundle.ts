/**
 * `oci://DIR` output: an OCI runtime bundle, as occystrap writes it: `rootfs/` (the layers
 * applied in order by the layer-apply engine), `config.json` (the runtime spec generated
 * from the image config, src/core/plans/runtime-spec.ts) and `container-config.json`
 * (the image config's own bytes). runc runs it: `runc run -b DIR NAME`.
 *
 * The bundle is built in a fresh private directory beside DIR (`.DIR.occystrap-XXXXXX`,
 * mode 0700, so no other process can change the tree while it is built) and renamed to
 * DIR at the end; DIR must not exist, or be an empty directory. A failed or interrupted
 * run removes the working directory: nothing is left at DIR.
 *
 * @module
 */
import { promises as fs, createReadStream } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { type ConfigElement, type DataPayload, type LayerDescriptor, tarOf } from '../../core/element.js';
import { outputError } from '../../core/errors.js';
import { type CommittedImage, CopyOutput, type ImageDestination, type PutLayerResult } from '../../core/pipeline/copy-image.js';
import type { StageContext } from '../../core/pipeline/types.js';
import { runtimeSpec } from '../../core/plans/runtime-spec.js';
import { RootfsBuilder } from '../extract/rootfs-builder.js';
import { readUserDatabase } from '../extract/user-database.js';
import { trackPartialOutput } from '../partial-outputs.js';

export interface OciBundleOptions {
  readonly path: string;
  readonly label?: string;
  /** Apply owners, devices and privileged xattrs (default: running as root). */
  readonly privileged?: boolean;
  /** Told about what a rootless build left out. */
  readonly warn?: (message: string) => void;
}

interface BundleRun {
  readonly work: string;
  readonly builder: RootfsBuilder;
  config: ConfigElement;
  untrack: () => void;
}

export class OciBundleDestination implements ImageDestination<number> {
  readonly description: string;
  readonly order = 'manifest' as const;
  readonly needs = { _tag: 'Tar' } as const;
  readonly concurrency = 1;
  private run: BundleRun | undefined;
  private readonly target: string;

  constructor(private readonly options: OciBundleOptions) {
    this.description = options.label ?? `oci://${options.path}`;
    this.target = path.resolve(options.path);
  }

  async begin(config: ConfigElement): Promise<void> {
    if (this.run) throw outputError(`${this.description}: a bundle holds one image; this source gives more than one`);
    await this.checkTarget();
    const parent = path.dirname(this.target);
    await fs.mkdir(parent, { recursive: true });
    const work = await fs.mkdtemp(path.join(parent, `.${path.basename(this.target)}.occystrap-`));
    const run: BundleRun = {
      work,
      builder: new RootfsBuilder({ root: path.join(work, 'rootfs'), mode: 'merged', privileged: this.options.privileged ?? process.getuid?.() === 0, label: this.description }),
      config,
      untrack: () => undefined,
    };
    this.run = run;
    run.untrack = trackPartialOutput(() => fs.rm(work, { recursive: true, force: true }));
    await fs.mkdir(path.join(work, 'rootfs'), { mode: 0o700 });
  }

  async putLayer(layer: LayerDescriptor, payload: DataPayload, ctx: StageContext): Promise<PutLayerResult<number>> {
    const run = this.current();
    const tar = tarOf(payload);
    try {
      if (!tar) throw outputError(`${this.description}: layer ${layer.index} arrived without its tar`);
      await run.builder.applyLayer(createReadStream(tar.file.path, { highWaterMark: 1 << 20 }), layer.index, ctx.signal);
      return { stored: layer.index, bytes: tar.size };
    } finally {
      if (tar) await ctx.effects.perform({ _tag: 'Release', file: tar.file, owner: ctx.owner });
    }
  }

  async putConfig(config: ConfigElement): Promise<void> {
    this.current().config = config;
  }

  async commit(_image: CommittedImage<number>): Promise<{ destination: string }> {
    const run = this.current();
    run.builder.finish();
    this.reportRootless(run.builder);
    const builder = run.builder;
    const users = await readUserDatabase((name) => {
      const resolved = builder.resolve(name);
      return E.isRight(resolved) ? builder.pathOf(resolved.right) : undefined;
    });
    const spec = runtimeSpec(run.config.config, users);
    if (E.isLeft(spec)) throw outputError(`${this.description}: ${spec.left}; the runtime spec cannot name the image's user`);
    await fs.writeFile(path.join(run.work, 'config.json'), `${JSON.stringify(spec.right, null, 4)}\n`, { mode: 0o644, flag: 'wx' });
    await fs.writeFile(path.join(run.work, 'container-config.json'), run.config.raw, { mode: 0o644, flag: 'wx' });
    await this.checkTarget(true);
    await fs.rename(run.work, this.target);
    run.untrack();
    this.run = undefined;
    return { destination: this.target };
  }

  async abort(): Promise<void> {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    await fs.rm(run.work, { recursive: true, force: true }).catch(() => undefined);
    run.untrack();
  }

  private current(): BundleRun {
    if (!this.run) throw outputError(`${this.description}: no run under way`);
    return this.run;
  }

  /** DIR must be missing or an empty directory (removed here when `clear`, just before the rename). */
  private async checkTarget(clear = false): Promise<void> {
    let st;
    try {
      st = await fs.lstat(this.target);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return;
      throw e;
    }
    const refuse = (what: string) => outputError(`${this.description}: ${this.target} ${what}; remove it or give a new path (a bundle is written whole)`);
    if (!st.isDirectory()) throw refuse('exists and is not a directory');
    if ((await fs.readdir(this.target)).length > 0) throw refuse('exists and is not empty');
    if (clear) await fs.rmdir(this.target);
  }

  private reportRootless(builder: RootfsBuilder): void {
    const { devicesFaked, xattrsSkipped } = builder.stats;
    if (devicesFaked > 0) this.options.warn?.(`${this.description}: ${devicesFaked} device node(s) made as empty files (not running as root)`);
    for (const [name, count] of xattrsSkipped) this.options.warn?.(`${this.description}: xattr ${name} not set on ${count} path(s) (not running as root)`);
  }
}

/** `oci://` as an output: the copy loop into an {@link OciBundleDestination}. */
export class OciBundleOutput extends CopyOutput<number> {
  constructor(options: OciBundleOptions) {
    super(new OciBundleDestination(options));
  }
}
