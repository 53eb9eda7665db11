/**
 * The registry protocol (distribution v2) for pulling: manifests and indexes, platform
 * choice, configs and blobs, each verified against its digest.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import { describeDecodeError, MAX_JSON_BYTES } from '../../core/codecs/common.js';
import type { Descriptor } from '../../core/codecs/common.js';
import { decodeManifestDocument, type ImageIndex, type ImageManifest } from '../../core/codecs/oci.js';
import { type Digest, digestHex, parseDigest } from '../../core/digest.js';
import { AbortError, digestError, inputError } from '../../core/errors.js';
import { MediaTypes } from '../../core/media-types.js';
import { availablePlatforms, choosePlatform, describePlatform, type PlatformWanted } from '../../core/platform.js';
import { pullScope } from '../../core/registry-naming.js';
import type { BlobSink } from '../fs/spool.js';
import { sha256Bytes } from '../fs/hash.js';
import { RegistryAuth } from './auth.js';
import type { Credentials } from './credentials.js';
import { headerValue, type HttpClient, type HttpResponse, isRetryableError, readBodyCapped, retryDelay, sleep } from './http.js';

export const MANIFEST_ACCEPT = [MediaTypes.ociManifest, MediaTypes.ociIndex, MediaTypes.dockerManifest, MediaTypes.dockerManifestList].join(', ');

export interface ResolvedImage {
  readonly manifest: ImageManifest;
  readonly manifestDigest: Digest;
  readonly manifestMediaType: string;
  /** Set when the reference named an index. */
  readonly index?: { readonly digest: Digest; readonly mediaType: string; readonly document: ImageIndex };
  /** The platform chosen from the index, when there was one. */
  readonly platform?: string;
}

export interface RegistryClientOptions {
  readonly apiHost: string;
  readonly name: string;
  readonly insecure: boolean;
  readonly http: HttpClient;
  readonly credentials: Credentials | undefined;
  /** How the registry is named in messages. */
  readonly label: string;
}

export class RegistryClient {
  private readonly base: string;
  private readonly scope: string;
  private readonly auth: RegistryAuth;

  constructor(private readonly options: RegistryClientOptions) {
    this.base = `${options.insecure ? 'http' : 'https'}://${options.apiHost}`;
    this.scope = pullScope(options.name);
    this.auth = new RegistryAuth(options.http, options.apiHost, options.credentials, options.insecure);
  }

  private fail(message: string): Error {
    return inputError(`${this.options.label}: ${message}`);
  }

  /** GET with auth: on a 401, do what the challenge asks once, then retry. */
  private async get(path: string, headers: Record<string, string>, signal?: AbortSignal, retries?: 'no-retries'): Promise<HttpResponse> {
    const url = `${this.base}/v2/${path}`;
    for (let round = 0; ; round++) {
      const request = { url, headers: { ...headers, ...this.auth.headersFor(this.scope) }, ...(signal ? { signal } : {}) };
      let response: HttpResponse;
      try {
        response = retries === 'no-retries' ? await this.options.http.once(request) : await this.options.http.request(request);
      } catch (e) {
        if (signal?.aborted) throw new AbortError(signal.reason);
        throw this.fail(`cannot reach ${this.base} (${describeNetworkError(e)})${this.options.insecure ? '' : '; for a plain-HTTP registry add --insecure or ?insecure=true'}`);
      }
      if (response.statusCode !== 401 || round >= 2) {
        if (response.statusCode === 401) {
          await response.body.dump();
          throw this.fail(`not authorized (HTTP 401) for ${this.options.name}; check the credentials${this.options.credentials ? ` from ${this.options.credentials.source}` : ' (none were found)'}`);
        }
        return response;
      }
      if (!(await this.auth.handleUnauthorized(response, this.scope, signal))) {
        throw this.fail(
          this.options.credentials
            ? `not authorized (HTTP 401) for ${this.options.name}: the registry refused the credentials from ${this.options.credentials.source}; check the username and password`
            : `not authorized (HTTP 401) for ${this.options.name}; give --username/--password or log in with docker/podman`,
        );
      }
    }
  }

  private async readJsonBody(response: HttpResponse, what: string): Promise<Uint8Array> {
    const body = await readBodyCapped(response, MAX_JSON_BYTES);
    if (!body) throw this.fail(`${what} is over the ${MAX_JSON_BYTES}-byte limit for JSON documents`);
    return body;
  }

  /** GET a manifest or index by tag or digest; verify its digest when it is known. */
  async fetchManifest(reference: string, signal?: AbortSignal): Promise<{ bytes: Uint8Array; digest: Digest; mediaType: string | undefined }> {
    const response = await this.get(`${this.options.name}/manifests/${reference}`, { accept: MANIFEST_ACCEPT }, signal);
    if (response.statusCode === 404) {
      await response.body.dump();
      throw this.fail(`${this.options.name}:${reference} not found (HTTP 404); check the name and tag`);
    }
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw this.fail(`manifest ${this.options.name}:${reference}: HTTP ${response.statusCode}`);
    }
    const bytes = await this.readJsonBody(response, `manifest ${reference}`);
    const digest = sha256Bytes(bytes);
    const expected = reference.includes(':') ? reference : headerValue(response.headers, 'docker-content-digest');
    const parsed = expected === undefined ? undefined : parseDigest(expected);
    if (parsed && E.isRight(parsed)) {
      const algorithm = parsed.right.slice(0, parsed.right.indexOf(':'));
      const actual = algorithm === 'sha256' ? digest : `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
      if (actual !== parsed.right) {
        throw digestError(`${this.options.label}: manifest ${this.options.name}@${parsed.right} has digest ${actual}; the registry sent other bytes than it named`);
      }
    }
    return { bytes, digest, mediaType: headerValue(response.headers, 'content-type') };
  }

  /** Resolve a tag or digest to one image manifest, choosing a platform from an index. */
  async resolve(reference: string, platform: PlatformWanted, signal?: AbortSignal): Promise<ResolvedImage> {
    const first = await this.fetchManifest(reference, signal);
    const doc = decodeManifestDocument(`${this.options.label}: manifest`, first.bytes, first.mediaType);
    if (E.isLeft(doc)) throw inputError(describeDecodeError(doc.left));
    if (doc.right._tag === 'Manifest') {
      return { manifest: doc.right.manifest, manifestDigest: first.digest, manifestMediaType: doc.right.mediaType };
    }
    const index = doc.right.index;
    const chosen = choosePlatform(index.manifests, platform);
    if (!chosen) {
      const offered = availablePlatforms(index.manifests);
      throw this.fail(`no image for ${describePlatform(platform)} in the index (available: ${offered.join(', ') || 'none'}); choose one with --os/--architecture/--variant or ?os=&arch=&variant=`);
    }
    const second = await this.fetchManifest(chosen.digest, signal);
    const inner = decodeManifestDocument(`${this.options.label}: manifest ${chosen.digest}`, second.bytes, second.mediaType);
    if (E.isLeft(inner)) throw inputError(describeDecodeError(inner.left));
    if (inner.right._tag !== 'Manifest') throw this.fail(`index entry ${chosen.digest} is itself an index; nested indexes are not supported`);
    return {
      manifest: inner.right.manifest,
      manifestDigest: second.digest,
      manifestMediaType: inner.right.mediaType,
      index: { digest: first.digest, mediaType: doc.right.mediaType, document: index },
      platform: describePlatform(chosen.platform as NonNullable<Descriptor['platform']>),
    };
  }

  /** GET a small blob (the config) and verify digest and size. */
  async fetchSmallBlob(descriptor: Descriptor, what: string, signal?: AbortSignal): Promise<Uint8Array> {
    if (descriptor.size > MAX_JSON_BYTES) throw this.fail(`${what} ${descriptor.digest} declares ${descriptor.size} bytes, over the ${MAX_JSON_BYTES}-byte limit`);
    const response = await this.get(`${this.options.name}/blobs/${descriptor.digest}`, {}, signal);
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw this.fail(`${what} ${descriptor.digest}: HTTP ${response.statusCode}`);
    }
    const bytes = await this.readJsonBody(response, `${what} ${descriptor.digest}`);
    const actual = sha256Bytes(bytes);
    if (actual !== descriptor.digest) throw digestError(`${this.options.label}: ${what} ${descriptor.digest} has digest ${actual}; the registry sent corrupt data`);
    if (bytes.length !== descriptor.size) throw digestError(`${this.options.label}: ${what} ${descriptor.digest} is ${bytes.length} bytes, the manifest says ${descriptor.size}`);
    return bytes;
  }

  /**
   * Stream a blob into `sink`, resuming with `Range` after a broken connection instead of
   * starting over (a server that ignores Range is handled by skipping what we have).
   * The caller checks the digests from `sink.end()`.
   */
  async downloadBlob(descriptor: Descriptor, sink: BlobSink, retries: number, signal?: AbortSignal): Promise<void> {
    const digest = descriptor.digest;
    let failures = 0;
    for (;;) {
      const offset = sink.received;
      const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
      const response = await this.get(`${this.options.name}/blobs/${digest}`, headers, signal);
      let skip = 0;
      if (response.statusCode === 206 && offset > 0) {
        const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(headerValue(response.headers, 'content-range') ?? '');
        if (!range || Number(range[1]) !== offset) {
          await response.body.dump();
          throw this.fail(`blob ${digest}: asked to resume at byte ${offset}, the registry sent ${headerValue(response.headers, 'content-range') ?? 'no Content-Range'}`);
        }
      } else if (response.statusCode === 200) {
        skip = offset; // Range ignored: drop what we already have
      } else {
        await response.body.dump();
        throw this.fail(`blob ${digest}: HTTP ${response.statusCode}`);
      }
      try {
        for await (const raw of response.body) {
          let chunk = raw as Buffer;
          if (skip > 0) {
            if (chunk.length <= skip) {
              skip -= chunk.length;
              continue;
            }
            chunk = chunk.subarray(skip);
            skip = 0;
          }
          if (sink.received + chunk.length > descriptor.size) {
            response.body.destroy();
            throw digestError(`${this.options.label}: blob ${digest} is longer than the ${descriptor.size} bytes the manifest declares`);
          }
          await sink.write(chunk);
        }
        if (sink.received === descriptor.size) return;
        throw Object.assign(new Error(`blob ended after ${sink.received} of ${descriptor.size} bytes`), { code: 'ECONNRESET' });
      } catch (e) {
        if (signal?.aborted) throw new AbortError(signal.reason);
        if (!isRetryableError(e) || failures >= retries) {
          if (isRetryableError(e)) throw this.fail(`blob ${digest}: ${describeNetworkError(e)} after ${failures + 1} attempt(s)`);
          throw e;
        }
        failures++;
        this.options.http.stats.retries++;
        await sleep(retryDelay(failures - 1, undefined, Date.now()), signal);
      }
    }
  }

  /** The repository path a blob is fetched from, for messages. */
  blobLabel(digest: Digest): string {
    return `${this.options.name}@${digestHex(digest).slice(0, 12)}`;
  }
}

export function describeNetworkError(e: unknown): string {
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = err?.code ?? err?.cause?.code;
  const message = err?.cause?.message ?? err?.message ?? String(e);
  return code ? `${code}: ${message}` : message;
}
