/**
 * `registry://HOST/NAME[:TAG|@DIGEST]` as a destination: push one image.
 *
 * Blobs go first, the manifest last, so a failed or interrupted push never leaves a tag
 * naming missing blobs. A layer no filter changed is pushed as the source's blob (same
 * digest, never recompressed); one that arrives as a tar is compressed (gzip or zstd)
 * by the copy loop's `Compress` effect. `has` asks the registry (HEAD) before the source
 * fetches a layer, so a blob the registry has is neither fetched nor sent. A layer the
 * source's blob goes through unchanged is uploaded while it downloads: the destination
 * offers a stream (`stream`), the input tees the bytes into it, and `putLayer` only waits
 * for the registry's answer (the file is sent if the streamed upload failed). Upload
 * sessions still open when the run fails are cancelled.
 *
 * @module
 */
import { type Digest, parseDigest } from '../../core/digest.js';
import { blobOf, type BlobDescriptor, type BlobStreamOffer, type ConfigElement, type DataPayload, type LayerDescriptor, tarOf } from '../../core/element.js';
import { outputError } from '../../core/errors.js';
import { type Compression, layerCompression } from '../../core/media-types.js';
import { type CommittedImage, CopyOutput, type DestinationNeeds, type ImageDestination, type PutLayerResult } from '../../core/pipeline/copy-image.js';
import type { StageContext } from '../../core/pipeline/types.js';
import { sha256Bytes } from '../fs/hash.js';
import { chooseManifestFormat, type ManifestFormatWanted, type PushedLayer, pushManifest, reusableManifest } from '../../core/plans/registry-push.js';
import type { StreamedUpload } from '../registry/push.js';
import * as E from 'fp-ts/lib/Either.js';

/**
 * What the destination needs of a registry (BlobPusher is the real one; the property
 * tests give one over a memory file system, with faults).
 */
export interface RegistryPush {
  /** The size the registry has for `digest`, or undefined. */
  exists(digest: Digest, signal?: AbortSignal): Promise<number | undefined>;
  /** Mount from another repository of the registry; false when refused. */
  mount(digest: Digest, from: string, signal?: AbortSignal): Promise<boolean>;
  /** Upload the file at `path` (a temp file the destination owns) as blob `digest`. */
  uploadFile(digest: Digest, size: number, path: string, signal?: AbortSignal): Promise<void>;
  /**
   * An upload fed as the blob's bytes arrive; its `done` is false when the registry did not
   * take it (the file is uploaded instead). See {@link BlobPusher.streamUpload}.
   */
  streamUpload(digest: Digest, size: number, signal?: AbortSignal): StreamedUpload;
  /** Upload small bytes unless the registry has them. */
  ensureBytes(bytes: Uint8Array, digest: Digest, signal?: AbortSignal): Promise<boolean>;
  putManifest(reference: string, mediaType: string, bytes: Uint8Array, signal?: AbortSignal): Promise<Digest>;
  /** Cancel every upload session still open. */
  cancelOpenUploads(): Promise<void>;
}

export interface RegistryDestinationOptions {
  readonly pusher: RegistryPush;
  /** `registry://HOST/NAME:TAG` in messages and the summary. */
  readonly label: string;
  /** The tag to put the manifest under, the digest it must have, or none (by its own digest: one image of an index). */
  readonly reference: { readonly tag: string } | { readonly digest: Digest } | { readonly untagged: true };
  readonly compression: 'gzip' | 'zstd';
  readonly format: ManifestFormatWanted;
  /** Blobs sent at once. */
  readonly concurrency: number;
  /** The registry's API host and the repository pushed to (a blob from another repository of it is mounted). */
  readonly registry: string;
  readonly repository: string;
  /** Release the HTTP connections (after the run). */
  readonly close: () => Promise<void>;
  /** Request counters and blob bytes sent, for the summary. */
  readonly stats: () => { readonly retries: number; readonly rateLimited: number; readonly requests: number; readonly uploaded: number };
}

/** What the destination remembers of a pushed layer, for the manifest. */
type Pushed = PushedLayer;

export class RegistryDestination implements ImageDestination<Pushed> {
  readonly description: string;
  readonly order = 'completion' as const;
  readonly needs: DestinationNeeds;
  readonly concurrency: number;

  constructor(private readonly options: RegistryDestinationOptions) {
    this.description = options.label;
    this.needs = { _tag: 'Blob', compression: options.compression };
    this.concurrency = Math.max(1, options.concurrency);
  }

  private fail(message: string): Error {
    return outputError(`${this.description}: ${message}`);
  }

  private validDigest(d: string, what: string): Digest {
    const parsed = parseDigest(d);
    if (E.isLeft(parsed)) throw this.fail(`${what} has an invalid digest ${JSON.stringify(d)}`);
    return parsed.right;
  }

  /**
   * The source's blob is there already, or could be mounted from the source's repository
   * of this registry: the input need not fetch it.
   */
  async has(layer: LayerDescriptor, signal?: AbortSignal): Promise<boolean> {
    const blob = sourceBlob(layer);
    if (!blob) return false;
    const pusher = this.options.pusher;
    if ((await pusher.exists(blob.digest, signal)) === blob.size) return true;
    const from = this.mountableFrom(blob.from);
    return from !== undefined && pusher.mount(blob.digest, from, signal);
  }

  /** Streamed uploads opened, by id, until `putLayer` takes theirs (or the run ends). */
  private readonly streams = new Map<number, { readonly digest: Digest; readonly upload: StreamedUpload }>();
  private streamIds = 0;

  /** An upload fed while the source's blob downloads (only the source's own blob, named by the manifest). */
  stream(layer: LayerDescriptor): BlobStreamOffer | undefined {
    const blob = sourceBlob(layer);
    if (!blob) return undefined;
    return {
      open: (signal) => {
        const upload = this.options.pusher.streamUpload(blob.digest, blob.size, signal);
        const id = ++this.streamIds;
        this.streams.set(id, { digest: blob.digest, upload });
        return { id, write: upload.write, end: upload.end, abort: upload.abort };
      },
    };
  }

  /** True when stream `id` carried blob `digest` and the registry took it; `signal` stops the wait (and the upload). */
  private async streamedOk(id: number | undefined, digest: Digest, signal: AbortSignal | undefined): Promise<boolean> {
    if (id === undefined) return false;
    const s = this.streams.get(id);
    this.streams.delete(id);
    if (!s) return false;
    if (s.digest !== digest) {
      s.upload.abort(new Error('another blob'));
      return false;
    }
    const stop = () => s.upload.abort(new Error('the push stopped'));
    signal?.addEventListener('abort', stop, { once: true });
    try {
      return await s.upload.done;
    } finally {
      signal?.removeEventListener('abort', stop);
    }
  }

  async begin(): Promise<void> {}

  async putLayer(layer: LayerDescriptor, payload: DataPayload, ctx: StageContext): Promise<PutLayerResult<Pushed>> {
    const { effects, owner } = ctx;
    const tar = tarOf(payload);
    const blob = blobOf(payload);
    // Only the blob is pushed; a tar that came along is not needed.
    if (tar) await effects.perform({ _tag: 'Release', file: tar.file, owner }).catch(() => undefined);
    if (!blob) throw this.fail(`layer ${layer.index} arrived without its blob`);
    try {
      const digest = this.validDigest(blob.digest, `layer ${layer.index}`);
      const stored: Pushed = { blob: { digest, size: blob.size, mediaType: blob.mediaType }, compression: blob.compression, sourceMediaType: layer.mediaType };
      const pusher = this.options.pusher;
      if (await this.streamedOk(blob.streamed, digest, ctx.signal)) return { stored, bytes: blob.size };
      if ((await pusher.exists(digest, ctx.signal)) === blob.size) return { stored, bytes: 0, kept: true };
      await pusher.uploadFile(digest, blob.size, blob.file.path, ctx.signal);
      return { stored, bytes: blob.size };
    } finally {
      await effects.perform({ _tag: 'Release', file: blob.file, owner }).catch(() => undefined);
    }
  }

  /** The manifest the last commit put. */
  pushed: { readonly digest: Digest; readonly size: number; readonly mediaType: string } | undefined;

  async putConfig(config: ConfigElement, ctx: StageContext): Promise<void> {
    const digest = this.validDigest(config.digest, 'the config');
    // The source's own config, from another repository of this registry: mount it.
    const from = this.mountableFrom(config.sourceManifest?.from);
    const pusher = this.options.pusher;
    if (from !== undefined && (await pusher.exists(digest, ctx.signal)) === undefined && (await pusher.mount(digest, from, ctx.signal))) return;
    await pusher.ensureBytes(config.raw, digest, ctx.signal);
  }

  /** The repository to mount from: another repository of this same registry, else none. */
  private mountableFrom(from: { readonly registry: string; readonly repository: string } | undefined): string | undefined {
    return from && from.registry === this.options.registry && from.repository !== this.options.repository ? from.repository : undefined;
  }

  async commit(image: CommittedImage<Pushed>, ctx: StageContext): Promise<{ readonly destination: string }> {
    const layers: Pushed[] = [];
    for (const record of image.layers) {
      if (record._tag === 'Stored') layers.push(record.stored);
      else if (record._tag === 'Duplicate') layers.push(layers[record.of] as Pushed);
      else {
        const blob = record.layer.blob as BlobDescriptor | undefined;
        if (!blob) throw this.fail(`layer ${record.layer.index} was skipped as present but has no blob`);
        const compression: Compression = layerCompression(blob.mediaType) ?? 'gzip';
        layers.push({ blob: { digest: this.validDigest(blob.digest, `layer ${record.layer.index}`), size: blob.size, mediaType: blob.mediaType }, compression, sourceMediaType: record.layer.mediaType });
      }
    }
    const chosen = chooseManifestFormat(layers, this.options.format);
    if (!chosen.ok) throw this.fail(chosen.reason);
    const config = image.config;
    const configDigest = this.validDigest(config.digest, 'the config');
    const { mediaType, bytes } =
      reusableManifest(config.sourceManifest, configDigest, layers, this.options.format) ?? pushManifest(chosen.format, { digest: configDigest, size: config.raw.length }, layers);
    const reference = this.options.reference;
    const digest = sha256Bytes(bytes);
    if ('digest' in reference && reference.digest !== digest) {
      throw this.fail(`the manifest pushed would be ${digest}, not the ${reference.digest} the URI names; push by tag (NAME:TAG) instead`);
    }
    const put = await this.options.pusher.putManifest('tag' in reference ? reference.tag : digest, mediaType, bytes, ctx.signal);
    this.pushed = { digest: put, size: bytes.length, mediaType };
    return { destination: `${this.description}@${put}` };
  }

  async abort(): Promise<void> {
    for (const { upload } of this.streams.values()) upload.abort(new Error('the push stopped'));
    await Promise.all([...this.streams.values()].map(({ upload }) => upload.done));
    this.streams.clear();
    await this.options.pusher.cancelOpenUploads();
  }
}

/** The source's blob of a layer, when the source names one with a valid digest. */
function sourceBlob(layer: LayerDescriptor): BlobDescriptor | undefined {
  const blob = layer.blob;
  return blob && E.isRight(parseDigest(blob.digest)) ? blob : undefined;
}

/** The output: the destination on the copy loop, closing its connections after the run. */
export class RegistryOutput extends CopyOutput<Pushed> {
  constructor(private readonly registry: RegistryDestinationOptions) {
    super(new RegistryDestination(registry));
  }

  /** The manifest the run put (after a successful consume). */
  get pushedManifest(): { readonly digest: Digest; readonly size: number; readonly mediaType: string } | undefined {
    return (this.destination as RegistryDestination).pushed;
  }

  /** Put another document (an index) under `reference`, then release the connections. */
  async putDocument(reference: string, mediaType: string, bytes: Uint8Array, signal?: AbortSignal): Promise<Digest> {
    try {
      return await this.registry.pusher.putManifest(reference, mediaType, bytes, signal);
    } finally {
      await this.registry.close();
    }
  }

  stats() {
    return this.registry.stats();
  }

  override async consume(...args: Parameters<CopyOutput<Pushed>['consume']>): ReturnType<CopyOutput<Pushed>['consume']> {
    try {
      return await super.consume(...args);
    } finally {
      await this.registry.close();
    }
  }
}
