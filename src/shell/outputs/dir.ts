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
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { describeDecodeError, MAX_JSON_BYTES } from '../../core/codecs/common.js';
import { type Digest, digestHex } from '../../core/digest.js';
import { type ConfigElement, type ImageElement, type LayerDescriptor, repoTag } from '../../core/element.js';
import { OccystrapError, outputError } from '../../core/errors.js';
import type { ImageOutput, OutputSummary, StageContext } from '../../core/pipeline/types.js';
import { savedConfigPath, savedLayerPath } from '../../core/plans/docker-save.js';
import { type Catalog, catalogBytes, decodeCatalog, dirManifestBytes, manifestFileName, mergeCatalog } from '../../core/plans/dir-store.js';
import { publishMode, writeFileAtomically } from '../fs/atomic.js';
import {
  describeKind,
  type EntryKind,
  type FileIdentity,
  hashRegularFile,
  identityOf,
  lstatEntry,
  readRegularFile,
  sameIdentity,
  StoreEntryError,
} from '../fs/store-fs.js';
import { acquireStoreLock, type StoreLock, StoreLockError } from '../fs/store-lock.js';
import { trackPartialOutput } from '../partial-outputs.js';

export interface DirOutputOptions {
  readonly path: string;
  readonly uniqueNames: boolean;
  /** Layers stored at once (default 4; the CLI passes -j). */
  readonly concurrency?: number;
  readonly label?: string;
  /** How long to wait for another run's store lock (default 60 s). */
  readonly lockTimeoutMs?: number;
}

const CATALOG = 'catalog.json';

export class DirOutput implements ImageOutput {
  readonly description: string;
  readonly order = 'completion' as const;
  /** The store as given (absolute); its real path is resolved once it exists. */
  private readonly requested: string;
  private realRoot: string | undefined;
  private readonly concurrency: number;
  /** Layers (by diff_id hex) whose stored file hashed to the diff_id, with that file's identity. */
  private readonly verified = new Map<string, FileIdentity>();
  private readonly verifying = new Map<string, Promise<boolean>>();

  constructor(private readonly options: DirOutputOptions) {
    this.description = options.label ?? `dir://${options.path}`;
    this.requested = path.resolve(options.path);
    this.concurrency = Math.max(1, options.concurrency ?? 4);
  }

  /** A layer is present only if its file is a regular file whose sha256 is the diff_id. */
  readonly wants = async (layer: LayerDescriptor): Promise<boolean> => {
    const root = await this.resolveRoot();
    try {
      return root === undefined || !(await this.layerVerified(root, layer.diffId));
    } catch (e) {
      // A bad entry (e.g. a linked layer directory) is refused when the layer arrives,
      // where the error is the output's own.
      if (OccystrapError.is(e) && e.code === 'EOUTPUT') return true;
      throw e;
    }
  };

  /** The store's real path (the user may give a symlink); undefined while it does not exist. */
  private async resolveRoot(): Promise<string | undefined> {
    if (this.realRoot !== undefined) return this.realRoot;
    try {
      this.realRoot = await fs.realpath(this.requested);
      return this.realRoot;
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
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
    const running = this.verifying.get(hex);
    if (running) return running;
    const check = (async () => {
      if ((await this.layerDirState(root, hex)) === 'missing') return false;
      const file = path.join(root, savedLayerPath(diffId));
      const entry = await lstatEntry(file);
      if (entry.kind === 'directory') throw this.refuse(savedLayerPath(diffId), 'is a directory', 'remove it and run again');
      if (entry.kind !== 'file' || !entry.stats) return false;
      const known = this.verified.get(hex);
      if (known && sameIdentity(known, identityOf(entry.stats))) return true;
      this.verified.delete(hex);
      let hashed: Awaited<ReturnType<typeof hashRegularFile>>;
      try {
        hashed = await hashRegularFile(file);
      } catch (e) {
        if (e instanceof StoreEntryError) return false;
        throw e;
      }
      if (hashed?.digest !== diffId) return false;
      this.verified.set(hex, hashed.identity);
      return true;
    })();
    this.verifying.set(hex, check);
    const forget = () => this.verifying.delete(hex);
    check.then(forget, forget);
    return check;
  }

  async consume(elements: AsyncIterable<ImageElement>, ctx: StageContext): Promise<OutputSummary> {
    const { effects, owner } = ctx;
    const added: string[] = []; // files and directories this run created, in creation order
    let createdRoot: string | undefined;
    try {
      const st = await fs.stat(this.requested);
      if (!st.isDirectory()) throw outputError(`${this.description}: ${this.requested} exists and is not a directory`);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw e;
      try {
        createdRoot = await fs.mkdir(this.requested, { recursive: true });
      } catch (err) {
        throw outputError(`${this.description}: cannot create ${this.requested} (${(err as Error).message}); check that its parent exists and is writable`);
      }
    }
    const root = (await this.resolveRoot()) as string;

    // Until the run has finished, a forced exit removes what it added (see partial-outputs.ts).
    let lock: StoreLock | undefined;
    let restoreManifest: (() => Promise<void>) | undefined;
    let undoing: Promise<void> | undefined;
    // Store operations under way (config writes, layer moves). A forced rollback waits a
    // moment for them, so a file renamed in just after it started is not left behind.
    const inFlight = new Set<Promise<void>>();
    const undo = (forced: boolean) => (undoing ??= (async () => {
      if (forced) await settledWithin([...inFlight], FORCED_UNDO_WAIT_MS);
      // Under the lock, so a concurrent run's manifest is either written before we look
      // (and its layers are spared) or checks its layers after we removed ours.
      if (!lock && added.length > 0) lock = await acquireStoreLock(root, { timeoutMs: forced ? 1_000 : 10_000 }).catch(() => undefined);
      try {
        await restoreManifest?.();
        await rollback(root, added);
      } finally {
        await lock?.release();
      }
      // Only empty directories: another run may be writing into a store this run created.
      if (createdRoot) await removeEmptyDirs(this.requested, createdRoot);
    })());
    const untrack = trackPartialOutput(() => undo(true));
    let config: ConfigElement | undefined;
    const layerPaths = new Map<number, string>();
    let bytes = 0;
    let skipped = 0;
    let copied = 0;
    const storing = new Map<string, Promise<void>>();
    let storeFailure: { error: unknown } | undefined;
    try {
      // Fail before any layer is fetched if the catalog cannot be merged.
      await this.readCatalog(root);
      for await (const element of elements) {
        if (element._tag === 'Config') {
          if (config) throw outputError(`${this.description}: a second config arrived in one run`);
          config = element;
          const manifestName = manifestFileName(element.image, this.options.uniqueNames);
          const manifestEntry = await lstatEntry(path.join(root, manifestName));
          if (manifestEntry.kind !== 'missing' && manifestEntry.kind !== 'file') throw this.badEntry(manifestName, manifestEntry.kind);
          const configStored = this.storeConfig(root, element, ctx).then((outcome) => {
            if (outcome === 'added') added.push(path.join(root, savedConfigPath(element.digest)));
          });
          const tracked = configStored.catch(() => undefined).then(() => {
            inFlight.delete(tracked);
          });
          inFlight.add(tracked);
          await configStored;
          continue;
        }
        const relative = savedLayerPath(element.layer.diffId);
        layerPaths.set(element.layer.index, relative);
        const payload = element.payload;
        if (payload._tag === 'Skipped') {
          skipped++;
          continue;
        }
        const diffId = element.layer.diffId;
        const hex = digestHex(diffId);
        const dir = path.join(root, hex);
        const destination = path.join(root, relative);
        const store = async () => {
          try {
            if ((await this.layerDirState(root, hex)) === 'missing') {
              try {
                await fs.mkdir(dir);
                added.push(dir);
              } catch (e) {
                if ((e as { code?: string }).code !== 'EEXIST') throw e;
                await this.layerDirState(root, hex);
              }
            }
            if (await this.layerVerified(root, diffId)) {
              // Same diff_id already stored and verified: keep the stored file.
              await effects.perform({ _tag: 'Release', file: payload.file, owner });
              skipped++;
              return;
            }
            // Missing, or not this layer (garbage, a link, a FIFO): the rename replaces the
            // entry itself, never a link's target.
            const before = await lstatEntry(destination);
            await publishMode(payload.file.path);
            const reply = await effects.perform({ _tag: 'MoveIntoPlace', file: payload.file, owner, destination });
            if (before.kind === 'missing') added.push(destination);
            const now = await lstatEntry(destination);
            if (now.stats && now.kind === 'file') this.verified.set(hex, identityOf(now.stats));
            if (reply.copied) copied++;
            bytes += payload.size;
          } catch (e) {
            // Still ours if the move did not happen.
            await effects.perform({ _tag: 'Release', file: payload.file, owner }).catch(() => undefined);
            throw e;
          }
        };
        // Layers are stored concurrently (a cross-filesystem copy must not stall the
        // next one); two layers with one diff_id are stored one after the other.
        const previous = storing.get(relative) ?? Promise.resolve();
        const task = previous.then(store, store);
        storing.set(relative, task);
        const tracked: Promise<void> = task.then(
          () => {
            inFlight.delete(tracked);
          },
          (e: unknown) => {
            inFlight.delete(tracked);
            storeFailure ??= { error: e };
          },
        );
        inFlight.add(tracked);
        if (inFlight.size >= this.concurrency) await Promise.race(inFlight);
        if (storeFailure) throw storeFailure.error;
      }
      await Promise.all(inFlight);
      if (storeFailure) throw (storeFailure as { error: unknown }).error;
      if (!config) throw outputError(`${this.description}: the input produced no image`);
      if (layerPaths.size !== config.layers.length) {
        throw outputError(`${this.description}: got ${layerPaths.size} of ${config.layers.length} layers`);
      }
      const image = config.image;
      const manifestName = manifestFileName(image, this.options.uniqueNames);
      const tag = repoTag(image);
      const manifest = dirManifestBytes({
        configPath: savedConfigPath(config.digest),
        layerPaths: config.layers.map((l) => layerPaths.get(l.index) as string),
        repoTags: tag ? [tag] : [],
        ...(this.options.uniqueNames ? { imageName: image.name } : {}),
      });
      const manifestPath = path.join(root, manifestName);

      // The read-merge-write of the metadata is one critical section per store.
      lock = await this.lock(root, ctx.signal);
      for (const layer of config.layers) {
        if (!(await this.layerVerified(root, layer.diffId))) {
          throw outputError(`${this.description}: layer ${layer.index} (${layer.diffId}) was skipped as present but is missing from the store or changed; run again`);
        }
      }
      const storedConfig = await readRegularFile(path.join(root, savedConfigPath(config.digest)), MAX_JSON_BYTES).catch(() => undefined);
      if (storedConfig === undefined || Buffer.compare(Buffer.from(storedConfig), Buffer.from(config.raw)) !== 0) {
        throw outputError(`${this.description}: ${savedConfigPath(config.digest)} is missing from the store or changed; run again`);
      }
      // Read the catalog before touching any metadata, so a bad catalog changes nothing.
      const catalog = await this.readCatalog(root);
      const previousManifest = await this.readMetadata(root, manifestName);
      if (previousManifest === undefined) added.push(manifestPath);
      else restoreManifest = () => writeFileAtomically(effects, owner, manifestPath, previousManifest, 'manifest');
      await writeFileAtomically(effects, owner, manifestPath, manifest, 'manifest');
      await writeFileAtomically(effects, owner, path.join(root, CATALOG), catalogBytes(mergeCatalog(catalog, image, manifestName)), 'catalog');
      // Committed: from here on nothing is rolled back.
      added.length = 0;
      restoreManifest = undefined;
      createdRoot = undefined;
      await lock.release();
      return { destination: root, layers: config.layers.length, layersSkipped: skipped, bytes, copiedAcrossDevices: copied };
    } catch (e) {
      await Promise.allSettled([...inFlight]);
      await undo(false);
      throw e;
    } finally {
      untrack();
    }
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

/** How long a forced rollback waits for store operations already under way. */
const FORCED_UNDO_WAIT_MS = 2_000;

/** Wait until every promise has settled, or `ms` has passed. */
async function settledWithin(pending: readonly Promise<unknown>[], ms: number): Promise<void> {
  if (pending.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([Promise.allSettled(pending), timeout]);
  clearTimeout(timer);
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

/** rmdir `dir` and its parents up to `top`, stopping at the first that is not empty. */
async function removeEmptyDirs(dir: string, top: string): Promise<void> {
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      await fs.rmdir(d);
    } catch {
      return;
    }
    if (d === top || path.dirname(d) === d) return;
  }
}
