/**
 * Reading a `dir://` store as a source, decided from data alone: which image of the
 * catalog to read, whether a name the store gives may be used as a path, and which entry
 * of a manifest file is that image's.
 *
 * A store is written by this tool's `dir://` output or by Python occystrap (its
 * `recreate-image` reads it back). Both write `catalog.json` mapping image → tag →
 * manifest file, a docker-save style manifest per file, the config, and each layer as
 * `<id>/layer.tar`. They differ in three facts a reader must not rely on:
 *
 * - the config's name: ours is `<sha256 of its bytes>.json`; occystrap re-serialises the
 *   config (indent 4, sorted keys), so its name (the source's digest, or
 *   `blobs/sha256/<hex>` for a Docker 25+ input) is not the digest of the bytes stored;
 * - the layer directory: ours is the diff_id hex; occystrap's is the compressed blob
 *   digest (registry inputs) or the docker-save v1 id;
 * - RepoTags: ours `name:tag`, occystrap's `<last path part of name>:tag`.
 *
 * So identity is by diff_id (each `layer.tar` is hashed to EOF against the config's
 * `rootfs.diff_ids`), and the image id is the sha256 of the config bytes read.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { normalizeArchivePath } from '../archive-path.js';
import type { DockerSaveEntry } from '../codecs/docker-save.js';
import type { ImageName } from '../element.js';
import { printable } from '../printable.js';
import { checkImageReference } from '../reference.js';
import type { Catalog } from './dir-store.js';

/** The image asked for in the URI (`?image=NAME&tag=TAG`); either may be absent. */
export interface StoreImageWanted {
  readonly image?: string;
  readonly tag?: string;
}

/** One image of a catalog: its name and the manifest file the catalog names for it. */
export interface StoreImage {
  readonly image: ImageName;
  readonly manifestFile: string;
}

/** Every image of the catalog, in the catalog's order. */
export function catalogImages(catalog: Catalog): StoreImage[] {
  return Object.entries(catalog).flatMap(([name, tags]) => Object.entries(tags).map(([tag, manifestFile]) => ({ image: { name, tag }, manifestFile })));
}

const shown = (images: readonly StoreImage[]) => printable(images.map((i) => `${i.image.name}:${i.image.tag}`).join(', '));

/**
 * The image to read: the one matching `wanted` (an absent part matches anything). None,
 * or several, is an error that lists what the store holds and how to choose. The chosen
 * name must be a valid image reference and its manifest file a plain file name.
 */
export function selectStoreImage(catalog: Catalog, wanted: StoreImageWanted): E.Either<string, StoreImage> {
  const all = catalogImages(catalog);
  if (all.length === 0) return E.left('catalog.json lists no images; the store is empty');
  const matching = all.filter((i) => (wanted.image === undefined || i.image.name === wanted.image) && (wanted.tag === undefined || i.image.tag === wanted.tag));
  const asked = [wanted.image !== undefined ? `?image=${wanted.image}` : '', wanted.tag !== undefined ? `?tag=${wanted.tag}` : ''].filter((s) => s !== '').join(' and ');
  if (matching.length === 0) return E.left(`no image in the store matches ${printable(asked)}; it holds ${shown(all)}`);
  if (matching.length > 1) {
    const what = asked === '' ? `the store holds ${matching.length} images` : `${matching.length} images match ${printable(asked)}`;
    return E.left(`${what} (${shown(matching)}); choose one with ?image=NAME&tag=TAG`);
  }
  const chosen = matching[0] as StoreImage;
  const reference = checkImageReference(`${chosen.image.name}:${chosen.image.tag}`);
  if (E.isLeft(reference)) return E.left(`catalog.json: ${reference.left}; refusing the image name`);
  const file = checkManifestFileName(chosen.manifestFile);
  if (E.isLeft(file)) return E.left(`catalog.json names ${JSON.stringify(printable(chosen.manifestFile))} as the manifest of ${printable(`${chosen.image.name}:${chosen.image.tag}`)}, which ${file.left}; refusing a path outside the store's top directory`);
  return E.right(chosen);
}

/** A manifest file must be a plain name at the store's top (no directory part, not `.` or `..`). */
export function checkManifestFileName(name: string): E.Either<string, string> {
  if (name === '') return E.left('is empty');
  if (name.includes('\0')) return E.left('contains a NUL byte');
  if (name.includes('/') || name.includes('\\')) return E.left('is not a plain file name');
  if (name === '.' || name === '..') return E.left('is not a file name');
  return E.right(name);
}

/**
 * A path a manifest names (`Config`, `Layers[i]`), normalised; absolute paths, `..`
 * components, backslashes and NUL are refused (the shell then checks each directory on
 * the way is a real directory, not a link).
 */
export function storeEntryPath(raw: string, what: string): E.Either<string, string> {
  const normalized = normalizeArchivePath(raw);
  if (E.isLeft(normalized)) return E.left(`${what} ${JSON.stringify(printable(raw))} ${normalized.left}; refusing a path outside the store`);
  return normalized;
}

/** Whether a manifest entry says it is `image`: its ImageName, else a RepoTag of `name:tag` or `<last part of name>:tag`. */
function entryIs(entry: DockerSaveEntry & { readonly ImageName?: unknown }, image: ImageName): boolean | undefined {
  if (typeof entry.ImageName === 'string') return entry.ImageName === image.name && (entry.RepoTags ?? []).every((t) => t.endsWith(`:${image.tag}`));
  const tags = entry.RepoTags ?? [];
  if (tags.length === 0) return undefined;
  const short = image.name.slice(image.name.lastIndexOf('/') + 1);
  return tags.some((t) => t === `${image.name}:${image.tag}` || t === `${short}:${image.tag}`);
}

/**
 * The entry of a manifest file that is `image`. A manifest file with one entry is that
 * image unless the entry names another one (a store written without unique names keeps
 * one `manifest.json`, which the last image written replaced).
 */
export function selectManifestEntry(manifest: readonly (DockerSaveEntry & { readonly ImageName?: unknown })[], image: ImageName, manifestFile: string): E.Either<string, DockerSaveEntry> {
  const named = `${image.name}:${image.tag}`;
  const matching = manifest.filter((e) => entryIs(e, image) === true);
  if (matching.length >= 1) return E.right(matching[0] as DockerSaveEntry);
  if (manifest.length === 1 && entryIs(manifest[0] as DockerSaveEntry, image) === undefined) return E.right(manifest[0] as DockerSaveEntry);
  const holds = printable(manifest.map((e) => (typeof e.ImageName === 'string' ? e.ImageName : (e.RepoTags ?? []).join(', '))).join('; '));
  return E.left(
    `catalog.json names ${manifestFile} for ${printable(named)}, but ${manifestFile} holds ${holds || 'untagged images'} (a later image written without ?unique_names=true replaced it); write ${printable(named)} into the store again, with ?unique_names=true`,
  );
}

/** The source id of a layer path: the directory of `<id>/layer.tar`, else the file name. */
export function storeLayerSourceId(layerPath: string): string {
  const dir = /^(?:.*\/)?([^/]+)\/layer\.tar$/.exec(layerPath);
  if (dir) return dir[1] as string;
  return layerPath.slice(layerPath.lastIndexOf('/') + 1);
}
