/**
 * What the OCI image layout (image-spec v1.1 `image-layout.md`) fixes, shared by the
 * `ocidir://` input and output and the Docker 25+ docker-save reader: the reference
 * grammar `DIR[:TAG|@DIGEST]`, the `oci-layout` marker, blob paths and the tag annotation.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { type Digest, describeDigestError, digestAlgorithm, digestHex, parseDigest } from '../digest.js';
import { isTag } from '../reference.js';

/** The annotation that names a manifest in `index.json` (the tag). */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/** The layout version occystrap writes and reads. */
export const IMAGE_LAYOUT_VERSION = '1.0.0';

/** The bytes of the `oci-layout` file occystrap writes. */
export function ociLayoutFileBytes(): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify({ imageLayoutVersion: IMAGE_LAYOUT_VERSION })}\n`);
}

/** `blobs/<algorithm>/<hex>` for a digest already validated by {@link parseDigest}. */
export function blobPath(digest: Digest): string {
  return `blobs/${digestAlgorithm(digest)}/${digestHex(digest)}`;
}

/** An `ocidir://` reference: the layout directory and which image in it. */
export interface OciLayoutReference {
  readonly path: string;
  /** The `org.opencontainers.image.ref.name` to pick or write. */
  readonly tag?: string;
  /** The manifest (or index) digest to pick. */
  readonly digest?: Digest;
}

/**
 * Parse `DIR`, `DIR:TAG` or `DIR@DIGEST` (the body of `ocidir://…`, as skopeo's
 * `oci:DIR:TAG`). The tag follows the last `:` when what follows it is a valid tag (no
 * `/`); otherwise the whole body is the path, so `ocidir://./a:b/c` is the directory
 * `./a:b/c`.
 */
export function parseOciLayoutReference(body: string): E.Either<string, OciLayoutReference> {
  if (body === '') return E.left('ocidir:// needs a directory, e.g. ocidir://layout:latest');
  const at = body.lastIndexOf('@');
  if (at >= 0 && /^[a-z0-9]+([+._-][a-z0-9]+)*:/.test(body.slice(at + 1))) {
    const digest = parseDigest(body.slice(at + 1));
    if (E.isLeft(digest)) return E.left(describeDigestError(digest.left, `the digest in ${JSON.stringify(body)}`));
    const path = body.slice(0, at);
    if (path === '') return E.left(`no directory before @ in ${JSON.stringify(body)}`);
    return E.right({ path, digest: digest.right });
  }
  const colon = body.lastIndexOf(':');
  if (colon > 0) {
    const tag = body.slice(colon + 1);
    if (!tag.includes('/')) {
      if (!isTag(tag)) return E.left(`bad tag ${JSON.stringify(tag)} in ${JSON.stringify(body)}: a tag is 1-128 of [A-Za-z0-9_.-], not starting with . or -`);
      return E.right({ path: body.slice(0, colon), tag });
    }
  }
  return E.right({ path: body });
}
