/**
 * What a docker-save archive says and what one written by us contains, decided from data
 * alone.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import type { DockerSaveEntry, DockerSaveManifest } from '../codecs/docker-save.js';
import { type Digest, digestHex } from '../digest.js';
import type { ImageName } from '../element.js';
import { printable } from '../printable.js';
import { checkImageReference } from '../reference.js';

/** Which image of a multi-image archive to read: by position or by RepoTag. */
export type ImageSelector = { readonly _tag: 'First' } | { readonly _tag: 'Index'; readonly index: number } | { readonly _tag: 'Tag'; readonly tag: string };

/** Split `name:tag` at the last colon that comes after the last slash (registry ports stay in the name). */
export function parseRepoTag(repoTag: string): ImageName {
  const at = repoTag.indexOf('@');
  if (at > 0) return { name: repoTag.slice(0, at), tag: repoTag.slice(at + 1) };
  const slash = repoTag.lastIndexOf('/');
  const colon = repoTag.lastIndexOf(':');
  if (colon > slash) return { name: repoTag.slice(0, colon), tag: repoTag.slice(colon + 1) };
  return { name: repoTag, tag: 'latest' };
}

/** Docker's short names: `docker.io/library/x` and `library/x` are listed as `x`. */
function tagMatches(listed: string, wanted: string): boolean {
  const strip = (s: string) => s.replace(/^docker\.io\//, '').replace(/^library\//, '');
  const w = wanted.includes(':') && wanted.lastIndexOf(':') > wanted.lastIndexOf('/') ? wanted : `${wanted}:latest`;
  return strip(listed) === strip(w);
}

/**
 * The chosen image's RepoTags must be valid image references: a name with a newline or
 * an escape sequence would reach the terminal, `manifest.json` and the catalog.
 */
export function checkRepoTags(entry: DockerSaveEntry, position: number): E.Either<string, DockerSaveEntry> {
  const tags = entry.RepoTags ?? [];
  for (let i = 0; i < tags.length; i++) {
    const r = checkImageReference(tags[i] as string);
    if (E.isLeft(r)) return E.left(`manifest.json [${position}].RepoTags[${i}]: ${r.left}; refusing the image name`);
  }
  return E.right(entry);
}

export function selectImage(manifest: DockerSaveManifest, selector: ImageSelector): E.Either<string, { entry: DockerSaveEntry; position: number }> {
  const chosen = selectEntry(manifest, selector);
  if (E.isLeft(chosen)) return chosen;
  const checked = checkRepoTags(chosen.right.entry, chosen.right.position);
  return E.isLeft(checked) ? checked : chosen;
}

function selectEntry(manifest: DockerSaveManifest, selector: ImageSelector): E.Either<string, { entry: DockerSaveEntry; position: number }> {
  const described = () =>
    printable(manifest.map((m, i) => `${i}: ${(m.RepoTags ?? []).join(', ') || '(untagged)'}`).join('; '));
  switch (selector._tag) {
    case 'First':
      return E.right({ entry: manifest[0] as DockerSaveEntry, position: 0 });
    case 'Index': {
      const entry = manifest[selector.index];
      return entry ? E.right({ entry, position: selector.index }) : E.left(`the archive holds ${manifest.length} image(s), no index ${selector.index} (${described()})`);
    }
    case 'Tag': {
      const position = manifest.findIndex((m) => (m.RepoTags ?? []).some((t) => tagMatches(t, selector.tag)));
      return position >= 0
        ? E.right({ entry: manifest[position] as DockerSaveEntry, position })
        : E.left(`no image tagged ${printable(selector.tag)} in the archive (${described()})`);
    }
  }
}

/** The image name an archive entry carries (its first RepoTag), or the selector's tag. */
export function imageNameOf(entry: DockerSaveEntry, selector: ImageSelector): ImageName {
  if (selector._tag === 'Tag') {
    const listed = (entry.RepoTags ?? []).find((t) => tagMatches(t, selector.tag));
    if (listed) return parseRepoTag(listed);
  }
  const first = entry.RepoTags?.[0];
  return first ? parseRepoTag(first) : { name: 'unknown', tag: 'unknown' };
}

/** One image as a docker-loadable archive lists it. */
export interface SavedImagePlan {
  readonly configPath: string;
  readonly layerPaths: readonly string[];
  readonly repoTags: readonly string[];
}

/** Names inside a docker-save archive we write: `<config hex>.json` and `<diff_id hex>/layer.tar`. */
export function savedConfigPath(configDigest: Digest): string {
  return `${digestHex(configDigest)}.json`;
}

export function savedLayerPath(diffId: Digest): string {
  return `${digestHex(diffId)}/layer.tar`;
}

/** `manifest.json` of a docker-save archive (compact JSON, as docker writes it). */
export function dockerSaveManifestBytes(images: readonly SavedImagePlan[]): Uint8Array {
  const doc = images.map((i) => ({ Config: i.configPath, RepoTags: [...i.repoTags], Layers: [...i.layerPaths] }));
  return new TextEncoder().encode(JSON.stringify(doc));
}

/** The legacy `repositories` file: repository → tag → top layer id. */
export function repositoriesBytes(images: readonly SavedImagePlan[]): Uint8Array | undefined {
  const repos: Record<string, Record<string, string>> = {};
  for (const image of images) {
    const top = image.layerPaths[image.layerPaths.length - 1];
    if (!top) continue;
    const topId = top.split('/')[0] as string;
    for (const rt of image.repoTags) {
      const { name, tag } = parseRepoTag(rt);
      (repos[name] ??= {})[tag] = topId;
    }
  }
  return Object.keys(repos).length === 0 ? undefined : new TextEncoder().encode(JSON.stringify(repos));
}
