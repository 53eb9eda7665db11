/**
 * Reading an OCI image layout (image-spec v1.1 `image-layout.md`), the pure part shared
 * by the `ocidir://` input and the Docker 25+ docker-save reader: the `oci-layout`
 * marker, `index.json`, choosing the image (by tag, digest or platform, through nested
 * indexes with a depth cap), the layer media types occystrap reads, and the digest a
 * `blobs/<alg>/<hex>` path names.
 *
 * Blob bytes come through a `read` callback, so the callers decide how files are opened
 * and verified; nothing here touches the file system.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { type Descriptor, describeDecodeError, parseJsonBytes } from '../codecs/common.js';
import { decodeManifestDocument, type ImageIndex, type ImageManifest } from '../codecs/oci.js';
import { type Digest, describeDigestError, parseDigest } from '../digest.js';
import { type Compression, layerCompression, MediaTypes } from '../media-types.js';
import { availablePlatforms, choosePlatform, describePlatform, type PlatformWanted } from '../platform.js';
import { REF_NAME_ANNOTATION } from './oci-layout.js';

/** Indexes followed from `index.json` before giving up (real layouts nest one or two). */
export const MAX_INDEX_DEPTH = 8;

/** Check the `oci-layout` marker: a JSON object whose `imageLayoutVersion` is 1.x. */
export function checkLayoutMarker(bytes: Uint8Array): E.Either<string, string> {
  const json = parseJsonBytes('oci-layout', bytes);
  if (E.isLeft(json)) return E.left(`oci-layout is ${json.left.message}`);
  const v = json.right;
  const version = typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>)['imageLayoutVersion'] : undefined;
  if (typeof version !== 'string') return E.left('oci-layout has no "imageLayoutVersion"; it is not an OCI image layout');
  if (!/^1\.\d+\.\d+$/.test(version)) return E.left(`oci-layout says imageLayoutVersion ${JSON.stringify(version.slice(0, 20))}; only 1.x layouts are supported`);
  return E.right(version);
}

/** Decode `index.json`: it must be an image index. */
export function decodeLayoutIndex(document: string, bytes: Uint8Array): E.Either<string, ImageIndex> {
  const doc = decodeManifestDocument(document, bytes);
  if (E.isLeft(doc)) return E.left(describeDecodeError(doc.left));
  if (doc.right._tag !== 'Index') return E.left(`${document}: is an image manifest, not an image index`);
  return E.right(doc.right.index);
}

/** The tags (`org.opencontainers.image.ref.name`) an index names, in order, each once. */
export function layoutTags(index: ImageIndex): string[] {
  const tags: string[] = [];
  for (const m of index.manifests) {
    const tag = m.annotations?.[REF_NAME_ANNOTATION];
    if (tag !== undefined && !tags.includes(tag)) tags.push(tag);
  }
  return tags;
}

/** Where resolving starts: an index entry, a digest to read from blobs/, or index.json's own platforms. */
export type LayoutStart =
  | { readonly _tag: 'Entry'; readonly descriptor: Descriptor }
  | { readonly _tag: 'Blob'; readonly digest: Digest }
  | { readonly _tag: 'Platforms'; readonly manifests: readonly Descriptor[] };

const listTags = (index: ImageIndex) => {
  const tags = layoutTags(index);
  return tags.length > 0 ? `tags: ${tags.map((t) => JSON.stringify(t)).join(', ')}` : 'no tags';
};

/**
 * Pick the image `index.json` names: by tag (entries annotated with it; several that
 * differ by platform are chosen from as an index), by digest (an entry, else any blob),
 * or, with neither, the only entry (several entries that all carry a platform are
 * chosen from as an index).
 */
export function selectLayoutEntry(index: ImageIndex, wanted: { readonly tag?: string; readonly digest?: Digest }): E.Either<string, LayoutStart> {
  const entries = index.manifests;
  const allPlatforms = (ms: readonly Descriptor[]) => ms.length > 1 && ms.every((m) => m.platform !== undefined);
  if (wanted.digest !== undefined) {
    const entry = entries.find((m) => m.digest === wanted.digest);
    return E.right(entry ? { _tag: 'Entry', descriptor: entry } : { _tag: 'Blob', digest: wanted.digest });
  }
  if (wanted.tag !== undefined) {
    const tagged = entries.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] === wanted.tag);
    const first = tagged[0];
    if (!first) return E.left(`no image tagged ${JSON.stringify(wanted.tag)} in index.json (${listTags(index)}); name one of those, or pick by @DIGEST`);
    if (tagged.every((m) => m.digest === first.digest)) return E.right({ _tag: 'Entry', descriptor: first });
    if (allPlatforms(tagged)) return E.right({ _tag: 'Platforms', manifests: tagged });
    return E.left(`index.json names ${tagged.length} different images ${JSON.stringify(wanted.tag)}; pick one by @DIGEST (${tagged.map((m) => m.digest).join(', ')})`);
  }
  const first = entries[0];
  if (!first) return E.left('index.json lists no images; the layout is empty');
  if (entries.length === 1) return E.right({ _tag: 'Entry', descriptor: first });
  if (allPlatforms(entries) && layoutTags(index).length === 0) return E.right({ _tag: 'Platforms', manifests: entries });
  return E.left(`index.json lists ${entries.length} images (${listTags(index)}); name one with ocidir://DIR:TAG or ocidir://DIR@DIGEST`);
}

/** What to read: the digest, and the size and media type when a descriptor declared them. */
export interface BlobRequest {
  readonly digest: Digest;
  readonly size?: number;
  readonly mediaType?: string;
  /** For messages: "manifest", "index". */
  readonly what: string;
}

export interface ResolvedLayoutImage {
  readonly manifest: ImageManifest;
  readonly digest: Digest;
  readonly mediaType: string;
  /** The platform chosen from an index on the way, if any. */
  readonly platform?: string;
}

function choose(manifests: readonly Descriptor[], platform: PlatformWanted, where: string): E.Either<string, Descriptor> {
  const chosen = choosePlatform(manifests, platform);
  if (chosen) return E.right(chosen);
  const offered = availablePlatforms(manifests);
  return E.left(
    `no image for ${describePlatform(platform)} in ${where} (available: ${offered.join(', ') || 'none'}); choose one with --os/--architecture/--variant or ?os=&arch=&variant=`,
  );
}

/**
 * From the start to one image manifest, choosing a platform from each index on the way
 * as `registry://` does. A digest seen twice (a loop) or more than {@link MAX_INDEX_DEPTH}
 * indexes are refused. `read` returns a blob's bytes, verified against the request.
 */
export async function resolveLayoutImage(
  start: LayoutStart,
  platform: PlatformWanted,
  read: (request: BlobRequest) => Promise<Uint8Array>,
): Promise<E.Either<string, ResolvedLayoutImage>> {
  let request: BlobRequest;
  let chosenPlatform: string | undefined;
  if (start._tag === 'Platforms') {
    const chosen = choose(start.manifests, platform, 'index.json');
    if (E.isLeft(chosen)) return chosen;
    request = { digest: chosen.right.digest, size: chosen.right.size, mediaType: chosen.right.mediaType, what: 'manifest' };
    chosenPlatform = describePlatform(chosen.right.platform as NonNullable<Descriptor['platform']>);
  } else if (start._tag === 'Entry') {
    request = { digest: start.descriptor.digest, size: start.descriptor.size, mediaType: start.descriptor.mediaType, what: 'manifest' };
  } else {
    request = { digest: start.digest, what: 'manifest' };
  }
  const seen = new Set<string>();
  for (let depth = 0; depth <= MAX_INDEX_DEPTH; depth++) {
    if (seen.has(request.digest)) return E.left(`index ${request.digest} refers back to itself (a loop of indexes); the layout is corrupt`);
    seen.add(request.digest);
    const bytes = await read(request);
    const doc = decodeManifestDocument(`${request.what} ${request.digest}`, bytes, request.mediaType);
    if (E.isLeft(doc)) return E.left(describeDecodeError(doc.left));
    if (doc.right._tag === 'Manifest') {
      return E.right({ manifest: doc.right.manifest, digest: request.digest, mediaType: doc.right.mediaType, ...(chosenPlatform ? { platform: chosenPlatform } : {}) });
    }
    const chosen = choose(doc.right.index.manifests, platform, `index ${request.digest}`);
    if (E.isLeft(chosen)) return chosen;
    chosenPlatform = describePlatform(chosen.right.platform as NonNullable<Descriptor['platform']>);
    request = { digest: chosen.right.digest, size: chosen.right.size, mediaType: chosen.right.mediaType, what: 'manifest' };
  }
  return E.left(`indexes nest more than ${MAX_INDEX_DEPTH} levels deep; refusing the layout`);
}

/** The layer media types occystrap reads (OCI and Docker), with their compression. */
const LAYER_MEDIA_TYPES: ReadonlySet<string> = new Set([
  MediaTypes.ociLayer,
  MediaTypes.ociLayerGzip,
  MediaTypes.ociLayerZstd,
  MediaTypes.ociLayerNondistributable,
  MediaTypes.ociLayerNondistributableGzip,
  MediaTypes.ociLayerNondistributableZstd,
  MediaTypes.dockerLayerTar,
  MediaTypes.dockerLayerGzip,
  MediaTypes.dockerLayerForeignGzip,
  MediaTypes.dockerLayerZstd,
]);

/** The compression a layer media type declares; Left for a type that is not a layer occystrap can read. */
export function layerMediaTypeCompression(mediaType: string): E.Either<string, Compression> {
  const compression = LAYER_MEDIA_TYPES.has(mediaType) ? layerCompression(mediaType) : undefined;
  if (compression === undefined) return E.left(`unknown layer media type ${JSON.stringify(mediaType.slice(0, 100))}`);
  return E.right(compression);
}

/** Config media types of an image (an artifact's config is something else). */
export function isImageConfigMediaType(mediaType: string): boolean {
  return mediaType === MediaTypes.ociConfig || mediaType === MediaTypes.dockerConfig;
}

/**
 * The digest a `blobs/<alg>/<hex>` path names, validated (never trusted as a path);
 * undefined when the path is not under `blobs/`. Left for a bad algorithm or hex.
 */
export function digestOfBlobPath(path: string): E.Either<string, Digest> | undefined {
  const m = /^blobs\/([^/]+)\/([^/]+)$/.exec(path);
  if (!m) return undefined;
  const d = parseDigest(`${m[1]}:${m[2]}`);
  return E.isLeft(d) ? E.left(describeDigestError(d.left, path)) : d;
}
