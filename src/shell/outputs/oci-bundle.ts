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
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import type { ConfigElement, DataPayload, LayerDescriptor, TarConsumerOffer } from '../../core/element.js';
import { outputError } from '../../core/errors.js';
import { type CommittedImage, CopyOutput, type ImageDestination, type PutLayerResult } from '../../core/pipeline/copy-image.js';
import type { StageContext } from '../../core/pipeline/types.js';
import { RootfsBuilder } from '../extract/rootfs-builder.js';
import { readUserDatabase } from '../extract/user-database.js';
import { trackPartialOutput } from '../partial-outputs.js';
import { applyTarPayload, checkFreshTarget, workDirBeside, writeBundleConfig } from './bundle-dir.js';
import { TarConsumers } from './tar-consumers.js';

const ADVICE = 'remove it or give a new path (a bundle is written whole)';

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
  /** Manifest positions applied so far. */
  readonly applied: Set<number>;
  readonly signal: AbortSignal;
  /** `rootfs/` exists: layers may be applied. */
  ready: boolean;
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
  /**
   * Layers streamed from the input straight into the builder, one at a time in manifest
   * order: a layer starts once the run has begun and every earlier one is applied (a
   * diff_id met before arrives as a duplicate, never applied). Offered from the start, so
   * a layer asked about before `begin` waits for it.
   */
  private readonly consumers: TarConsumers;

  constructor(private readonly options: OciBundleOptions) {
    this.description = options.label ?? `oci://${options.path}`;
    this.target = path.resolve(options.path);
    this.consumers = new TarConsumers({
      description: this.description,
      mayStart: (index) => {
        const run = this.run;
        const layers = run?.config.layers;
        return !!layers && run.ready && layers.slice(0, index).every((l, i) => run.applied.has(i) || layers.findIndex((o) => o.diffId === l.diffId) < i);
      },
    });
  }

  async begin(config: ConfigElement, ctx: StageContext): Promise<void> {
    if (this.run) throw outputError(`${this.description}: a bundle holds one image; this source gives more than one`);
    await checkFreshTarget(this.target, this.description, ADVICE);
    const work = await workDirBeside(this.target);
    const run: BundleRun = {
      work,
      builder: new RootfsBuilder({ root: path.join(work, 'rootfs'), mode: 'merged', privileged: this.options.privileged ?? process.getuid?.() === 0, label: this.description }),
      applied: new Set(),
      ready: false,
      signal: ctx.signal,
      config,
      untrack: () => undefined,
    };
    this.run = run;
    run.untrack = trackPartialOutput(() => fs.rm(work, { recursive: true, force: true }));
    await fs.mkdir(path.join(work, 'rootfs'), { mode: 0o700 });
    run.ready = true;
    this.consumers.changed();
  }

  /** Layers are taken as the input reads them when their turn comes (see {@link TarConsumers}). */
  consume(layer: LayerDescriptor): TarConsumerOffer {
    return this.consumers.offer(layer, (tar) => this.apply(this.current(), layer, tar));
  }

  async putLayer(layer: LayerDescriptor, payload: DataPayload, ctx: StageContext): Promise<PutLayerResult<number>> {
    const run = this.current();
    const bytes = await applyTarPayload(this.consumers, layer, payload, ctx, this.description, (tar) => this.apply(run, layer, tar));
    return { stored: layer.index, bytes };
  }

  private async apply(run: BundleRun, layer: LayerDescriptor, tar: AsyncIterable<Uint8Array>): Promise<void> {
    await run.builder.applyLayer(tar, layer.index, run.signal);
    run.applied.add(layer.index);
    this.consumers.changed();
  }

  async putConfig(config: ConfigElement): Promise<void> {
    this.current().config = config;
  }

  async commit(_image: CommittedImage<number>): Promise<{ destination: string }> {
    const run = this.current();
    this.consumers.checkAllDelivered();
    run.builder.finish();
    this.reportRootless(run.builder);
    const builder = run.builder;
    const users = await readUserDatabase((name) => {
      const resolved = builder.resolve(name);
      return E.isRight(resolved) ? builder.pathOf(resolved.right) : undefined;
    });
    await writeBundleConfig(run.work, run.config, users, this.description);
    await checkFreshTarget(this.target, this.description, ADVICE, true);
    await fs.rename(run.work, this.target);
    run.untrack();
    this.run = undefined;
    return { destination: this.target };
  }

  async abort(): Promise<void> {
    const run = this.run;
    await this.consumers.close();
    if (!run) return;
    this.run = undefined;
    await fs.rm(run.work, { recursive: true, force: true }).catch(() => undefined);
    run.untrack();
  }

  private current(): BundleRun {
    if (!this.run) throw outputError(`${this.description}: no run under way`);
    return this.run;
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
