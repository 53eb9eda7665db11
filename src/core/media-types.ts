/**
 * OCI and Docker media types, and what each means for a pipeline.
 *
 * @module
 */

export const MediaTypes = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerManifestSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayerForeignGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  dockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  dockerLayerTar: 'application/vnd.docker.image.rootfs.diff.tar',
} as const;

export type Compression = 'none' | 'gzip' | 'zstd';

/** What kind of document a manifest-ish media type names. */
export type DocumentKind = 'index' | 'manifest' | 'schema1' | 'unknown';

export function documentKind(mediaType: string | undefined): DocumentKind {
  switch (mediaType) {
    case MediaTypes.ociIndex:
    case MediaTypes.dockerManifestList:
      return 'index';
    case MediaTypes.ociManifest:
    case MediaTypes.dockerManifest:
      return 'manifest';
    case MediaTypes.dockerManifestSchema1:
    case MediaTypes.dockerManifestSchema1Signed:
      return 'schema1';
    default:
      return 'unknown';
  }
}

/**
 * The compression a layer media type declares: exact types first, then the
 * `+gzip`/`.gzip`/`+zstd`/`.zstd` suffixes, and a plain `.tar` suffix means none.
 * Returns undefined when the type says nothing (callers then sniff the magic bytes).
 */
export function layerCompression(mediaType: string | undefined): Compression | undefined {
  if (mediaType === undefined) return undefined;
  if (/[+.]gzip$/.test(mediaType)) return 'gzip';
  if (/[+.]zstd$/.test(mediaType)) return 'zstd';
  if (/[.]tar$/.test(mediaType)) return 'none';
  return undefined;
}

/** Sniff compression from the first bytes of a blob (gzip 1f8b, zstd 28b52ffd). */
export function sniffCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}
