/**
 * `dir://` output: the directory store shared by many images (see
 * core/plans/dir-store.ts for the layout).
 *
 * Layers are moved in by rename — the input's temp file becomes `<diff_id>/layer.tar`
 * with no copy when both are on one filesystem. A layer already in the store is not
 * fetched again (`wants` answers false) once its file has been hashed to its diff_id.
 * Metadata is written atomically, manifest and catalog last, under the store's lock, so a
 * reader never sees an image whose files are incomplete and concurrent runs never lose a
 * catalog entry. A failed run removes every file and directory it added.
 *
 * The store's contents are not trusted: every path is the store's real root plus names
 * occystrap chose, each entry is `lstat`ed, and files are opened without following links
 * (see fs/store-fs.ts).
 *
 * @module
 */
import { createHash, type Hash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { describeDecodeError, MAX_JSON_BYTES } from '../../core/codecs/common.js';
import { type Digest, digestHex } from '../../core/digest.js';
import { type ConfigElement, type DataPayload, type LayerDescriptor, releaseElement, repoTag, tarOf } from '../../core/element.js';
import { OccystrapError, outputError } from '../../core/errors.js';
import { type CommittedImage, CopyOutput, type ImageDestination, type PutLayerResult } from '../../core/pipeline/copy-image.js';
import type { StageContext } from '../../core/pipeline/types.js';
import { savedConfigPath, savedLayerPath } from '../../core/plans/docker-save.js';
import { type Catalog, catalogBytes, decodeCatalog, dirManifestBytes, manifestFileName, mergeCatalog } from '../../core/plans/dir-store.js';
import { publishMode, writeFileAtomically } from '../fs/atomic.js';
import { describeKind, type EntryKind, lstatEntry, openRegular, readRegularFile, StoreEntryError, VerifiedFiles } from '../fs/store-fs.js';
import { RootfsBuilder } from '../extract/rootfs-builder.js';
import { acquireStoreLock, type StoreLock, StoreLockError } from '../fs/store-lock.js';
import { InFlight, StoreRoot } from '../fs/store-root.js';
import { trackPartialOutput } from '../partial-outputs.js';

export interface DirOutputOptions {
  readonly path: string;
  readonly uniqueNames: boolean;
  /**
   * Also build the merged rootfs (the layers applied in order by the layer-apply engine)
   * beside the manifest, as `<manifest name without .json>/`, as occystrap's expand=true.
   */
  readonly expand?: boolean;
  /** Layers stored at once (default 4; the CLI passes -j). */
  readonly concurrency?: number;
  readonly label?: string;
  /** How long to wait for another run's store lock (default 60 s). */
  readonly lockTimeoutMs?: number;
}

const CATALOG = 'catalog.json';

/** What one run into the store keeps: what it added (for rollback), its lock, its store operations. */
interface DirRun {
  readonly root: string;
  /** The top directory this run created, when it created the store. */
  createdRoot: string | undefined;
  /** Files and directories this run created, in creation order. */
  readonly added: string[];
  /** Store operations under way; a forced rollback waits a moment for them. */
  readonly inFlight: InFlight;
  lock: StoreLock | undefined;
  restoreManifest: (() => Promise<void>) | undefined;
  undoing: Promise<void> | undefined;
  untrack: () => void;
  /** The last store operation per layer path (two layers with one diff_id go one after the other). */
  readonly storing: Map<string, Promise<void>>;
}

/**
 * The `dir://` destination operations: layers stored concurrently by rename, config on
 * `putConfig`, manifest and catalog under the store's lock at commit.
 */
export class DirDestination implements ImageDestination<string> {
  readonly description: string;
  readonly order = 'completion' as const;
  readonly needs = { _tag: 'Tar' } as const;
  readonly concurrency: number;
  /** The store as given (absolute); its real path is resolved once it exists. */
  private readonly store: StoreRoot;
  /** Layers (by diff_id hex) whose stored file hashed to the diff_id, with that file's identity. */
  private readonly verified = new VerifiedFiles();

  constructor(private readonly options: DirOutputOptions) {
    this.description = options.label ?? `dir://${options.path}`;
    this.store = new StoreRoot(options.path, this.description);
    this.concurrency = Math.max(1, options.concurrency ?? 4);
  }

  /** A layer is present only if its file is a regular file whose sha256 is the diff_id. */
  async has(layer: LayerDescriptor): Promise<boolean> {
    const root = await this.store.resolve();
    try {
      return root !== undefined && (await this.layerVerified(root, layer.diffId));
    } catch (e) {
      // A bad entry (e.g. a linked layer directory) is refused when the layer arrives,
      // where the error is the output's own.
      if (OccystrapError.is(e) && e.code === 'EOUTPUT') return false;
      throw e;
    }
  }


  /** One line about a store entry that is not what it must be. */
  private refuse(name: string, problem: string, todo: string): Error {
    return outputError(`${this.description}: ${name} ${problem}; ${todo}`);
  }

  private badEntry(name: string, kind: EntryKind): Error {
    if (kind === 'symlink') {
      return this.refuse(name, 'is a symbolic link', 'occystrap does not read or write through links in a store: replace it with a regular file or remove it');
    }
    return this.refuse(name, `is ${describeKind(kind)}, not a regular file`, 'remove it');
  }

  /** `DIR/<hex>` must be a real directory (never a link that would put the layer elsewhere). */
  private async layerDirState(root: string, hex: string): Promise<'missing' | 'directory'> {
    const dir = await lstatEntry(path.join(root, hex));
    if (dir.kind === 'missing' || dir.kind === 'directory') return dir.kind;
    if (dir.kind === 'symlink') {
      throw this.refuse(`${hex}`, 'is a symbolic link', 'a layer directory must be a real directory in the store: remove the link and run again');
    }
    throw this.refuse(`${hex}`, `is ${describeKind(dir.kind)}, not a directory`, 'remove it and run again');
  }

  /**
   * Whether `DIR/<hex>/layer.tar` holds this layer: a regular file that hashes to the
   * diff_id. Hashed once per run; later asks compare the file's identity (inode, size,
   * mtime) and hash again only if it changed.
   */
  private layerVerified(root: string, diffId: Digest): Promise<boolean> {
    const hex = digestHex(diffId);
    return this.verified.verify(hex, diffId, async () => {
      if ((await this.layerDirState(root, hex)) === 'missing') return undefined;
      const file = path.join(root, savedLayerPath(diffId));
      const entry = await lstatEntry(file);
      if (entry.kind === 'directory') throw this.refuse(savedLayerPath(diffId), 'is a directory', 'remove it and run again');
      return entry.kind === 'file' && entry.stats ? { file, stats: entry.stats } : undefined;
    });
  }

  // ---- the run (one per destination object) ----------------------------------------

  private run: DirRun | undefined;

  private current(): DirRun {
    if (!this.run) throw new Error(`${this.description}: no run under way`);
    return this.run;
  }

  /** Create the store if needed, register the forced-exit rollback, check the catalog. */
  async begin(config: ConfigElement): Promise<void> {
    if (this.run) throw outputError(`${this.description}: a second config arrived in one run`);
    const { root, created: createdRoot } = await this.store.ensure();
    const run: DirRun = { root, createdRoot, added: [], inFlight: new InFlight(), lock: undefined, restoreManifest: undefined, undoing: undefined, untrack: () => undefined, storing: new Map() };
    this.run = run;
    // Until the run has finished, a forced exit removes what it added (see partial-outputs.ts).
    run.untrack = trackPartialOutput(() => this.undo(run, true));
    // Fail before any layer is fetched if the catalog cannot be merged.
    await this.readCatalog(root);
    const manifestName = manifestFileName(config.image, this.options.uniqueNames);
    const manifestEntry = await lstatEntry(path.join(root, manifestName));
    if (manifestEntry.kind !== 'missing' && manifestEntry.kind !== 'file') throw this.badEntry(manifestName, manifestEntry.kind);
  }

  async putConfig(config: ConfigElement, ctx: StageContext): Promise<void> {
    const run = this.current();
    await run.inFlight.track(async () => {
      const outcome = await this.storeConfig(run.root, config, ctx);
      if (outcome === 'added') run.added.push(path.join(run.root, savedConfigPath(config.digest)));
    });
  }


  async putLayer(layer: LayerDescriptor, payload: DataPayload, ctx: StageContext): Promise<PutLayerResult<string>> {
    const { effects, owner } = ctx;
    const run = this.current();
    const relative = savedLayerPath(layer.diffId);
    const tar = tarOf(payload);
    if (!tar) {
      await releaseElement(effects, owner)({ _tag: 'Layer', layer, payload });
      throw outputError(`${this.description}: layer ${layer.index} arrived without its tar`);
    }
    const diffId = layer.diffId;
    const hex = digestHex(diffId);
    const root = run.root;
    const dir = path.join(root, hex);
    const destination = path.join(root, relative);
    const store = async (): Promise<PutLayerResult<string>> => {
      try {
        if ((await this.layerDirState(root, hex)) === 'missing') {
          try {
            await fs.mkdir(dir);
            run.added.push(dir);
          } catch (e) {
            if ((e as { code?: string }).code !== 'EEXIST') throw e;
            await this.layerDirState(root, hex);
          }
        }
        if (await this.layerVerified(root, diffId)) {
          // Same diff_id already stored and verified: keep the stored file.
          await effects.perform({ _tag: 'Release', file: tar.file, owner });
          return { stored: relative, bytes: 0, kept: true };
        }
        // Missing, or not this layer (garbage, a link, a FIFO): the rename replaces the
        // entry itself, never a link's target.
        const before = await lstatEntry(destination);
        await publishMode(tar.file.path);
        const reply = await effects.perform({ _tag: 'MoveIntoPlace', file: tar.file, owner, destination });
        if (before.kind === 'missing') run.added.push(destination);
        const now = await lstatEntry(destination);
        if (now.stats && now.kind === 'file') this.verified.remember(hex, now.stats);
        return { stored: relative, bytes: tar.size, copiedAcrossDevices: reply.copied };
      } catch (e) {
        // Still ours if the move did not happen.
        await effects.perform({ _tag: 'Release', file: tar.file, owner }).catch(() => undefined);
        throw e;
      }
    };
    // Layers are stored concurrently (a cross-filesystem copy must not stall the next
    // one); two layers with one diff_id are stored one after the other.
    const previous = run.storing.get(relative) ?? Promise.resolve();
    const task = previous.then(store, store);
    run.storing.set(
      relative,
      task.then(
        () => undefined,
        () => undefined,
      ),
    );
    let result: PutLayerResult<string> | undefined;
    await run.inFlight.track(async () => {
      result = await task;
    });
    return result as PutLayerResult<string>;
  }

  async commit(image: CommittedImage<string>, ctx: StageContext): Promise<{ destination: string }> {
    const { effects, owner } = ctx;
    const run = this.current();
    const { root } = run;
    const config = image.config;
    const manifestName = manifestFileName(config.image, this.options.uniqueNames);
    const tag = repoTag(config.image);
    const manifest = dirManifestBytes({
      configPath: savedConfigPath(config.digest),
      layerPaths: config.layers.map((l) => savedLayerPath(l.diffId)),
      repoTags: tag ? [tag] : [],
      ...(this.options.uniqueNames ? { imageName: config.image.name } : {}),
    });
    const manifestPath = path.join(root, manifestName);

    // The read-merge-write of the metadata is one critical section per store.
    run.lock = await this.lock(root, ctx.signal);
    for (const layer of config.layers) {
      if (!(await this.layerVerified(root, layer.diffId))) {
        throw outputError(`${this.description}: layer ${layer.index} (diff_id ${layer.diffId}) was skipped as present but is missing from the store or changed; run again`);
      }
    }
    const rootfs = this.options.expand ? await this.expand(root, config, manifestName, ctx.signal) : undefined;
    const storedConfig = await readRegularFile(path.join(root, savedConfigPath(config.digest)), MAX_JSON_BYTES).catch(() => undefined);
    if (storedConfig === undefined || Buffer.compare(Buffer.from(storedConfig), Buffer.from(config.raw)) !== 0) {
      throw outputError(`${this.description}: ${savedConfigPath(config.digest)} is missing from the store or changed; run again`);
    }
    // Read the catalog before touching any metadata, so a bad catalog changes nothing.
    const catalog = await this.readCatalog(root);
    const previousManifest = await this.readMetadata(root, manifestName);
    if (previousManifest === undefined) run.added.push(manifestPath);
    else run.restoreManifest = () => writeFileAtomically(effects, owner, manifestPath, previousManifest, 'manifest');
    await writeFileAtomically(effects, owner, manifestPath, manifest, 'manifest');
    await writeFileAtomically(effects, owner, path.join(root, CATALOG), catalogBytes(mergeCatalog(catalog, config.image, manifestName)), 'catalog');
    if (rootfs) await rootfs.publish();
    // Committed: from here on nothing is rolled back.
    run.added.length = 0;
    run.restoreManifest = undefined;
    run.createdRoot = undefined;
    await run.lock.release();
    run.untrack();
    this.run = undefined;
    return { destination: root };
  }

  /**
   * The merged rootfs, built from the store's layer files in manifest order into a fresh
   * private directory in the store (each file hashed again as it is read, against its
   * diff_id: the store is not trusted between the check and the read). `publish` swaps it
   * in as `<manifest name without .json>/`; until then a failure or a forced exit removes it.
   */
  private async expand(root: string, config: ConfigElement, manifestName: string, signal: AbortSignal): Promise<{ publish(): Promise<void> }> {
    const finalName = manifestName.replace(/\.json$/, '');
    const work = await fs.mkdtemp(path.join(root, `.${finalName}.occystrap-`));
    const untrack = trackPartialOutput(() => fs.rm(work, { recursive: true, force: true }));
    const cleanUp = async () => {
      await fs.rm(work, { recursive: true, force: true }).catch(() => undefined);
      untrack();
    };
    try {
      const builder = new RootfsBuilder({ root: work, mode: 'merged', privileged: process.getuid?.() === 0, label: this.description });
      for (const layer of config.layers) {
        const opened = await openRegular(path.join(root, savedLayerPath(layer.diffId)));
        if (!opened) throw outputError(`${this.description}: layer ${layer.index} (diff_id ${layer.diffId}) disappeared from the store; run again`);
        const hash = createHash('sha256');
        try {
          const stream = opened.handle.createReadStream({ highWaterMark: 1 << 20, autoClose: false });
          const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
          await builder.applyLayer(hashing(chunks, hash), layer.index, signal);
          // The reader stops at the end marker; the digest covers the file to its end.
          for (let r = await chunks.next(); !r.done; r = await chunks.next()) hash.update(r.value);
        } finally {
          await opened.handle.close();
        }
        if (`sha256:${hash.digest('hex')}` !== layer.diffId) throw outputError(`${this.description}: layer ${layer.index} changed in the store while it was expanded (it no longer hashes to ${layer.diffId}); run again`);
      }
      builder.finish();
    } catch (e) {
      await cleanUp();
      throw e;
    }
    return {
      publish: async () => {
        const target = path.join(root, finalName);
        let old: string | undefined;
        try {
          // Whatever holds the name (an earlier rootfs, or anything else) is moved aside whole, never entered.
          if ((await lstatEntry(target)).kind !== 'missing') {
            old = `${work}.old`;
            await fs.rename(target, old);
          }
          await fs.rename(work, target);
        } catch (e) {
          if (old) await fs.rename(old, target).catch(() => undefined);
          await cleanUp();
          throw e;
        }
        untrack();
        if (old) await fs.rm(old, { recursive: true, force: true });
      },
    };
  }

  async abort(): Promise<void> {
    const run = this.run;
    if (!run) return;
    try {
      await run.inFlight.settled();
      await this.undo(run, false);
    } finally {
      run.untrack();
      this.run = undefined;
    }
  }

  /** Remove what the run added (once); `forced` on a forced exit, when store operations may still be running. */
  private undo(run: DirRun, forced: boolean): Promise<void> {
    run.undoing ??= (async () => {
      if (forced) await run.inFlight.settledWithin();
      // Under the lock, so a concurrent run's manifest is either written before we look
      // (and its layers are spared) or checks its layers after we removed ours.
      if (!run.lock && run.added.length > 0) run.lock = await acquireStoreLock(run.root, { timeoutMs: forced ? 1_000 : 10_000 }).catch(() => undefined);
      try {
        await run.restoreManifest?.();
        await rollback(run.root, run.added);
      } finally {
        await run.lock?.release();
      }
      // Only empty directories: another run may be writing into a store this run created.
      if (run.createdRoot) await this.store.removeCreated(run.createdRoot);
    })();
    return run.undoing;
  }

  /**
   * Store the config unless an identical one is there. A stored file with other bytes,
   * a link or a special file at that name is replaced (the rename replaces the entry,
   * never a link's target); a directory there is refused.
   */
  private async storeConfig(root: string, config: ConfigElement, ctx: StageContext): Promise<'added' | 'kept' | 'replaced'> {
    const name = savedConfigPath(config.digest);
    const configPath = path.join(root, name);
    const entry = await lstatEntry(configPath);
    if (entry.kind === 'directory') throw this.refuse(name, 'is a directory', 'remove it and run again');
    if (entry.kind === 'file') {
      const stored = await readRegularFile(configPath, MAX_JSON_BYTES).catch((e: unknown) => {
        if (e instanceof StoreEntryError) return undefined;
        throw e;
      });
      if (stored !== undefined && Buffer.compare(Buffer.from(stored), Buffer.from(config.raw)) === 0) return 'kept';
    }
    await writeFileAtomically(ctx.effects, ctx.owner, configPath, config.raw, 'config');
    return entry.kind === 'missing' ? 'added' : 'replaced';
  }

  private async lock(root: string, signal: AbortSignal): Promise<StoreLock> {
    try {
      return await acquireStoreLock(root, { signal, ...(this.options.lockTimeoutMs !== undefined ? { timeoutMs: this.options.lockTimeoutMs } : {}) });
    } catch (e) {
      if (e instanceof StoreLockError) throw outputError(`${this.description}: ${e.message}`);
      throw e;
    }
  }

  /** A metadata file of the store (regular, at most 4 MiB), or undefined when absent. */
  private async readMetadata(root: string, name: string): Promise<Uint8Array | undefined> {
    try {
      return await readRegularFile(path.join(root, name), MAX_JSON_BYTES);
    } catch (e) {
      if (!(e instanceof StoreEntryError)) throw e;
      if (e.kind === 'too big') throw this.refuse(name, `is over ${MAX_JSON_BYTES} bytes`, `fix or remove ${name}`);
      if (e.kind === 'changed' || e.kind === 'missing') throw this.refuse(name, 'changed while it was read', 'run again');
      throw this.badEntry(name, e.kind);
    }
  }

  private async readCatalog(root: string): Promise<Catalog> {
    const existing = await this.readMetadata(root, CATALOG);
    // Nesting is bounded by parseJsonBytes, so decoding cannot overflow the stack.
    const catalog = decodeCatalog(existing);
    if (E.isLeft(catalog)) {
      throw outputError(`${this.description}: ${describeDecodeError(catalog.left)}; fix or remove ${CATALOG}`);
    }
    return catalog.right;
  }
}



/**
 * Remove what a failed run added, newest first; its manifest goes first, and a layer or
 * config that a manifest in the store names (another run's, written meanwhile) stays.
 */
async function rollback(root: string, added: string[]): Promise<void> {
  const order = [...added].reverse();
  const manifests = order.filter((p) => isManifestName(path.basename(p)) && path.dirname(p) === root);
  for (const p of manifests) await fs.rm(p, { force: true }).catch(() => undefined);
  const inUse = await referencedByManifests(root);
  for (const p of order) {
    if (manifests.includes(p) || inUse.has(path.relative(root, p))) continue;
    await fs.rm(p, { recursive: false, force: true }).catch(() => fs.rmdir(p).catch(() => undefined));
  }
}

const isManifestName = (name: string) => /^manifest(-[A-Za-z0-9._-]+)?\.json$/.test(name);

/** Store-relative paths (`<hex>.json`, `<hex>/layer.tar`) named by the store's manifests. */
async function referencedByManifests(root: string): Promise<Set<string>> {
  const refs = new Set<string>();
  const names = await fs.readdir(root).catch(() => [] as string[]);
  for (const name of names.filter(isManifestName)) {
    try {
      const bytes = await readRegularFile(path.join(root, name), MAX_JSON_BYTES);
      const doc: unknown = bytes === undefined ? [] : JSON.parse(Buffer.from(bytes).toString('utf8'));
      for (const entry of Array.isArray(doc) ? (doc as unknown[]) : []) {
        const { Config, Layers } = (entry ?? {}) as { Config?: unknown; Layers?: unknown };
        if (typeof Config === 'string') refs.add(path.normalize(Config));
        if (Array.isArray(Layers)) for (const l of Layers) if (typeof l === 'string') refs.add(path.normalize(l));
      }
    } catch {
      // Not a manifest we can read: it names nothing.
    }
  }
  return refs;
}


/** `dir://` as an output: the copy loop into a {@link DirDestination}. */
export class DirOutput extends CopyOutput<string> {
  constructor(options: DirOutputOptions) {
    super(new DirDestination(options));
  }
}

/** The chunks of `source`, each also given to `hash`; stopping early leaves `source` open (the caller reads the rest). */
function hashing(source: AsyncIterator<Uint8Array>, hash: Hash): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        const r = await source.next();
        if (!r.done) hash.update(r.value);
        return r;
      },
      return: async () => ({ done: true, value: undefined }),
    }),
  };
}
