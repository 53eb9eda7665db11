/**
 * The elements that flow through a pipeline: one config, then the layers.
 *
 * @module
 */
import type { Digest } from './digest.js';
import type { ImageConfig } from './codecs/oci.js';
import type { Effects, TempFile } from './ownership.js';

/** The image a pipeline carries: repository name and tag (or `@digest` reference). */
export interface ImageName {
  /** Repository, e.g. `library/busybox` or `127.0.0.1:5000/team/app`; `unknown` when the source has none. */
  readonly name: string;
  /** Tag, e.g. `latest`; `unknown` when the source has none. */
  readonly tag: string;
  /** Set when the image was addressed by manifest digest. */
  readonly digest?: Digest;
}

/** What the input knows about a layer before fetching it. */
export interface LayerDescriptor {
  /** Position in the manifest (0 = base layer). */
  readonly index: number;
  /** The input's own id for the blob: compressed digest hex, docker-save v1 id, or blob hex. */
  readonly sourceId: string;
  /** The uncompressed layer digest from the config's `rootfs.diff_ids`; inputs verify it. */
  readonly diffId: Digest;
  /** Media type as declared by the source (may name a compression). */
  readonly mediaType: string;
  /** Compressed size when the source declares it. */
  readonly size?: number;
}

export interface ConfigElement {
  readonly _tag: 'Config';
  readonly image: ImageName;
  /** sha256 of {@link raw}: the image id. */
  readonly digest: Digest;
  /** The exact bytes read and verified; outputs write these, never a re-serialisation. */
  readonly raw: Uint8Array;
  readonly config: ImageConfig;
  /** Every layer of the manifest, in manifest order. */
  readonly layers: readonly LayerDescriptor[];
}

/** Why a layer arrives without data. */
export type SkipReason =
  /** The output said it already has the layer. */
  | 'present'
  /** The same diff_id appeared earlier in this image; its data went with that element. */
  | 'duplicate';

export type LayerPayload =
  /** An uncompressed layer tar in a temp file the holder owns. */
  | { readonly _tag: 'Owned'; readonly file: TempFile; readonly size: number }
  | { readonly _tag: 'Skipped'; readonly reason: SkipReason };

export interface LayerElement {
  readonly _tag: 'Layer';
  readonly layer: LayerDescriptor;
  readonly payload: LayerPayload;
}

export type ImageElement = ConfigElement | LayerElement;

export function isConfig(e: ImageElement): e is ConfigElement {
  return e._tag === 'Config';
}

export function isLayer(e: ImageElement): e is LayerElement {
  return e._tag === 'Layer';
}

/** The temp files an element carries (zero or one today). */
export function ownedFiles(e: ImageElement): TempFile[] {
  return e._tag === 'Layer' && e.payload._tag === 'Owned' ? [e.payload.file] : [];
}

/**
 * A disposer that releases the files an element carries, as `owner`. Combinators call
 * it for every element they took but will never deliver.
 */
export function releaseElement(effects: Effects, owner: string): (e: ImageElement) => Promise<void> {
  return async (e) => {
    for (const file of ownedFiles(e)) await effects.perform({ _tag: 'Release', file, owner });
  };
}

/** `name:tag` as a docker RepoTag, or undefined when the source had no name. */
export function repoTag(image: ImageName): string | undefined {
  if (image.name === 'unknown' && image.tag === 'unknown') return undefined;
  // Addressed by digest only: a RepoTag cannot name a digest, so the image stays untagged.
  if (image.digest !== undefined && image.tag === image.digest) return undefined;
  return `${image.name}:${image.tag}`;
}
