/**
 * io-ts codecs for OCI and Docker v2 manifests, indexes (manifest lists) and image configs.
 * Docker v2 and OCI share one structure, so one codec serves both; the media type decides
 * which a document is ({@link decodeManifestDocument}).
 *
 * @module
 */
import * as t from 'io-ts';
import * as E from 'fp-ts/lib/Either.js';
import { Annotations, type DecodeError, Descriptor, DigestCodec, decodeWith, parseJsonBytes, SizeCodec } from './common.js';
import { documentKind, MediaTypes } from '../media-types.js';

export const ImageManifest = t.intersection(
  [
    t.type({ schemaVersion: t.literal(2), config: Descriptor, layers: t.array(Descriptor) }),
    t.partial({ mediaType: t.string, annotations: Annotations, subject: Descriptor, artifactType: t.string }),
  ],
  'ImageManifest',
);
export type ImageManifest = t.TypeOf<typeof ImageManifest>;

export const ImageIndex = t.intersection(
  [
    t.type({ schemaVersion: t.literal(2), manifests: t.array(Descriptor) }),
    t.partial({ mediaType: t.string, annotations: Annotations, subject: Descriptor, artifactType: t.string }),
  ],
  'ImageIndex',
);
export type ImageIndex = t.TypeOf<typeof ImageIndex>;

const HistoryEntry = t.partial(
  { created: t.string, created_by: t.string, author: t.string, comment: t.string, empty_layer: t.boolean },
  'HistoryEntry',
);
export type HistoryEntry = t.TypeOf<typeof HistoryEntry>;

const ContainerConfig = t.partial(
  {
    User: t.string,
    ExposedPorts: t.UnknownRecord,
    Env: t.union([t.array(t.string), t.null]),
    Entrypoint: t.union([t.array(t.string), t.null]),
    Cmd: t.union([t.array(t.string), t.null]),
    Volumes: t.union([t.UnknownRecord, t.null]),
    WorkingDir: t.string,
    Labels: t.union([t.record(t.string, t.string), t.null]),
    StopSignal: t.string,
  },
  'ContainerConfig',
);

export const ImageConfig = t.intersection(
  [
    t.type({
      rootfs: t.type({ type: t.string, diff_ids: t.array(DigestCodec) }, 'RootFS'),
    }),
    t.partial({
      architecture: t.string,
      os: t.string,
      variant: t.string,
      created: t.string,
      author: t.string,
      config: t.union([ContainerConfig, t.null]),
      history: t.array(HistoryEntry),
    }),
  ],
  'ImageConfig',
);
export type ImageConfig = t.TypeOf<typeof ImageConfig>;

export type ManifestDocument =
  | { readonly _tag: 'Manifest'; readonly mediaType: string; readonly manifest: ImageManifest }
  | { readonly _tag: 'Index'; readonly mediaType: string; readonly index: ImageIndex };

/**
 * Decode a manifest-or-index by media type: the body's `mediaType` first, then the
 * Content-Type the transport reported, then the structure. A document that has both
 * `manifests` and `layers`/`config`, or whose body and transport disagree, is rejected
 * (CVE-2021-41190: media-type confusion).
 */
export function decodeManifestDocument(
  document: string,
  bytes: Uint8Array,
  transportMediaType?: string,
): E.Either<DecodeError, ManifestDocument> {
  const fail = (path: string, message: string) => E.left<DecodeError>({ _tag: 'DecodeError', document, path, message });
  const json = parseJsonBytes(document, bytes);
  if (E.isLeft(json)) return json;
  const value = json.right;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('(root)', 'expected a JSON object');
  const obj = value as Record<string, unknown>;
  if ('manifests' in obj && ('layers' in obj || 'config' in obj)) {
    return fail('(root)', 'ambiguous document: has both "manifests" and "layers"/"config"');
  }
  const bodyType = typeof obj['mediaType'] === 'string' ? (obj['mediaType'] as string) : undefined;
  const transport = transportMediaType?.split(';')[0]?.trim();
  if (bodyType && transport && documentKind(transport) !== 'unknown' && documentKind(bodyType) !== documentKind(transport)) {
    return fail('mediaType', `body says ${bodyType} but it was served as ${transport}`);
  }
  const declared = bodyType ?? (transport && documentKind(transport) !== 'unknown' ? transport : undefined);
  let kind = documentKind(declared);
  if (kind === 'schema1' || (declared === undefined && obj['schemaVersion'] === 1)) {
    return fail('schemaVersion', 'Docker schema 1 manifests are not supported; re-push the image with a current client');
  }
  if (kind === 'unknown') {
    if (declared !== undefined && 'mediaType' in obj) return fail('mediaType', `unknown manifest media type ${JSON.stringify(declared)}`);
    kind = 'manifests' in obj ? 'index' : 'manifest';
  }
  if (kind === 'index') {
    const r = decodeWith(ImageIndex, document, value);
    return E.map((index: ImageIndex) => ({ _tag: 'Index' as const, mediaType: declared ?? MediaTypes.ociIndex, index }))(r);
  }
  const r = decodeWith(ImageManifest, document, value);
  return E.map((manifest: ImageManifest) => ({ _tag: 'Manifest' as const, mediaType: declared ?? MediaTypes.ociManifest, manifest }))(r);
}

/** Decode an image config (OCI or Docker) from its raw bytes. */
export function decodeImageConfig(document: string, bytes: Uint8Array): E.Either<DecodeError, ImageConfig> {
  const json = parseJsonBytes(document, bytes);
  if (E.isLeft(json)) return json;
  return decodeWith(ImageConfig, document, json.right);
}

export { SizeCodec };
