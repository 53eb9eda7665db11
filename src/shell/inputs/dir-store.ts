/**
 * `dir://STORE` input: one image of a directory store, written by this tool's `dir://`
 * output or by Python occystrap (what its `recreate-image` reads; see
 * core/plans/dir-store-read.ts for what the two differ in).
 *
 * `catalog.json` chooses the image (`?image=`, `?tag=`; none needed when it holds one),
 * its manifest file gives the config and the layer files, the config gives the diff_ids.
 * The config is read capped; the image id is the sha256 of its bytes as stored. Each
 * layer file is read to EOF in one pass into an owned temp file (or the place the output
 * offers) while it is hashed, and must hash to its diff_id. The store's files are never
 * moved or changed: the run owns only its copies. A layer the output already has is not
 * read at all.
 *
 * The store is not trusted: every path is the store's real root plus a name from the
 * catalog or a manifest, normalised and refused if absolute or with `..`; every directory
 * on the way must be a real directory (not a link) and every file a regular file opened
 * without following a link or blocking (fs/store-fs.ts). Anything else in the store (an
 * expanded rootfs, other images) is never looked at.
 *
 * @module
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { decodeDockerSaveManifest } from '../../core/codecs/docker-save.js';
import { describeDecodeError, MAX_JSON_BYTES } from '../../core/codecs/common.js';
import { decodeImageConfig } from '../../core/codecs/oci.js';
import type { Digest } from '../../core/digest.js';
import { type ConfigElement, type ImageElement, type LayerDescriptor, type LayerElement, wantsAny } from '../../core/element.js';
import { digestError, inputError, isExplained, OccystrapError, usageError } from '../../core/errors.js';
import { MediaTypes } from '../../core/media-types.js';
import type { ImageInput, InputContext } from '../../core/pipeline/types.js';
import { decodeCatalog } from '../../core/plans/dir-store.js';
import { selectManifestEntry, selectStoreImage, type StoreImageWanted, storeEntryPath, storeLayerSourceId } from '../../core/plans/dir-store-read.js';
import { printable } from '../../core/printable.js';
import { sha256Bytes } from '../fs/hash.js';
import { describeKind, kindOf, lstatEntry, openRegular, readRegularFile, StoreEntryError } from '../fs/store-fs.js';
import { fetchInParallel, fetchLayerForms } from './layer-fetch.js';

const CATALOG = 'catalog.json';

export interface DirStoreInputOptions {
  /** The store directory, resolved with realpath. */
  readonly root: string;
  readonly wanted: StoreImageWanted;
  readonly label: string;
  /** Layers read at once; defaults to the pipeline's parallelism (-j). */
  readonly parallelism?: number;
}

/** The chosen image's config and where each of its layers is stored. */
export interface DirStoreImage {
  readonly config: ConfigElement;
  readonly manifestFile: string;
  readonly configPath: string;
  /** Store-relative, normalised, by manifest position. */
  readonly layerPaths: readonly string[];
}

export class DirStoreInput implements ImageInput {
  readonly description: string;

  constructor(private readonly options: DirStoreInputOptions) {
    this.description = options.label;
  }

  private fail(message: string): OccystrapError {
    return inputError(`${this.options.label}: ${message}`);
  }

  /** Every directory between the root and `relative` must be a real directory, never a link. */
  private async checkDirsOnTheWay(relative: string, what: string): Promise<void> {
    const parts = relative.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const entry = await lstatEntry(path.join(this.options.root, dir));
      if (entry.kind === 'missing') return; // the file is then missing, and said so
      if (entry.kind !== 'directory') throw this.fail(`${what} ${printable(relative)}: ${printable(dir)} is ${describeKind(entry.kind)}, not a directory; refusing to read through it`);
    }
  }

  /** A metadata file of the store, capped, not through a link; `missing` is the message when absent. */
  private async readMetadata(relative: string, what: string, missing: string): Promise<Uint8Array> {
    await this.checkDirsOnTheWay(relative, what);
    const named = `${what === '' ? '' : `${what} `}${printable(relative)}`;
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readRegularFile(path.join(this.options.root, relative), MAX_JSON_BYTES);
    } catch (e) {
      if (!(e instanceof StoreEntryError)) throw e;
      if (e.kind === 'too big') throw this.fail(`${named} is over the ${MAX_JSON_BYTES}-byte limit for JSON documents; refusing it`);
      throw this.fail(`${named} ${e.message}; refusing it`);
    }
    if (bytes === undefined) throw this.fail(missing);
    return bytes;
  }

  /** The chosen image's config (parsed; its name is not taken as its digest) and its layer paths. */
  async describe(_signal?: AbortSignal): Promise<DirStoreImage> {
    const { label } = this.options;
    const catalogBytes = await this.readMetadata(CATALOG, '', `no ${CATALOG} in the directory; it is not a dir:// store (occystrap process SOURCE dir://DIR makes one)`);
    const catalog = decodeCatalog(catalogBytes);
    if (E.isLeft(catalog)) throw this.fail(`${describeDecodeError(catalog.left)}; fix ${CATALOG}`);
    const chosen = selectStoreImage(catalog.right, this.options.wanted);
    if (E.isLeft(chosen)) throw this.fail(chosen.left);
    const { image, manifestFile } = chosen.right;
    const named = printable(`${image.name}:${image.tag}`);
    const manifestBytes = await this.readMetadata(manifestFile, 'manifest', `${CATALOG} names ${printable(manifestFile)} for ${named}, but there is no such file in the store; the store is incomplete (write the image into it again)`);
    const manifest = decodeDockerSaveManifest(manifestBytes);
    if (E.isLeft(manifest)) throw this.fail(`${describeDecodeError({ ...manifest.left, document: printable(manifestFile) })}; fix or remove it`);
    const entry = selectManifestEntry(manifest.right, image, manifestFile);
    if (E.isLeft(entry)) throw this.fail(entry.left);

    const configPath = storeEntryPath(entry.right.Config, `${manifestFile} Config`);
    if (E.isLeft(configPath)) throw this.fail(configPath.left);
    const layerPaths = entry.right.Layers.map((p, i) => {
      const normalized = storeEntryPath(p, `${manifestFile} Layers[${i}]`);
      if (E.isLeft(normalized)) throw this.fail(normalized.left);
      return normalized.right;
    });
    const raw = await this.readMetadata(configPath.right, 'config', `the config ${printable(configPath.right)} named by ${printable(manifestFile)} is not in the store; the store is incomplete`);
    const config = decodeImageConfig(`${label}: config ${printable(configPath.right)}`, raw);
    if (E.isLeft(config)) throw inputError(describeDecodeError(config.left));
    const diffIds = config.right.rootfs.diff_ids;
    if (diffIds.length !== layerPaths.length) {
      throw this.fail(`${printable(manifestFile)} lists ${layerPaths.length} layers but the config's rootfs.diff_ids has ${diffIds.length}`);
    }
    const layers: LayerDescriptor[] = layerPaths.map((p, index) => {
      const diffId = diffIds[index] as Digest;
      if (!diffId.startsWith('sha256:')) throw this.fail(`config rootfs.diff_ids[${index}] is ${printable(diffId)}; only sha256 diff_ids are supported`);
      return { index, sourceId: storeLayerSourceId(p), diffId, mediaType: MediaTypes.dockerLayerTar };
    });
    return {
      config: { _tag: 'Config', image, digest: sha256Bytes(raw), raw, config: config.right, layers },
      manifestFile,
      configPath: configPath.right,
      layerPaths,
    };
  }

  elements(ctx: InputContext): AsyncIterable<ImageElement> {
    return this.read(ctx);
  }

  /** Open a layer file without following a link or blocking; it must be a regular file. */
  private async openLayer(relative: string, what: string): Promise<{ handle: fs.FileHandle; size: number }> {
    await this.checkDirsOnTheWay(relative, what);
    const file = path.join(this.options.root, relative);
    let opened: Awaited<ReturnType<typeof openRegular>>;
    try {
      opened = await openRegular(file);
    } catch (e) {
      if (e instanceof StoreEntryError) throw this.fail(`${what} ${printable(relative)} ${e.message}; refusing it`);
      throw e;
    }
    if (!opened) throw this.fail(`${what} ${printable(relative)} is not in the store; the store is incomplete (write the image into it again)`);
    return { handle: opened.handle, size: opened.stats.size };
  }

  private async *read(ctx: InputContext): AsyncGenerator<ImageElement, void, undefined> {
    const { effects, owner, signal } = ctx;
    const label = this.options.label;
    const { config, layerPaths } = await this.describe(signal);
    yield config;
    const first = new Map<Digest, number>();
    for (const l of config.layers) if (!first.has(l.diffId)) first.set(l.diffId, l.index);

    const readLayer = async (layer: LayerDescriptor, taskSignal: AbortSignal): Promise<LayerElement> => {
      // The same diff_id earlier in the image: its data goes with that position.
      if (first.get(layer.diffId) !== layer.index) return { _tag: 'Layer', layer, payload: { _tag: 'Skipped', reason: 'duplicate' } };
      const forms = await ctx.wants(layer);
      if (!wantsAny(forms)) return { _tag: 'Layer', layer, payload: { _tag: 'Skipped', reason: 'present' } };
      const relative = layerPaths[layer.index] as string;
      const what = `layer ${layer.index}`;
      const { handle, size } = await this.openLayer(relative, what);
      try {
        const { element } = await fetchLayerForms(
          {
            layer,
            // The stored file is the uncompressed tar: its digest is the diff_id.
            blob: { digest: layer.diffId, size, mediaType: MediaTypes.dockerLayerTar },
            compression: 'none',
            effects,
            owner,
            signal: taskSignal,
            progress: ctx.progress,
            fill: async (sink) => {
              // To EOF, whatever stat said (no signal: see oci-layout.ts).
              const stream = handle.createReadStream({ start: 0, highWaterMark: 1 << 20, autoClose: false });
              for await (const chunk of stream as AsyncIterable<Buffer>) {
                taskSignal.throwIfAborted();
                await sink.write(chunk);
              }
            },
            failed: (e) => (isExplained(e) || taskSignal.aborted ? e : this.fail(`cannot read ${what} ${printable(relative)}: ${(e as Error)?.message ?? String(e)}`)),
            verify: (result) => {
              const digest = result.content?.digest ?? result.rawDigest;
              if (digest !== layer.diffId) {
                throw digestError(`${label}: ${what} ${printable(relative)} has sha256 ${digest}, but the config's diff_id is ${layer.diffId}; the store is corrupt (write the image into it again)`);
              }
            },
          },
          // The tar is what the store holds: an output wanting a blob compresses it (as for tar://).
          { tar: true, blob: false, ...(forms.place ? { place: forms.place } : {}) },
        );
        return element;
      } finally {
        await handle.close();
      }
    };

    yield* fetchInParallel(config.layers, readLayer, { effects, owner, signal, concurrency: this.options.parallelism ?? ctx.parallelism, order: ctx.order });
  }
}

/** Build the input: the store must be an existing directory (exit 2 when not); its contents are read by the run. */
export async function openDirStoreInput(label: string, store: string, wanted: StoreImageWanted, parallelism: number | undefined): Promise<DirStoreInput> {
  let root: string;
  try {
    root = await fs.realpath(store);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw usageError(`${label}: ${store} does not exist; give the directory of a dir:// store`);
    throw e;
  }
  const st = await fs.stat(root);
  if (!st.isDirectory()) throw usageError(`${label}: ${store} is ${describeKind(kindOf(st))}, not a directory; give the directory of a dir:// store`);
  return new DirStoreInput({ root, wanted, label, ...(parallelism !== undefined ? { parallelism } : {}) });
}
