/**
 * `registry://` input: resolve the manifest (choosing a platform from an index), fetch
 * and verify the config, then download layers in parallel (`-j`), each streamed into an
 * owned temp file, decompressed by media type or magic, with the blob digest, blob size
 * and diff_id verified in the same pass. Layers the output already has are not
 * downloaded; a layer listed twice is downloaded once.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { describeDecodeError } from '../../core/codecs/common.js';
import { decodeImageConfig, decodeManifestDocument, type ImageIndex } from '../../core/codecs/oci.js';
import { type Digest, digestHex } from '../../core/digest.js';
import { type ConfigElement, type ImageElement, type LayerDescriptor, type LayerElement } from '../../core/element.js';
import { digestError, inputError, isExplained } from '../../core/errors.js';
import { layerCompression } from '../../core/media-types.js';
import type { ImageInput, InputContext } from '../../core/pipeline/types.js';
import type { PlatformWanted } from '../../core/platform.js';
import type { RegistryReference } from '../../core/uri.js';
import { RegistryClient, type ResolvedImage } from '../registry/client.js';
import type { Credentials } from '../registry/credentials.js';
import { fetchInParallel, fetchLayerForms, repeatsAnEarlierBlob } from './layer-fetch.js';
import type { HttpClient } from '../registry/http.js';

export interface RegistryInputOptions {
  /** The reference as given (host as typed, name normalised). */
  readonly reference: RegistryReference;
  readonly apiHost: string;
  readonly insecure: boolean;
  readonly platform: PlatformWanted;
  readonly http: HttpClient;
  readonly credentials: Credentials | undefined;
  readonly retries: number;
  /** Layers downloaded at once (`?max_workers=`); defaults to the pipeline's parallelism (-j). */
  readonly parallelism?: number;
  readonly label: string;
  /** How the caller turns plain HTTP on, for messages (see RegistryClientOptions). */
  readonly insecureHint?: string;
}

export class RegistryInput implements ImageInput {
  readonly description: string;
  readonly client: RegistryClient;

  constructor(private readonly options: RegistryInputOptions) {
    this.description = options.label;
    this.client = new RegistryClient({
      apiHost: options.apiHost,
      name: options.reference.name,
      insecure: options.insecure,
      http: options.http,
      credentials: options.credentials,
      label: options.label,
      ...(options.insecureHint !== undefined ? { insecureHint: options.insecureHint } : {}),
    });
  }

  /**
   * The index (or Docker manifest list) the reference names, as served and verified;
   * undefined when it names a single manifest. For multi-platform copies.
   */
  async index(signal?: AbortSignal): Promise<{ readonly mediaType: string; readonly raw: Uint8Array; readonly digest: Digest; readonly document: ImageIndex } | undefined> {
    const ref = this.options.reference;
    const got = await this.client.fetchManifest(ref.digest ?? ref.tag, signal);
    const doc = decodeManifestDocument(`${this.options.label}: manifest`, got.bytes, got.mediaType);
    if (E.isLeft(doc)) throw inputError(describeDecodeError(doc.left));
    if (doc.right._tag !== 'Index') return undefined;
    return { mediaType: doc.right.mediaType, raw: got.bytes, digest: got.digest, document: doc.right.index };
  }

  /** Manifest and config, verified, without touching a layer (for `info` and the input itself). */
  async describe(signal?: AbortSignal): Promise<{ resolved: ResolvedImage; config: ConfigElement }> {
    const ref = this.options.reference;
    const resolved = await this.client.resolve(ref.digest ?? ref.tag, this.options.platform, signal);
    const manifest = resolved.manifest;
    const raw = await this.client.fetchSmallBlob(manifest.config, 'config', signal);
    const config = decodeImageConfig(`${this.options.label}: config ${manifest.config.digest}`, raw);
    if (E.isLeft(config)) throw inputError(describeDecodeError(config.left));
    const diffIds = config.right.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length) {
      throw inputError(`${this.options.label}: the manifest lists ${manifest.layers.length} layers but the config's rootfs.diff_ids has ${diffIds.length}`);
    }
    const layers: LayerDescriptor[] = manifest.layers.map((l, index) => ({
      index,
      sourceId: digestHex(l.digest),
      diffId: diffIds[index] as Digest,
      mediaType: l.mediaType,
      size: l.size,
      blob: { digest: l.digest, size: l.size, mediaType: l.mediaType, from: { registry: this.options.apiHost, repository: ref.name } },
    }));
    const image = { name: `${ref.host}/${ref.name}`, tag: ref.tag, registry: ref.host, ...(ref.digest ? { digest: ref.digest } : {}) };
    return {
      resolved,
      config: { _tag: 'Config', image, digest: manifest.config.digest, raw, config: config.right, layers, sourceManifest: { mediaType: resolved.manifestMediaType, raw: resolved.manifestRaw, from: { registry: this.options.apiHost, repository: ref.name } } },
    };
  }

  elements(ctx: InputContext): AsyncIterable<ImageElement> {
    return this.fetch(ctx);
  }

  /** Layers decompressed while downloading (a tar was asked for). */
  private inflated = 0;

  stats() {
    const s = this.options.http.stats;
    return { retries: s.retries, rateLimited: s.rateLimited, requests: s.requests, inflated: this.inflated, downloaded: s.blobBytes };
  }

  async close(): Promise<void> {
    await this.options.http.close();
  }

  private async *fetch(ctx: InputContext): AsyncGenerator<ImageElement, void, undefined> {
    const { effects, owner, signal } = ctx;
    const { resolved, config } = await this.describe(signal);
    yield config;
    const blobs = resolved.manifest.layers;
    const repeated = repeatsAnEarlierBlob(blobs);
    const label = this.options.label;

    const fetchLayer = async (layer: LayerDescriptor, taskSignal: AbortSignal): Promise<LayerElement> => {
      const blob = blobs[layer.index] as (typeof blobs)[number];
      if (repeated(layer.index)) return { _tag: 'Layer', layer, payload: { _tag: 'Skipped', reason: 'duplicate' } };
      const { element, inflated } = await fetchLayerForms(
        {
          layer,
          blob,
          compression: layerCompression(blob.mediaType) ?? 'sniff',
          effects,
          owner,
          signal: taskSignal,
          progress: ctx.progress,
          // One pass over the download: the blob as sent and/or its decompressed tar.
          fill: (sink) => this.client.downloadBlob(blob, sink, this.options.retries, taskSignal),
          failed: (e) => {
            if (isExplained(e) || taskSignal.aborted) return e;
            return digestError(`${label}: layer ${layer.index} blob ${blob.digest} cannot be decompressed (${(e as Error).message}); the registry sent corrupt data`);
          },
          verify: (result) => {
            if (result.rawDigest !== blob.digest) throw digestError(`${label}: layer ${layer.index} blob ${blob.digest} has digest ${result.rawDigest}; the registry sent corrupt data`);
            if (result.content && result.content.digest !== layer.diffId) {
              throw digestError(`${label}: layer ${layer.index} (blob ${blob.digest}) uncompresses to ${result.content.digest}, but the config's diff_id is ${layer.diffId}`);
            }
          },
        },
        await ctx.wants(layer),
      );
      if (inflated) this.inflated++;
      return element;
    };

    yield* fetchInParallel(config.layers, fetchLayer, { effects, owner, signal, concurrency: this.options.parallelism ?? ctx.parallelism, order: ctx.order });
  }
}
