/**
 * What the `registry://` output pushes, as pure data: which manifest format the image
 * gets and the manifest's bytes.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { decodeManifestDocument } from '../codecs/oci.js';
import type { Digest } from '../digest.js';
import type { BlobDescriptor } from '../element.js';
import { type Compression, MediaTypes } from '../media-types.js';
import { ociLayerMediaType } from './oci-layout-write.js';

/** `docker`: Docker v2 schema 2; `oci`: OCI image manifest; `auto`: keep the source's. */
export type ManifestFormat = 'docker' | 'oci';
export type ManifestFormatWanted = ManifestFormat | 'auto';

const DOCKER_LAYER_TYPES: ReadonlySet<string> = new Set([MediaTypes.dockerLayerGzip, MediaTypes.dockerLayerForeignGzip, MediaTypes.dockerLayerTar]);

/** One layer as the manifest will name it: the blob pushed and the source's declared type. */
export interface PushedLayer {
  readonly blob: BlobDescriptor;
  readonly compression: Compression;
  /** The media type the source declared for the layer (its manifest, or docker-save's). */
  readonly sourceMediaType: string;
}

/**
 * The format: what was asked, else the source's. A source whose every layer has a Docker
 * media type (a Docker v2 manifest, a docker-save archive) stays Docker, as occystrap
 * pushes; anything else is OCI. zstd layers need OCI (Docker v2 has no zstd type that
 * registries and runtimes agree on), so they force it, and asking for `docker` then is
 * refused (the `Left` is the reason).
 */
export function chooseManifestFormat(layers: readonly PushedLayer[], wanted: ManifestFormatWanted): { ok: true; format: ManifestFormat } | { ok: false; reason: string } {
  const zstd = layers.some((l) => l.compression === 'zstd');
  if (wanted === 'docker' && zstd) return { ok: false, reason: 'a Docker v2 manifest cannot carry zstd layers; push with format=oci or compression=gzip' };
  if (wanted !== 'auto') return { ok: true, format: wanted };
  if (zstd) return { ok: true, format: 'oci' };
  return { ok: true, format: layers.length > 0 && layers.every((l) => DOCKER_LAYER_TYPES.has(l.sourceMediaType)) ? 'docker' : 'oci' };
}

/** The Docker v2 name of an OCI layer type that has one. */
const DOCKER_NAME_OF: Readonly<Record<string, string>> = {
  [MediaTypes.ociLayerGzip]: MediaTypes.dockerLayerGzip,
  [MediaTypes.ociLayerNondistributableGzip]: MediaTypes.dockerLayerForeignGzip,
  [MediaTypes.ociLayer]: MediaTypes.dockerLayerTar,
};

/** A layer blob's media type in a manifest of `format` (the bytes are the same either way). */
export function layerMediaTypeFor(format: ManifestFormat, mediaType: string, compression: Compression): string {
  const oci = ociLayerMediaType(mediaType, compression);
  return format === 'oci' ? oci : (DOCKER_NAME_OF[oci] ?? oci);
}

const encoder = new TextEncoder();

/** The manifest (compact JSON, fixed key order: equal inputs give equal bytes) and its media type. */
export function pushManifest(format: ManifestFormat, config: { readonly digest: Digest; readonly size: number }, layers: readonly PushedLayer[]): { mediaType: string; bytes: Uint8Array } {
  const mediaType = format === 'docker' ? MediaTypes.dockerManifest : MediaTypes.ociManifest;
  const manifest = {
    schemaVersion: 2,
    mediaType,
    config: { mediaType: format === 'docker' ? MediaTypes.dockerConfig : MediaTypes.ociConfig, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: layerMediaTypeFor(format, l.blob.mediaType, l.compression), digest: l.blob.digest, size: l.blob.size })),
  };
  return { mediaType, bytes: encoder.encode(JSON.stringify(manifest)) };
}

/**
 * The source's manifest, to be pushed as it is (so the digest stays, as skopeo and crane
 * copy), when it names exactly this config and these layer blobs, in order, and its
 * format is the one wanted. Otherwise undefined: a new manifest is made.
 */
export function reusableManifest(
  source: { readonly mediaType: string; readonly raw: Uint8Array } | undefined,
  config: Digest,
  layers: readonly PushedLayer[],
  wanted: ManifestFormatWanted,
): { mediaType: string; bytes: Uint8Array } | undefined {
  if (!source) return undefined;
  const doc = decodeManifestDocument('source manifest', source.raw, source.mediaType);
  if (E.isLeft(doc) || doc.right._tag !== 'Manifest') return undefined;
  const format: ManifestFormat = doc.right.mediaType === MediaTypes.dockerManifest ? 'docker' : 'oci';
  if (wanted !== 'auto' && wanted !== format) return undefined;
  const m = doc.right.manifest;
  if (m.config.digest !== config || m.layers.length !== layers.length) return undefined;
  if (!m.layers.every((l, i) => l.digest === layers[i]?.blob.digest && l.size === layers[i]?.blob.size)) return undefined;
  return { mediaType: doc.right.mediaType, bytes: source.raw };
}
