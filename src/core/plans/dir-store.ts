/**
 * The `dir://` store's metadata, decided from data alone: manifest file names, manifest
 * contents and the merged catalog.
 *
 * ```
 * PATH/
 *   catalog.json                  {"<image>": {"<tag>": "<manifest file>"}}
 *   manifest.json | manifest-<image>-<tag>.json
 *   <config hex>.json             the config's exact bytes
 *   <diff_id hex>/layer.tar       uncompressed layer, shared by every image in the store
 * ```
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { decodeWith, type DecodeError, parseJsonBytes } from '../codecs/common.js';
import type { ImageName } from '../element.js';

export const Catalog = t.record(t.string, t.record(t.string, t.string), 'Catalog');
export type Catalog = t.TypeOf<typeof Catalog>;

/** `manifest.json`, or with unique names `manifest-<image>-<tag>.json` (`/` and `:` become `_`). */
export function manifestFileName(image: ImageName, uniqueNames: boolean): string {
  if (!uniqueNames) return 'manifest.json';
  const clean = (s: string) => s.replace(/[/:@]/g, '_').replace(/[^A-Za-z0-9._-]/g, '_');
  return `manifest-${clean(image.name)}-${clean(image.tag)}.json`;
}

export function dirManifestBytes(entry: {
  configPath: string;
  layerPaths: readonly string[];
  repoTags: readonly string[];
  imageName?: string;
}): Uint8Array {
  const doc: Record<string, unknown> = { Config: entry.configPath, Layers: [...entry.layerPaths], RepoTags: [...entry.repoTags] };
  if (entry.imageName !== undefined) doc['ImageName'] = entry.imageName;
  return new TextEncoder().encode(`${JSON.stringify([doc], null, 4)}\n`);
}

export function decodeCatalog(bytes: Uint8Array | undefined): E.Either<DecodeError, Catalog> {
  if (bytes === undefined) return E.right({});
  const json = parseJsonBytes('catalog.json', bytes);
  return E.isLeft(json) ? json : decodeWith(Catalog, 'catalog.json', json.right);
}

/** Merge one image into a catalog; keys sorted so the file is stable. */
export function mergeCatalog(catalog: Catalog, image: ImageName, manifestFile: string): Catalog {
  // Built with entries, never by assignment, so names like `__proto__` stay plain keys.
  const entries = new Map(Object.entries(catalog));
  const tags = new Map(Object.entries(entries.get(image.name) ?? {}));
  tags.set(image.tag, manifestFile);
  entries.set(image.name, Object.fromEntries(tags));
  return Object.fromEntries(
    [...entries.keys()].sort().map((name) => {
      const t = entries.get(name) as Record<string, string>;
      return [name, Object.fromEntries(Object.keys(t).sort().map((k) => [k, t[k] as string]))];
    }),
  );
}

export function catalogBytes(catalog: Catalog): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(catalog, null, 4)}\n`);
}
