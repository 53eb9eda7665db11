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
import { AbortError, digestError, hasCode, inputError, isExplained, outputError } from '../../core/errors.js';
import { MediaTypes } from '../../core/media-types.js';
import { availablePlatforms, choosePlatform, describePlatform, type PlatformWanted } from '../../core/platform.js';
import { pullScope, pushScope } from '../../core/registry-naming.js';
import type { LayerSink } from '../fs/spool.js';
import { sha256Bytes } from '../fs/hash.js';
import { RegistryAuth } from './auth.js';
import type { Credentials } from './credentials.js';
import {
  BLOB_READ_AHEAD,
  type DocumentResponse,
  headerValue,
  type HttpClient,
  type HttpMethod,
  type HttpRequest,
  type HttpResponse,
  isRetryableError,
  MIN_PROGRESS_BYTES,
  readBodyCapped,
  type RequestBody,
  retryDelay,
  sleep,
  TransferError,
} from './http.js';

export const MANIFEST_ACCEPT = [MediaTypes.ociManifest, MediaTypes.ociIndex, MediaTypes.dockerManifest, MediaTypes.dockerManifestList].join(', ');

export interface ResolvedImage {
  readonly manifest: ImageManifest;
  readonly manifestDigest: Digest;
  readonly manifestMediaType: string;
  /** The manifest's bytes as served (verified against its digest). */
  readonly manifestRaw: Uint8Array;
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
  /** How the caller turns plain HTTP on, in its own words (CLI options or API settings). */
  readonly insecureHint?: string;
  /** Pull (a source; errors are EINPUT) or push (a destination; errors are EOUTPUT). Default pull. */
  readonly access?: 'pull' | 'push';
}

/** A whole answer to a request made with {@link RegistryClient.call}. */
export interface CallResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The body, up to the JSON cap (undefined when larger); empty for HEAD. */
  readonly body: Buffer | undefined;
}

/** The CLI's words for plain HTTP; library callers get {@link API_INSECURE_HINT}. */
export const CLI_INSECURE_HINT = 'add --insecure or ?insecure=true';
export const API_INSECURE_HINT = 'pass insecure: true in the settings, or ?insecure=true in the URI';

/** A TLS handshake answered in plain HTTP: OpenSSL reads the HTTP status line as a bad record. */
function answeredPlainHttp(e: unknown): boolean {
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = err?.code ?? err?.cause?.code;
  const message = `${err?.message ?? ''} ${err?.cause?.message ?? ''}`;
  return code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || /wrong version number|packet length too long|http request/i.test(message);
}

export class RegistryClient {
  private readonly base: string;
  private readonly scope: string;
  private readonly auth: RegistryAuth;

  constructor(private readonly options: RegistryClientOptions) {
    this.base = `${options.insecure ? 'http' : 'https'}://${options.apiHost}`;
    this.scope = options.access === 'push' ? pushScope(options.name) : pullScope(options.name);
    this.auth = new RegistryAuth(options.http, options.apiHost, options.credentials, options.insecure);
  }

  private fail(message: string): Error {
    return this.options.access === 'push' ? outputError(`${this.options.label}: ${message}`) : inputError(`${this.options.label}: ${message}`);
  }

  /** The registry's API root (`https://HOST`), for resolving upload locations. */
  get origin(): string {
    return this.base;
  }

  /**
   * One request with auth, its whole (small) answer read. `path` is under `/v2/` or an
   * absolute URL on the registry (an upload location). With `retry`, connection errors
   * and retryable statuses are retried (only for requests that may be repeated as they
   * are); a streamed body is sent without the whole-document deadline.
   */
  async call(
    path: string,
    init: { readonly method: HttpMethod; readonly headers?: Record<string, string>; readonly body?: RequestBody; readonly retry: boolean },
    what: string,
    signal?: AbortSignal,
  ): Promise<CallResponse> {
    const http = this.options.http;
    const headers = init.headers ?? {};
    const send = async (r: HttpRequest): Promise<CallResponse> => {
      const req = { ...r, method: init.method, ...(init.body !== undefined ? { body: init.body } : {}) };
      if (init.retry && typeof init.body !== 'function') return http.document(req, MAX_JSON_BYTES);
      const response = init.retry ? await http.request(req) : await http.once(req);
      return { statusCode: response.statusCode, headers: response.headers, body: await readBodyCapped(response, MAX_JSON_BYTES, init.method) };
    };
    return this.authorized(path, headers, send, async () => undefined, what, signal, !init.retry);
  }

  /**
   * A request with auth: on a 401, do what the challenge asks once, then send again.
   * `send` is a streaming or a whole-document request; `discard` drops an answer's body.
   */
  private async authorized<R extends { statusCode: number; headers: Record<string, string | string[] | undefined> }>(
    path: string,
    headers: Record<string, string>,
    send: (request: HttpRequest) => Promise<R>,
    discard: (response: R) => Promise<void>,
    what: string,
    signal?: AbortSignal,
    /** Let a retryable network error through as it is (the caller resumes). */
    passRetryable = false,
  ): Promise<R> {
    const url = /^https?:\/\//.test(path) ? path : `${this.base}/v2/${path}`;
    for (let round = 0; ; round++) {
      const request = { url, headers: { ...headers, ...this.auth.headersFor(this.scope) }, ...(signal ? { signal } : {}) };
      let response: R;
      try {
        response = await send(request);
      } catch (e) {
        if (passRetryable && !signal?.aborted && isRetryableError(e)) throw e;
        throw this.networkFailure(e, what, signal);
      }
      if (response.statusCode !== 401 || round >= 2) {
        if (response.statusCode === 401) {
          await discard(response);
          if (this.options.access === 'push') throw this.pushRefused(401);
          throw this.fail(`not authorized (HTTP 401) for ${this.options.name}; check the credentials${this.options.credentials ? ` from ${this.options.credentials.source}` : ' (none were found)'}`);
        }
        if (response.statusCode === 403 && this.options.access === 'push') {
          await discard(response);
          throw this.pushRefused(403);
        }
        return response;
      }
      const challenge = headerValue(response.headers, 'www-authenticate');
      await discard(response);
      if (!(await this.auth.handleUnauthorized(challenge, this.scope, signal))) {
        if (this.options.access === 'push') throw this.pushRefused(401);
        throw this.fail(
          this.options.credentials
            ? `not authorized (HTTP 401) for ${this.options.name}: the registry refused the credentials from ${this.options.credentials.source}; check the username and password`
            : `not authorized (HTTP 401) for ${this.options.name}; give --username/--password or log in with docker/podman`,
        );
      }
    }
  }

  /** A push refused: the scope asked for, and whose credentials (the user; never the secret). */
  private pushRefused(status: 401 | 403): Error {
    const c = this.options.credentials;
    const who = c ? `the credentials of user ${JSON.stringify(c.username)} from ${c.source}` : 'no credentials (none were found)';
    const todo = c ? 'use credentials with push access to this repository' : 'give --username/--password or log in with docker/podman';
    return this.fail(`push refused (HTTP ${status}) for scope ${this.scope} with ${who}; ${todo}`);
  }

  /** The one-line error for a request that failed without an HTTP answer. */
  private networkFailure(e: unknown, what: string, signal?: AbortSignal): Error {
    if (signal?.aborted) return new AbortError(signal.reason);
    if (hasCode(e, 'EABORT')) return e;
    if (isExplained(e)) return this.fail(`${what}: ${e.message}`);
    if (e instanceof TransferError) {
      return this.fail(`${what}: ${e.message} after ${this.options.http.options.retries + 1} attempt(s); the registry is too slow or stalled: try again later, or raise OCCYSTRAP_HTTP_TIMEOUT`);
    }
    const hint = this.options.insecureHint ?? API_INSECURE_HINT;
    if (!this.options.insecure && answeredPlainHttp(e)) return this.fail(`${this.options.apiHost} answered plain HTTP to a TLS request: it is a plain-HTTP registry; to use it, ${hint}`);
    return this.fail(`cannot reach ${this.base} (${describeNetworkError(e)})${this.options.insecure ? '' : `; for a plain-HTTP registry, ${hint}`}`);
  }

  /** GET a blob's body as a stream (retried up to the headers; the caller resumes bodies). */
  private get(path: string, headers: Record<string, string>, what: string, signal?: AbortSignal): Promise<HttpResponse> {
    return this.authorized(path, headers, (r) => this.options.http.request({ ...r, bulk: true }), (r) => r.body.dump(), what, signal);
  }

  /** GET a whole JSON document (manifest, config) under the document deadline, retried. */
  private getDocument(path: string, headers: Record<string, string>, what: string, signal?: AbortSignal): Promise<DocumentResponse> {
    return this.authorized(path, headers, (r) => this.options.http.document(r, MAX_JSON_BYTES), async () => undefined, what, signal);
  }

  private jsonBody(response: DocumentResponse, what: string): Buffer {
    if (!response.body) throw this.fail(`${what} is over the ${MAX_JSON_BYTES}-byte limit for JSON documents`);
    return response.body;
  }

  /** GET a manifest or index by tag or digest; verify its digest when it is known. */
  async fetchManifest(reference: string, signal?: AbortSignal): Promise<{ bytes: Uint8Array; digest: Digest; mediaType: string | undefined }> {
    const what = `manifest ${this.options.name}:${reference}`;
    const response = await this.getDocument(`${this.options.name}/manifests/${reference}`, { accept: MANIFEST_ACCEPT }, what, signal);
    if (response.statusCode === 404) {
      throw this.fail(`${this.options.name}:${reference} not found (HTTP 404); check the name and tag`);
    }
    if (response.statusCode !== 200) {
      throw this.fail(`${what}: HTTP ${response.statusCode}`);
    }
    const bytes = this.jsonBody(response, `manifest ${reference}`);
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
      return { manifest: doc.right.manifest, manifestDigest: first.digest, manifestMediaType: doc.right.mediaType, manifestRaw: first.bytes };
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
      manifestRaw: second.bytes,
      index: { digest: first.digest, mediaType: doc.right.mediaType, document: index },
      platform: describePlatform(chosen.platform as NonNullable<Descriptor['platform']>),
    };
  }

  /** GET a small blob (the config) and verify digest and size. */
  async fetchSmallBlob(descriptor: Descriptor, what: string, signal?: AbortSignal): Promise<Uint8Array> {
    if (descriptor.size > MAX_JSON_BYTES) throw this.fail(`${what} ${descriptor.digest} declares ${descriptor.size} bytes, over the ${MAX_JSON_BYTES}-byte limit`);
    const response = await this.getDocument(`${this.options.name}/blobs/${descriptor.digest}`, {}, `${what} ${descriptor.digest}`, signal);
    if (response.statusCode !== 200) {
      throw this.fail(`${what} ${descriptor.digest}: HTTP ${response.statusCode}`);
    }
    const bytes = this.jsonBody(response, `${what} ${descriptor.digest}`);
    // Size first: a short or long answer is named as such, not as a digest mismatch.
    if (bytes.length !== descriptor.size) {
      throw digestError(`${this.options.label}: ${what} ${descriptor.digest} is ${bytes.length} bytes, ${bytes.length < descriptor.size ? 'shorter' : 'longer'} than the ${descriptor.size} bytes the manifest declares`);
    }
    const actual = sha256Bytes(bytes);
    if (actual !== descriptor.digest) throw digestError(`${this.options.label}: ${what} ${descriptor.digest} has digest ${actual}; the registry sent corrupt data`);
    return bytes;
  }

  /**
   * Stream a blob into `sink`, resuming with `Range` after a broken or stalled transfer
   * instead of starting over (a server that ignores Range is handled by skipping what we
   * have). Any error of the response body is a transfer error, resumed up to `retries`
   * times; a body that ends properly short of the declared size is a short blob (not
   * retried). The caller checks the digests from `sink.end()`.
   */
  async downloadBlob(descriptor: Descriptor, sink: LayerSink, retries: number, signal?: AbortSignal): Promise<void> {
    const digest = descriptor.digest;
    const shorter = (size: number) =>
      digestError(`${this.options.label}: blob ${digest} is ${size} bytes, shorter than the ${descriptor.size} bytes the manifest declares; the registry sent an incomplete blob`);
    let failures = 0;
    for (;;) {
      const offset = sink.received;
      const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
      const response = await this.get(`${this.options.name}/blobs/${digest}`, headers, `blob ${digest}`, signal);
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
        const total = /^bytes \*\/(\d+)$/.exec(headerValue(response.headers, 'content-range') ?? '');
        if (response.statusCode === 416 && total && Number(total[1]) < descriptor.size) throw shorter(Number(total[1]));
        throw this.fail(`blob ${digest}: HTTP ${response.statusCode}`);
      }
      // Progress deadline: fewer than MIN_PROGRESS_BYTES in a window abandons the transfer.
      const windowMs = this.options.http.timeoutMs;
      const reader = new ReadAhead(response.body, BLOB_READ_AHEAD);
      const watchdog = setInterval(() => {
        if (reader.takeArrived() < MIN_PROGRESS_BYTES) {
          response.body.destroy(new TransferError(`fewer than ${MIN_PROGRESS_BYTES} bytes arrived in ${windowMs / 1000} s (OCCYSTRAP_HTTP_TIMEOUT)`));
        }
      }, windowMs);
      try {
        for (;;) {
          let next: Buffer | undefined;
          try {
            next = await reader.next();
          } catch (e) {
            if (e instanceof TransferError) throw e;
            throw new TransferError(describeNetworkError(e), { cause: e });
          }
          if (next === undefined) break;
          this.options.http.stats.blobBytes += next.length;
          let chunk = next;
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
        // The body ended properly. With a length (Content-Length or chunked) that is the
        // whole blob as the registry has it; only a close-delimited body may be a cut.
        const delimited = headerValue(response.headers, 'content-length') !== undefined || headerValue(response.headers, 'transfer-encoding') !== undefined;
        if (delimited || skip > 0) throw shorter(skip > 0 ? offset - skip : sink.received);
        throw new TransferError(`the connection closed after ${sink.received} of ${descriptor.size} bytes`);
      } catch (e) {
        if (signal?.aborted) throw new AbortError(signal.reason);
        if (!isRetryableError(e) || failures >= retries) {
          if (isRetryableError(e)) {
            const advice = /OCCYSTRAP_HTTP_TIMEOUT/.test((e as Error).message) ? '; the registry is too slow or stalled: try again later, or raise OCCYSTRAP_HTTP_TIMEOUT' : '';
            throw this.fail(`blob ${digest}: ${describeNetworkError(e)} after ${failures + 1} attempt(s)${advice}`);
          }
          throw e;
        }
        failures++;
        this.options.http.stats.retries++;
        await sleep(retryDelay(failures - 1, undefined, Date.now()), signal);
      } finally {
        clearInterval(watchdog);
        // Left early (a sink error, too long): stop the transfer rather than let it run on.
        if (!response.body.destroyed) response.body.destroy();
      }
    }
  }

  /** The repository path a blob is fetched from, for messages. */
  blobLabel(digest: Digest): string {
    return `${this.options.name}@${digestHex(digest).slice(0, 12)}`;
  }
}

/**
 * Reads a body ahead of a slow consumer into its own queue (up to `limit` bytes, then it
 * pauses the body). Chunks queued before an error are still handed out, the error after
 * them, so a resumed download starts exactly where the bytes stopped.
 */
class ReadAhead {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private arrived = 0;
  private ended = false;
  private failure: { error: unknown } | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly body: HttpResponse['body'],
    private readonly limit: number,
  ) {
    body.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.queued += chunk.length;
      this.arrived += chunk.length;
      if (this.queued >= this.limit) body.pause();
      this.notify();
    });
    body.on('end', () => {
      this.ended = true;
      this.notify();
    });
    body.on('error', (error: unknown) => {
      this.failure ??= { error };
      this.notify();
    });
    body.on('close', () => {
      if (!this.ended) this.failure ??= { error: new TransferError('the response body closed early') };
      this.notify();
    });
  }

  /** Bytes arrived since the last call. */
  takeArrived(): number {
    const n = this.arrived;
    this.arrived = 0;
    return n;
  }

  async next(): Promise<Buffer | undefined> {
    for (;;) {
      const chunk = this.queue.shift();
      if (chunk) {
        this.queued -= chunk.length;
        if (this.queued < this.limit && this.body.isPaused() && !this.failure) this.body.resume();
        return chunk;
      }
      if (this.failure) throw this.failure.error;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

export function describeNetworkError(e: unknown): string {
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = err?.code ?? err?.cause?.code;
  const message = err?.cause?.message ?? err?.message ?? String(e);
  return code ? `${code}: ${message}` : message;
}
