/**
 * What the `ocidir://` output writes, as pure data: the OCI image manifest of one image,
 * the media type each layer blob gets in it, and the merge of a new image into an
 * existing `index.json` (several images and tags share one layout).
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { type DecodeError, decodeWith, parseJsonBytes } from '../codecs/common.js';
import { ImageIndex } from '../codecs/oci.js';
import { type Digest, isDigest } from '../digest.js';
import type { BlobDescriptor, ImageName } from '../element.js';
import { type Compression, MediaTypes } from '../media-types.js';
import { isTag } from '../reference.js';
import { REF_NAME_ANNOTATION } from './oci-layout.js';

const encoder = new TextEncoder();

/**
 * The OCI media type of a layer blob: Docker types become their OCI equivalents (the
 * bytes are the same, as skopeo does it); OCI types stay; anything else is named by its
 * compression.
 */
export function ociLayerMediaType(mediaType: string, compression: Compression): string {
  switch (mediaType) {
    case MediaTypes.dockerLayerGzip:
      return MediaTypes.ociLayerGzip;
    case MediaTypes.dockerLayerForeignGzip:
      return MediaTypes.ociLayerNondistributableGzip;
    case MediaTypes.dockerLayerZstd:
      return MediaTypes.ociLayerZstd;
    case MediaTypes.dockerLayerTar:
      return MediaTypes.ociLayer;
    case MediaTypes.ociLayer:
    case MediaTypes.ociLayerGzip:
    case MediaTypes.ociLayerZstd:
    case MediaTypes.ociLayerNondistributable:
    case MediaTypes.ociLayerNondistributableGzip:
    case MediaTypes.ociLayerNondistributableZstd:
      return mediaType;
    default:
      return compression === 'gzip' ? MediaTypes.ociLayerGzip : compression === 'zstd' ? MediaTypes.ociLayerZstd : MediaTypes.ociLayer;
  }
}

export interface ManifestPlan {
  readonly config: { readonly digest: Digest; readonly size: number };
  /** One per manifest position, already with OCI media types. */
  readonly layers: readonly BlobDescriptor[];
}

/** The OCI image manifest (compact JSON, fixed key order: equal plans give equal bytes). */
export function imageManifestBytes(plan: ManifestPlan): Uint8Array {
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: plan.config.digest, size: plan.config.size },
    layers: plan.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  return encoder.encode(JSON.stringify(manifest));
}

/**
 * The `ref.name` an image gets when the URI names no tag: the source's tag, as occystrap
 * names images elsewhere (`tar://`, `dir://`); none (an untagged entry, as skopeo writes
 * for `oci:DIR`) when the source has no usable tag.
 */
export function defaultRefName(image: ImageName): string | undefined {
  if (image.tag === 'unknown' || (image.digest !== undefined && image.tag === image.digest)) return undefined;
  return isTag(image.tag) ? image.tag : undefined;
}

/** An `index.json` as read: decoded, with the raw JSON kept so unknown fields survive a merge. */
export interface LayoutIndex {
  readonly raw: Record<string, unknown>;
  /** The raw entries of `manifests`, each a valid descriptor. */
  readonly manifests: readonly Record<string, unknown>[];
  /** The digests of `manifests`, in order (validated). */
  readonly digests: readonly Digest[];
}

/** Decode an existing `index.json` (its bytes, size already capped by the caller). */
export function decodeLayoutIndex(bytes: Uint8Array): E.Either<DecodeError, LayoutIndex> {
  const json = parseJsonBytes('index.json', bytes);
  if (E.isLeft(json)) return json;
  const decoded = decodeWith(ImageIndex, 'index.json', json.right);
  if (E.isLeft(decoded)) return decoded;
  const mediaType = decoded.right.mediaType;
  if (mediaType !== undefined && mediaType !== MediaTypes.ociIndex) {
    return E.left({ _tag: 'DecodeError', document: 'index.json', path: 'mediaType', message: `expected ${MediaTypes.ociIndex}, got ${JSON.stringify(mediaType)}` });
  }
  const raw = json.right as Record<string, unknown>;
  return E.right({ raw, manifests: raw['manifests'] as Record<string, unknown>[], digests: decoded.right.manifests.map((m) => m.digest) });
}

export interface IndexEntry {
  readonly digest: Digest;
  readonly size: number;
  /** The `ref.name` annotation; undefined writes an untagged entry. */
  readonly refName: string | undefined;
  readonly platform?: { readonly os: string; readonly architecture: string; readonly variant?: string };
}

function refNameOf(entry: Record<string, unknown>): string | undefined {
  const annotations = entry['annotations'];
  if (typeof annotations !== 'object' || annotations === null) return undefined;
  const name = (annotations as Record<string, unknown>)[REF_NAME_ANNOTATION];
  return typeof name === 'string' ? name : undefined;
}

/**
 * `existing` with `entry` added (as the last entry). An entry that held the same
 * `ref.name` is dropped (a tag names one manifest; the old manifest's blobs stay, as with
 * skopeo); an untagged entry for the same digest is replaced. Other entries and unknown
 * fields are kept as they were.
 */
export function mergeLayoutIndex(existing: LayoutIndex | undefined, entry: IndexEntry): Uint8Array {
  const kept = (existing?.manifests ?? []).filter((m) => {
    const name = refNameOf(m);
    if (entry.refName !== undefined) return name !== entry.refName;
    return !(name === undefined && m['digest'] === entry.digest);
  });
  const descriptor: Record<string, unknown> = { mediaType: MediaTypes.ociManifest, digest: entry.digest, size: entry.size };
  if (entry.platform) {
    const { os, architecture, variant } = entry.platform;
    descriptor['platform'] = { architecture, os, ...(variant ? { variant } : {}) };
  }
  if (entry.refName !== undefined) descriptor['annotations'] = { [REF_NAME_ANNOTATION]: entry.refName };
  const index = { schemaVersion: 2, mediaType: MediaTypes.ociIndex, ...(existing?.raw ?? {}), manifests: [...kept, descriptor] };
  index.schemaVersion = 2;
  index.mediaType = MediaTypes.ociIndex;
  return encoder.encode(JSON.stringify(index));
}

/**
 * The blobs a manifest or index names (config, layers, manifests), from its raw bytes;
 * only well-formed digests (safe in a path); empty when it is not JSON.
 */
export function blobsNamedByManifest(bytes: Uint8Array): Digest[] {
  const json = parseJsonBytes('manifest', bytes);
  if (E.isLeft(json)) return [];
  const v = json.right as { config?: { digest?: unknown }; layers?: unknown; manifests?: unknown } | null;
  const out: Digest[] = [];
  if (isDigest(v?.config?.digest)) out.push(v.config.digest);
  for (const list of [v?.layers, v?.manifests]) {
    if (!Array.isArray(list)) continue;
    for (const d of list as ({ digest?: unknown } | null)[]) if (isDigest(d?.digest)) out.push(d.digest);
  }
  return out;
}
