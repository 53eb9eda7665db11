/**
 * `ocidir://DIR[:TAG|@DIGEST]` input: an OCI image layout (image-spec v1.1) as skopeo
 * (`oci:DIR:TAG`), umoci and buildah write it.
 *
 * `oci-layout` and `index.json` are checked, the image is chosen by tag, digest or
 * platform (src/core/plans/oci-layout-read.ts), the manifest and config are read capped
 * with digest and size verified, then the layers are read in parallel (`-j`) in the forms
 * the output asks for, in one pass each: the blob copied while hashing (digest and size
 * verified, read to EOF) and/or inflated while hashing (diff_id verified).
 *
 * Every path is the layout's real root plus `blobs/<alg>/<hex>` built from a validated
 * digest; `blobs` and `blobs/<alg>` must be directories and every blob a regular file,
 * opened without following a link and without blocking.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { describeDecodeError, MAX_JSON_BYTES } from '../../core/codecs/common.js';
import { decodeImageConfig, type ImageManifest } from '../../core/codecs/oci.js';
import { type Digest, digestAlgorithm, digestHex } from '../../core/digest.js';
import { type ConfigElement, type ImageElement, type ImageName, type LayerDescriptor, type LayerElement, wantsAny } from '../../core/element.js';
import { digestError, inputError, isExplained, OccystrapError, usageError } from '../../core/errors.js';
import type { Compression } from '../../core/media-types.js';
import type { ImageInput, InputContext } from '../../core/pipeline/types.js';
import { DEFAULT_PLATFORM, type PlatformWanted } from '../../core/platform.js';
import { blobPath, type OciLayoutReference, REF_NAME_ANNOTATION } from '../../core/plans/oci-layout.js';
import {
  type BlobRequest,
  checkLayoutMarker,
  decodeLayoutIndex,
  isImageConfigMediaType,
  layerMediaTypeCompression,
  type ResolvedLayoutImage,
  resolveLayoutImage,
  selectLayoutEntry,
} from '../../core/plans/oci-layout-read.js';
import { checkImageReference, isTag } from '../../core/reference.js';
import { sha256Bytes } from '../fs/hash.js';
import { describeKind, kindOf, lstatEntry, openRegular, readRegularFile, StoreEntryError } from '../fs/store-fs.js';
import type { Target, TransportSettings } from '../transports/types.js';
import { fetchInParallel, fetchLayerForms, repeatsAnEarlierBlob } from './layer-fetch.js';
import { stringOption } from '../transports/target-options.js';


/** The annotation containerd, buildkit and Docker 25+ use for the full image name. */
const IMAGE_NAME_ANNOTATION = 'io.containerd.image.name';

export interface OciLayoutInputOptions {
  /** The layout directory, resolved with realpath. */
  readonly root: string;
  readonly reference: OciLayoutReference;
  readonly platform: PlatformWanted;
  /** Layers read at once; defaults to the pipeline's parallelism (-j). */
  readonly parallelism?: number;
  readonly label: string;
}

/** The manifest and config, verified (for `info`, `check --fast` and the input itself). */
export interface OciLayoutDescription {
  readonly resolved: ResolvedLayoutImage;
  readonly config: ConfigElement;
}

export class OciLayoutInput implements ImageInput {
  readonly description: string;
  /** Layers decompressed while reading (a tar was asked for). */
  private inflated = 0;
  /** `blobs/<alg>` directories already checked to be real directories. */
  private readonly checkedDirs = new Map<string, Promise<void>>();

  constructor(private readonly options: OciLayoutInputOptions) {
    this.description = options.label;
  }

  private fail(message: string): OccystrapError {
    return inputError(`${this.options.label}: ${message}`);
  }

  stats() {
    return { retries: 0, rateLimited: 0, requests: 0, inflated: this.inflated };
  }

  /** A layout file (`oci-layout`, `index.json`), capped, not through a link. */
  private async readLayoutFile(name: string, what: string): Promise<Uint8Array> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readRegularFile(path.join(this.options.root, name), MAX_JSON_BYTES);
    } catch (e) {
      if (e instanceof StoreEntryError) throw this.fail(`${name} ${e.message}; refusing it`);
      throw e;
    }
    if (bytes === undefined) throw this.fail(`no ${name} in the directory; ${what}`);
    return bytes;
  }

  /** `blobs/<alg>` must be a directory, not a link to elsewhere. */
  private checkBlobDirs(algorithm: string): Promise<void> {
    let checked = this.checkedDirs.get(algorithm);
    if (!checked) {
      checked = (async () => {
        for (const dir of ['blobs', `blobs/${algorithm}`]) {
          const entry = await lstatEntry(path.join(this.options.root, dir));
          if (entry.kind === 'missing') continue; // the blob is then missing, and said so
          if (entry.kind !== 'directory') throw this.fail(`${dir} is ${describeKind(entry.kind)}, not a directory; refusing to read blobs through it`);
        }
      })();
      this.checkedDirs.set(algorithm, checked);
    }
    return checked;
  }

  private async blobFile(digest: Digest): Promise<string> {
    await this.checkBlobDirs(digestAlgorithm(digest));
    return path.join(this.options.root, blobPath(digest));
  }

  /** A small blob (manifest, index, config), capped; digest and declared size verified. */
  private async readSmallBlob(request: BlobRequest): Promise<Uint8Array> {
    const { digest, what } = request;
    if (request.size !== undefined && request.size > MAX_JSON_BYTES) {
      throw this.fail(`${what} ${digest} declares ${request.size} bytes, over the ${MAX_JSON_BYTES}-byte limit for JSON documents`);
    }
    const file = await this.blobFile(digest);
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readRegularFile(file, MAX_JSON_BYTES);
    } catch (e) {
      if (e instanceof StoreEntryError) throw this.fail(`${what} ${blobPath(digest)} ${e.message}; refusing it`);
      throw e;
    }
    if (bytes === undefined) throw this.fail(`${what} ${digest} is missing (no ${blobPath(digest)}); the layout is incomplete`);
    if (request.size !== undefined && bytes.length !== request.size) {
      throw digestError(`${this.options.label}: ${what} ${blobPath(digest)} is ${bytes.length} bytes, but its descriptor says ${request.size}; the layout is corrupt`);
    }
    const algorithm = digestAlgorithm(digest);
    const actual = algorithm === 'sha256' ? sha256Bytes(bytes) : `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
    if (actual !== digest) throw digestError(`${this.options.label}: ${what} ${blobPath(digest)} has digest ${actual}; the layout is corrupt`);
    return bytes;
  }

  async describe(_signal?: AbortSignal): Promise<OciLayoutDescription> {
    const { reference, label } = this.options;
    const marker = checkLayoutMarker(await this.readLayoutFile('oci-layout', 'it is not an OCI image layout (skopeo copy … oci:DIR:TAG makes one)'));
    if (E.isLeft(marker)) throw this.fail(marker.left);
    const index = decodeLayoutIndex('index.json', await this.readLayoutFile('index.json', 'the OCI image layout is incomplete'));
    if (E.isLeft(index)) throw this.fail(index.left);
    const start = selectLayoutEntry(index.right, reference);
    if (E.isLeft(start)) throw this.fail(start.left);
    const resolved = await resolveLayoutImage(start.right, this.options.platform, (r) => this.readSmallBlob(r));
    if (E.isLeft(resolved)) throw this.fail(resolved.left);
    const manifest = resolved.right.manifest;
    if (!isImageConfigMediaType(manifest.config.mediaType)) {
      throw this.fail(`manifest ${resolved.right.digest} has config media type ${JSON.stringify(manifest.config.mediaType.slice(0, 100))}; it is not a container image`);
    }
    manifest.layers.forEach((l, i) => {
      const known = layerMediaTypeCompression(l.mediaType);
      if (E.isLeft(known)) throw this.fail(`manifest ${resolved.right.digest} layers[${i}]: ${known.left}; occystrap reads OCI and Docker tar, tar+gzip and tar+zstd layers`);
      if (digestAlgorithm(l.digest) !== 'sha256') throw this.fail(`manifest layers[${i}] has a ${digestAlgorithm(l.digest)} digest; only sha256 layer blobs are supported`);
    });
    const raw = await this.readSmallBlob({ digest: manifest.config.digest, size: manifest.config.size, mediaType: manifest.config.mediaType, what: 'config' });
    const config = decodeImageConfig(`${label}: config ${manifest.config.digest}`, raw);
    if (E.isLeft(config)) throw inputError(describeDecodeError(config.left));
    const diffIds = config.right.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length) {
      throw this.fail(`the manifest lists ${manifest.layers.length} layers but the config's rootfs.diff_ids has ${diffIds.length}`);
    }
    const layers: LayerDescriptor[] = manifest.layers.map((l, index) => ({
      index,
      sourceId: digestHex(l.digest),
      diffId: diffIds[index] as Digest,
      mediaType: l.mediaType,
      size: l.size,
      blob: { digest: l.digest, size: l.size, mediaType: l.mediaType },
    }));
    return {
      resolved: resolved.right,
      config: { _tag: 'Config', image: this.imageName(start.right._tag === 'Entry' ? start.right.descriptor.annotations : undefined), digest: sha256Bytes(raw), raw, config: config.right, layers },
    };
  }

  /**
   * The image's name: the full name containerd-style tools annotate, else the layout
   * directory's name with the tag (or the digest it was picked by).
   */
  private imageName(annotations: Readonly<Record<string, string>> | undefined): ImageName {
    const { reference, root } = this.options;
    const full = annotations?.[IMAGE_NAME_ANNOTATION];
    if (full !== undefined && E.isRight(checkImageReference(full))) {
      const slash = full.lastIndexOf('/');
      const colon = full.lastIndexOf(':');
      if (colon > slash && !full.includes('@')) return { name: full.slice(0, colon), tag: full.slice(colon + 1) };
    }
    const base = path.basename(root).toLowerCase();
    const name = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/.test(base) ? base : 'unknown';
    if (reference.digest !== undefined) return { name, tag: reference.digest, digest: reference.digest };
    const annotated = annotations?.[REF_NAME_ANNOTATION];
    return { name, tag: reference.tag ?? (annotated !== undefined && isTag(annotated) ? annotated : 'latest') };
  }

  elements(ctx: InputContext): AsyncIterable<ImageElement> {
    return this.read(ctx);
  }

  /** Open a blob without following a link or blocking; it must be a regular file. */
  private async openBlob(digest: Digest, what: string): Promise<fs.FileHandle> {
    const file = await this.blobFile(digest);
    let opened: Awaited<ReturnType<typeof openRegular>>;
    try {
      opened = await openRegular(file);
    } catch (e) {
      if (e instanceof StoreEntryError) throw this.fail(`${what} ${blobPath(digest)} ${e.message}; refusing it`);
      throw e;
    }
    if (!opened) throw this.fail(`${what} ${digest} is missing (no ${blobPath(digest)}); the layout is incomplete`);
    return opened.handle;
  }

  private async *read(ctx: InputContext): AsyncGenerator<ImageElement, void, undefined> {
    const { effects, owner, signal } = ctx;
    const label = this.options.label;
    const { resolved, config } = await this.describe(signal);
    yield config;
    const blobs = resolved.manifest.layers;
    const repeated = repeatsAnEarlierBlob(blobs);

    const readLayer = async (layer: LayerDescriptor, taskSignal: AbortSignal): Promise<LayerElement> => {
      const blob = blobs[layer.index] as ImageManifest['layers'][number];
      if (repeated(layer.index)) return { _tag: 'Layer', layer, payload: { _tag: 'Skipped', reason: 'duplicate' } };
      const forms = await ctx.wants(layer);
      if (!wantsAny(forms)) return { _tag: 'Layer', layer, payload: { _tag: 'Skipped', reason: 'present' } };
      const declared = layerMediaTypeCompression(blob.mediaType);
      const compression: Compression = E.isRight(declared) ? declared.right : 'none';
      const what = `layer ${layer.index} blob`;
      const handle = await this.openBlob(blob.digest, what);
      try {
        const { element, inflated } = await fetchLayerForms(
          {
            layer,
            blob,
            compression,
            effects,
            owner,
            signal: taskSignal,
            progress: ctx.progress,
            fill: async (sink) => {
              // At most one byte past the declared size: enough to prove the file is longer.
              // The handle is closed below; the stream only reads (no signal: an abort after
              // the end would fail a stream nobody listens to any more).
              const stream = handle.createReadStream({ start: 0, end: blob.size, highWaterMark: 1 << 20, autoClose: false });
              for await (const chunk of stream as AsyncIterable<Buffer>) {
                taskSignal.throwIfAborted();
                await sink.write(chunk);
              }
            },
            failed: async (e) => {
              if (isExplained(e) || taskSignal.aborted) return e;
              // Corrupt bytes usually break decompression first: say which it is.
              const actual = await hashPrefix(handle, blob.size + 1);
              if (actual.size !== blob.size) return digestError(`${label}: ${what} ${blobPath(blob.digest)} is ${actual.size > blob.size ? 'longer' : 'shorter'} than the ${blob.size} bytes the manifest declares; the layout is corrupt`);
              if (actual.digest !== blob.digest) return digestError(`${label}: ${what} ${blobPath(blob.digest)} has digest ${actual.digest}; the layout is corrupt`);
              return digestError(`${label}: ${what} ${blobPath(blob.digest)} cannot be decompressed as ${compression} (${(e as Error).message}); the layout is corrupt`);
            },
            verify: (result) => {
              if (result.rawSize !== blob.size) {
                throw digestError(`${label}: ${what} ${blobPath(blob.digest)} is ${result.rawSize > blob.size ? 'longer' : 'shorter'} than the ${blob.size} bytes the manifest declares; the layout is corrupt`);
              }
              if (result.rawDigest !== blob.digest) throw digestError(`${label}: ${what} ${blobPath(blob.digest)} has digest ${result.rawDigest}; the layout is corrupt`);
              if (result.content && result.content.digest !== layer.diffId) {
                throw digestError(`${label}: layer ${layer.index} (blob ${blob.digest}) uncompresses to ${result.content.digest}, but the config's diff_id is ${layer.diffId}; the layout is corrupt`);
              }
            },
          },
          forms,
        );
        if (inflated) this.inflated++;
        return element;
      } finally {
        await handle.close();
      }
    };

    yield* fetchInParallel(config.layers, readLayer, { effects, owner, signal, concurrency: this.options.parallelism ?? ctx.parallelism, order: ctx.order });
  }
}

/** sha256 and size of the first `limit` bytes of an open file. */
async function hashPrefix(handle: fs.FileHandle, limit: number): Promise<{ digest: Digest; size: number }> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  let position = 0;
  while (position < limit) {
    const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, limit - position), position);
    if (bytesRead === 0) break;
    hash.update(buf.subarray(0, bytesRead));
    position += bytesRead;
  }
  return { digest: `sha256:${hash.digest('hex')}` as Digest, size: position };
}

/** Build the input: the directory must exist (exit 2 when not); the layout itself is read by the run. */
export async function openOciLayoutInput(target: Target, ref: OciLayoutReference, settings: TransportSettings): Promise<OciLayoutInput> {
  const label = target.uri;
  const defaults = settings.platform ?? DEFAULT_PLATFORM;
  const platform: PlatformWanted = {
    os: stringOption(target, label, 'os') ?? defaults.os,
    architecture: stringOption(target, label, 'arch', 'architecture') ?? defaults.architecture,
    variant: stringOption(target, label, 'variant') ?? defaults.variant,
  };
  let root: string;
  try {
    root = await fs.realpath(ref.path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw usageError(`${label}: ${ref.path} does not exist; give the directory of an OCI image layout`);
    throw e;
  }
  const st = await fs.stat(root);
  if (!st.isDirectory()) throw usageError(`${label}: ${ref.path} is ${describeKind(kindOf(st))}, not a directory; give the directory of an OCI image layout`);
  return new OciLayoutInput({ root, reference: ref, platform, label, ...(settings.parallel !== undefined ? { parallelism: settings.parallel } : {}) });
}
