/**
 * `dir://` output: the directory store shared by many images (see
 * core/plans/dir-store.ts for the layout).
 *
 * Layers are moved in by rename — the input's temp file becomes `<diff_id>/layer.tar`
 * with no copy when both are on one filesystem. A layer already in the store is not
 * fetched again (`wants` answers false). Metadata is written atomically, manifest and
 * catalog last, so a reader never sees an image whose files are incomplete. A failed run
 * removes every file and directory it added.
 *
 * @module
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { describeDecodeError, MAX_JSON_BYTES } from '../../core/codecs/common.js';
import { digestHex } from '../../core/digest.js';
import { type ConfigElement, type ImageElement, type LayerDescriptor, repoTag } from '../../core/element.js';
import { outputError } from '../../core/errors.js';
import type { ImageOutput, OutputSummary, StageContext } from '../../core/pipeline/types.js';
import { savedConfigPath, savedLayerPath } from '../../core/plans/docker-save.js';
import { type Catalog, catalogBytes, decodeCatalog, dirManifestBytes, manifestFileName, mergeCatalog } from '../../core/plans/dir-store.js';
import { pathExists, publishMode, writeFileAtomically } from '../fs/atomic.js';
import { trackPartialOutput } from '../partial-outputs.js';

export interface DirOutputOptions {
  readonly path: string;
  readonly uniqueNames: boolean;
  /** Layers stored at once (default 4; the CLI passes -j). */
  readonly concurrency?: number;
  readonly label?: string;
}

export class DirOutput implements ImageOutput {
  readonly description: string;
  readonly order = 'completion' as const;
  private readonly root: string;
  private readonly concurrency: number;

  constructor(private readonly options: DirOutputOptions) {
    this.description = options.label ?? `dir://${options.path}`;
    this.root = path.resolve(options.path);
    this.concurrency = Math.max(1, options.concurrency ?? 4);
  }

  readonly wants = async (layer: LayerDescriptor): Promise<boolean> => !(await pathExists(path.join(this.root, savedLayerPath(layer.diffId))));

  async consume(elements: AsyncIterable<ImageElement>, ctx: StageContext): Promise<OutputSummary> {
    const { effects, owner } = ctx;
    const root = this.root;
    const added: string[] = []; // files and directories this run created, in creation order
    let createdRoot: string | undefined;
    try {
      const st = await fs.stat(root);
      if (!st.isDirectory()) throw outputError(`${this.description}: ${root} exists and is not a directory`);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw e;
      try {
        createdRoot = await fs.mkdir(root, { recursive: true });
      } catch (err) {
        throw outputError(`${this.description}: cannot create ${root} (${(err as Error).message}); check that its parent exists and is writable`);
      }
    }

    // Until the run has finished, a forced exit removes what it added (see partial-outputs.ts).
    let restoreManifest: (() => Promise<void>) | undefined;
    const undo = async () => {
      await restoreManifest?.();
      await rollback(added, createdRoot);
    };
    const untrack = trackPartialOutput(undo);
    let config: ConfigElement | undefined;
    const layerPaths = new Map<number, string>();
    let bytes = 0;
    let skipped = 0;
    let copied = 0;
    const inFlight = new Set<Promise<void>>();
    const storing = new Map<string, Promise<void>>();
    let storeFailure: { error: unknown } | undefined;
    try {
      for await (const element of elements) {
        if (element._tag === 'Config') {
          if (config) throw outputError(`${this.description}: a second config arrived in one run`);
          config = element;
          const configPath = path.join(root, savedConfigPath(element.digest));
          if (!(await pathExists(configPath))) {
            await writeFileAtomically(effects, owner, configPath, element.raw, 'config');
            added.push(configPath);
          }
          continue;
        }
        const relative = savedLayerPath(element.layer.diffId);
        layerPaths.set(element.layer.index, relative);
        const payload = element.payload;
        if (payload._tag === 'Skipped') {
          skipped++;
          continue;
        }
        const dir = path.join(root, digestHex(element.layer.diffId));
        const destination = path.join(root, relative);
        const store = async () => {
          try {
            try {
              await fs.mkdir(dir);
              added.push(dir);
            } catch (e) {
              if ((e as { code?: string }).code !== 'EEXIST') throw e;
            }
            if (await pathExists(destination)) {
              // Same diff_id already stored (verified by the input): keep the stored file.
              await effects.perform({ _tag: 'Release', file: payload.file, owner });
              skipped++;
              return;
            }
            await publishMode(payload.file.path);
            const reply = await effects.perform({ _tag: 'MoveIntoPlace', file: payload.file, owner, destination });
            added.push(destination);
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
      for (const layer of config.layers) {
        if (!(await pathExists(path.join(root, savedLayerPath(layer.diffId))))) {
          throw outputError(`${this.description}: layer ${layer.index} (${layer.diffId}) was skipped as present but is missing from the store`);
        }
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
      // Read the catalog before touching any metadata, so a bad catalog changes nothing.
      const catalog = await this.readCatalog();
      const previousManifest = await readIfPresent(manifestPath);
      if (previousManifest === undefined) added.push(manifestPath);
      else restoreManifest = () => writeFileAtomically(effects, owner, manifestPath, previousManifest, 'manifest');
      await writeFileAtomically(effects, owner, manifestPath, manifest, 'manifest');
      const catalogPath = path.join(root, 'catalog.json');
      await writeFileAtomically(effects, owner, catalogPath, catalogBytes(mergeCatalog(catalog, image, manifestName)), 'catalog');
      return { destination: root, layers: config.layers.length, layersSkipped: skipped, bytes, copiedAcrossDevices: copied };
    } catch (e) {
      await Promise.allSettled([...inFlight]);
      await undo();
      throw e;
    } finally {
      untrack();
    }
  }

  private async readCatalog(): Promise<Catalog> {
    const catalogPath = path.join(this.root, 'catalog.json');
    let existing: Uint8Array | undefined;
    try {
      const st = await fs.stat(catalogPath);
      if (st.size > MAX_JSON_BYTES) throw outputError(`${this.description}: catalog.json is over ${MAX_JSON_BYTES} bytes`);
      existing = await fs.readFile(catalogPath);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw e;
    }
    const catalog = decodeCatalog(existing);
    if (E.isLeft(catalog)) {
      throw outputError(`${this.description}: ${describeDecodeError(catalog.left)}; fix or remove catalog.json`);
    }
    return catalog.right;
  }
}

async function readIfPresent(p: string): Promise<Uint8Array | undefined> {
  try {
    const st = await fs.stat(p);
    if (st.size > MAX_JSON_BYTES) throw outputError(`${p} is over ${MAX_JSON_BYTES} bytes`);
    return await fs.readFile(p);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function rollback(added: string[], createdRoot: string | undefined): Promise<void> {
  for (const p of [...added].reverse()) {
    await fs.rm(p, { recursive: false, force: true }).catch(() => fs.rmdir(p).catch(() => undefined));
  }
  if (createdRoot) await fs.rm(createdRoot, { recursive: true, force: true }).catch(() => undefined);
}
