/**
 * The registry's push protocol (distribution API v2): blobs checked with HEAD, uploaded
 * whole (POST + PUT) when small and in chunks (POST, PATCH…, PUT) when large or when the
 * registry refuses a whole body (413); a chunk that fails is resumed from the offset the
 * registry reports (GET on the upload, its `Range`), not from zero; upload sessions still
 * open when the run stops are cancelled (DELETE). Manifests are put last.
 *
 * @module
 */
import { createReadStream } from 'node:fs';
import { PassThrough, Readable, Transform } from 'node:stream';
import type { Digest } from '../../core/digest.js';
import { sha256Bytes } from '../fs/hash.js';
import { AbortError, OccystrapError, outputError } from '../../core/errors.js';
import { type CallResponse, describeNetworkError, type RegistryClient } from './client.js';
import { headerValue, isRetryableError, isRetryableStatus, retryDelay, sleep, TransferError } from './http.js';

/** Blobs up to this size go in one PUT; larger ones in chunks (OCCYSTRAP_PUSH_CHUNK_BYTES). */
export const DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024;
/** The registry may ask for larger chunks (`OCI-Chunk-Min-Length`), never for more than this. */
const MAX_CHUNK_BYTES = 1024 * 1024 * 1024;

export interface BlobPusherOptions {
  readonly client: RegistryClient;
  /** `HOST/NAME` in messages. */
  readonly label: string;
  /** The repository pushed to (`NAME`, as in `/v2/NAME/…`). */
  readonly name: string;
  readonly retries: number;
  /** Whole-PUT limit and chunk size, bytes. */
  readonly chunkBytes?: number;
}

/** An open upload session: its URL now (each answer names the next) and the smallest chunk it takes. */
interface Session {
  url: string;
  readonly minChunk: number;
}

/** How to read the bytes of a blob from `start` to `end` inclusive, afresh for each attempt. */
export type BlobSource = (start: number, end: number) => Readable;

/**
 * An upload fed while its bytes arrive (see {@link BlobPusher.streamUpload}): `write` waits
 * while the request body is full and never rejects; `done` says whether the registry took
 * the blob, and never rejects either.
 */
export interface StreamedUpload {
  write(chunk: Uint8Array): Promise<void>;
  end(): void;
  abort(reason: Error): void;
  readonly done: Promise<boolean>;
}

/** Bytes a streamed upload holds before `write` waits for the registry to take them. */
const STREAM_BUFFER_BYTES = 4 * 1024 * 1024;

/** Counters for the summary and the tests. */
export interface PushStats {
  /** Blob bytes sent in request bodies (retried parts included). */
  bytesSent: number;
  /** Blobs mounted from another repository of the registry (nothing sent). */
  blobsMounted: number;
  chunksResumed: number;
}

export class BlobPusher {
  readonly stats: PushStats = { bytesSent: 0, blobsMounted: 0, chunksResumed: 0 };
  /** Upload sessions opened and not yet finished (their current URL): cancelled by {@link cancelOpenUploads}. */
  private readonly open = new Set<Session>();
  private readonly chunkBytes: number;

  constructor(private readonly options: BlobPusherOptions) {
    this.chunkBytes = Math.max(1, options.chunkBytes ?? DEFAULT_CHUNK_BYTES);
  }

  private get client(): RegistryClient {
    return this.options.client;
  }

  private fail(message: string): Error {
    return outputError(`${this.options.label}: ${message}`);
  }

  private refused(what: string, r: CallResponse): Error {
    const detail = registryErrorText(r.body);
    if (r.statusCode === 403) return this.fail(`${what}: the registry refused the push (HTTP 403${detail}); the credentials lack push access to this repository`);
    return this.fail(`${what}: HTTP ${r.statusCode}${detail}`);
  }

  /** The size the registry has for `digest`, or undefined when it does not have it. */
  async exists(digest: Digest, signal?: AbortSignal): Promise<number | undefined> {
    const r = await this.client.call(`${this.name}/blobs/${digest}`, { method: 'HEAD', retry: true }, `blob ${digest}`, signal);
    if (r.statusCode === 404) return undefined;
    if (r.statusCode !== 200) throw this.refused(`checking blob ${digest}`, r);
    const length = Number(headerValue(r.headers, 'content-length'));
    return Number.isSafeInteger(length) ? length : 0;
  }

  private get name(): string {
    return this.options.name;
  }

  /**
   * Mount `digest` from repository `from` of the same registry (`POST ?mount=&from=`).
   * True when the registry did (201); a registry that would rather take an upload answers
   * 202 with a session, which is cancelled here (the caller uploads as usual).
   */
  async mount(digest: Digest, from: string, signal?: AbortSignal): Promise<boolean> {
    const query = `mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`;
    const r = await this.client.call(`${this.name}/blobs/uploads/?${query}`, { method: 'POST', headers: { 'content-length': '0' }, body: new Uint8Array(0), retry: true }, `mounting blob ${digest} from ${from}`, signal);
    if (r.statusCode === 201) {
      this.stats.blobsMounted++;
      return true;
    }
    if (r.statusCode === 202 && headerValue(r.headers, 'location')) {
      const session: Session = { url: this.location(r, `the mount of ${digest}`), minChunk: 0 };
      this.open.add(session);
      await this.cancel(session);
      return false;
    }
    // Refused (no read access to `from`, mounts disabled): upload instead.
    return false;
  }

  /** Upload a blob the registry does not have; the registry checks `digest` (and so do we). */
  async upload(digest: Digest, size: number, source: BlobSource, signal?: AbortSignal): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const session = await this.startUpload(digest, signal);
      try {
        const chunked = size > this.chunkBytes || session.minChunk > 0;
        if (!chunked) {
          const r = await this.putWhole(session.url, digest, size, source, signal);
          if (r === 'too large') await this.sendChunks(session, digest, size, source, 0, signal);
        } else {
          await this.sendChunks(session, digest, size, source, session.minChunk, signal);
        }
        this.open.delete(session);
        return;
      } catch (e) {
        // Whatever happened (a stop too), the session is cancelled, not left open.
        await this.cancel(session);
        if (signal?.aborted) throw new AbortError(signal.reason);
        // A whole PUT that broke, or chunks the registry cannot resume (RestartUpload): start
        // again with a new session.
        if (!isRetryableError(e) || attempt >= this.options.retries) throw this.explain(e, `uploading blob ${digest}`);
        await sleep(retryDelay(attempt, undefined, Date.now()), signal);
      }
    }
  }

  private explain(e: unknown, what: string): unknown {
    if (OccystrapError.is(e)) return e;
    return this.fail(`${what}: ${describeNetworkError(e)} after ${this.options.retries + 1} attempt(s)`);
  }

  /** POST a new upload session: its absolute URL and the smallest chunk the registry takes. */
  private async startUpload(digest: Digest, signal?: AbortSignal): Promise<Session> {
    const r = await this.client.call(`${this.name}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' }, body: new Uint8Array(0), retry: true }, `starting the upload of ${digest}`, signal);
    if (r.statusCode !== 202 && r.statusCode !== 200 && r.statusCode !== 201) throw this.refused(`starting the upload of blob ${digest}`, r);
    const min = Number(headerValue(r.headers, 'oci-chunk-min-length') ?? '0');
    const session: Session = { url: this.location(r, `the upload of ${digest}`), minChunk: Number.isSafeInteger(min) && min > 0 ? Math.min(min, MAX_CHUNK_BYTES) : 0 };
    this.open.add(session);
    return session;
  }

  private location(r: CallResponse, what: string): string {
    const raw = headerValue(r.headers, 'location');
    if (!raw) throw this.fail(`${what}: the registry answered ${r.statusCode} without a Location`);
    try {
      return new URL(raw, this.client.origin).href;
    } catch {
      throw this.fail(`${what}: the registry sent an invalid Location ${JSON.stringify(raw)}`);
    }
  }

  private withDigest(url: string, digest: Digest): string {
    const u = new URL(url);
    u.searchParams.set('digest', digest);
    return u.href;
  }

  private counted(source: BlobSource, start: number, end: number): () => Readable {
    return () => {
      // A Transform, not a 'data' listener: that would start the flow before the request reads it.
      const count = new Transform({
        transform: (chunk: Buffer, _encoding, done) => {
          this.stats.bytesSent += chunk.length;
          done(null, chunk);
        },
      });
      const stream = source(start, end);
      stream.once('error', (e) => count.destroy(e));
      return stream.pipe(count);
    };
  }

  /** One PUT with the whole blob; `too large` when the registry wants chunks (413). */
  private async putWhole(url: string, digest: Digest, size: number, source: BlobSource, signal?: AbortSignal): Promise<'done' | 'too large'> {
    const body = size === 0 ? new Uint8Array(0) : this.counted(source, 0, size - 1);
    const r = await this.client.call(
      this.withDigest(url, digest),
      { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) }, body, retry: false },
      `uploading blob ${digest}`,
      signal,
    );
    if (r.statusCode === 413) return 'too large';
    if (!stored(r.statusCode)) throw this.refusedOrRetry(`uploading blob ${digest}`, r);
    return 'done';
  }

  /** A retryable status (408, 429, 5xx) becomes a transfer error, retried by the caller's loop. */
  private refusedOrRetry(what: string, r: CallResponse): Error {
    if (isRetryableStatus(r.statusCode)) return new TransferError(`${what}: HTTP ${r.statusCode}`);
    return this.refused(what, r);
  }

  /**
   * PATCH the blob in chunks, then PUT the digest. A chunk that fails is resumed from what
   * the registry says it has (GET on the upload: `Range: 0-N`), up to `retries` times.
   */
  private async sendChunks(session: Session, digest: Digest, size: number, source: BlobSource, minChunk: number, signal?: AbortSignal): Promise<void> {
    const chunk = Math.max(this.chunkBytes, minChunk);
    let offset = 0;
    let failures = 0;
    while (offset < size) {
      const end = Math.min(size, offset + chunk) - 1;
      let r: CallResponse;
      try {
        r = await this.client.call(
          session.url,
          {
            method: 'PATCH',
            headers: { 'content-type': 'application/octet-stream', 'content-length': String(end - offset + 1), 'content-range': `${offset}-${end}` },
            body: this.counted(source, offset, end),
            retry: false,
          },
          `uploading blob ${digest}`,
          signal,
        );
        if (r.statusCode !== 202 && r.statusCode !== 204) throw this.refusedOrRetry(`uploading blob ${digest} (bytes ${offset}-${end})`, r);
      } catch (e) {
        if (signal?.aborted) throw new AbortError(signal.reason);
        if (!isRetryableError(e) || failures >= this.options.retries) throw e;
        failures++;
        await sleep(retryDelay(failures - 1, undefined, Date.now()), signal);
        const status = await this.uploadStatus(session, signal);
        this.stats.chunksResumed++;
        offset = status.next;
        continue;
      }
      session.url = this.location(r, `the upload of ${digest}`);
      const next = rangeEnd(headerValue(r.headers, 'range'));
      offset = next !== undefined ? next + 1 : end + 1;
    }
    const done = await this.client.call(
      this.withDigest(session.url, digest),
      { method: 'PUT', headers: { 'content-length': '0' }, body: new Uint8Array(0), retry: true },
      `finishing the upload of blob ${digest}`,
      signal,
    );
    if (!stored(done.statusCode)) throw this.refused(`finishing the upload of blob ${digest}`, done);
  }

  /**
   * Where an upload stands: the registry's `Range: 0-N` (next byte N+1; none: 0). A
   * registry that lost track of a session after a broken chunk (distribution answers 404
   * BLOB_UPLOAD_INVALID: its state no longer matches what it stored) cannot resume it:
   * that is a {@link RestartUpload}, and the upload starts again in a new session.
   */
  private async uploadStatus(session: Session, signal?: AbortSignal): Promise<{ next: number }> {
    const r = await this.client.call(session.url, { method: 'GET', retry: true }, 'asking where an upload stands', signal);
    if (r.statusCode === 404 || r.statusCode === 416) throw new RestartUpload(`the registry cannot resume the upload (HTTP ${r.statusCode}${registryErrorText(r.body)})`);
    if (r.statusCode !== 204 && r.statusCode !== 200) throw this.refused('asking where an upload stands', r);
    const end = rangeEnd(headerValue(r.headers, 'range'));
    if (headerValue(r.headers, 'location')) session.url = this.location(r, 'an upload');
    return { next: end !== undefined ? end + 1 : 0 };
  }

  /** Cancel one upload session (best effort: a registry may not support DELETE). */
  private async cancel(session: Session): Promise<void> {
    if (!this.open.delete(session)) return;
    try {
      await this.client.call(session.url, { method: 'DELETE', retry: false }, 'cancelling an upload');
    } catch {
      // The registry expires abandoned sessions itself.
    }
  }

  /** Cancel every upload still open (the run failed or was stopped). */
  async cancelOpenUploads(): Promise<void> {
    await Promise.all([...this.open].map((session) => this.cancel(session)));
  }

  /**
   * An upload of blob `digest` (`size` bytes) fed as the bytes arrive: one session, one
   * `PUT ?digest=` whose body is what `write` gives, sent while it is given. The session is
   * opened (POST) while the first bytes are already buffered, so the download does not wait
   * for it. The registry checks the digest when the body ends. A streamed upload is never
   * retried (its bytes are gone): when the registry will not open a session, wants chunks
   * (`OCI-Chunk-Min-Length`) or fails the PUT, `done` is false, the session is cancelled,
   * and the caller uploads the file instead.
   *
   * - Cancellation: `signal` aborts the upload until `end` is called (the fetch feeding it
   *   stopped); after that only `abort` does. The session is cancelled either way.
   */
  streamUpload(digest: Digest, size: number, signal?: AbortSignal): StreamedUpload {
    const body = new PassThrough({ highWaterMark: STREAM_BUFFER_BYTES });
    // Its failures are the request's, seen through `done`.
    body.on('error', () => undefined);
    // The request outlives the fetch that feeds it (its task ends before the registry
    // answers), so it has its own signal: the caller's until `end`, then only `abort`.
    const request = new AbortController();
    const follow = () => request.abort(signal?.reason);
    if (signal?.aborted) follow();
    else signal?.addEventListener('abort', follow, { once: true });
    let failed = false;
    let given = false;
    const fail = () => {
      failed = true;
      signal?.removeEventListener('abort', follow);
      body.destroy();
      request.abort(new AbortError('the streamed upload stopped'));
    };
    const send = async (): Promise<boolean> => {
      let session: Session;
      try {
        // Not stopped by `abort`: a POST cut short may still open a session nobody could
        // cancel. It is small; once it answers, a stopped upload cancels the session.
        session = await this.startUpload(digest);
      } catch {
        return false;
      }
      try {
        if (failed || (session.minChunk > 0 && size > session.minChunk)) return false;
        const r = await this.client.call(
          this.withDigest(session.url, digest),
          {
            method: 'PUT',
            headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
            // Sent once: a second attempt (a 401 answered, a redirect) finds no bytes and fails.
            body: () => {
              if (given) return Readable.from((async function* () { throw new TransferError('a streamed upload cannot be sent twice'); })());
              given = true;
              return body;
            },
            retry: false,
          },
          `uploading blob ${digest}`,
          request.signal,
        );
        if (!stored(r.statusCode)) return false;
        this.open.delete(session);
        return true;
      } catch {
        return false;
      } finally {
        if (this.open.has(session)) await this.cancel(session);
      }
    };
    const done = send().then((ok) => {
      if (!ok) fail();
      return ok;
    });
    return {
      write: async (chunk) => {
        // The request may have destroyed the body already (its failure not yet seen here).
        if (failed || body.destroyed) return;
        this.stats.bytesSent += chunk.length;
        if (body.write(chunk) || body.destroyed) return;
        await new Promise<void>((resolve) => {
          const settle = () => {
            body.off('drain', settle);
            body.off('close', settle);
            resolve();
          };
          body.on('drain', settle);
          body.on('close', settle);
          if (body.destroyed) settle();
        });
      },
      end: () => {
        signal?.removeEventListener('abort', follow);
        if (!failed) body.end();
      },
      abort: () => fail(),
      done,
    };
  }

  /** Upload a file's bytes as blob `digest` (read afresh for each attempt or chunk). */
  uploadFile(digest: Digest, size: number, path: string, signal?: AbortSignal): Promise<void> {
    return this.upload(digest, size, (start, end) => createReadStream(path, { start, end, highWaterMark: 1 << 20 }), signal);
  }

  /** Upload small bytes (a config) unless the registry has them. */
  async ensureBytes(bytes: Uint8Array, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    if ((await this.exists(digest, signal)) !== undefined) return false;
    await this.upload(digest, bytes.length, (start, end) => Readable.from([Buffer.from(bytes.subarray(start, end + 1))]), signal);
    return true;
  }

  /** PUT the manifest under `reference` (a tag or its digest); returns its digest. */
  async putManifest(reference: string, mediaType: string, bytes: Uint8Array, signal?: AbortSignal): Promise<Digest> {
    const digest = sha256Bytes(bytes);
    const r = await this.client.call(
      `${this.name}/manifests/${reference}`,
      { method: 'PUT', headers: { 'content-type': mediaType, 'content-length': String(bytes.length) }, body: bytes, retry: true },
      `putting the manifest ${reference}`,
      signal,
    );
    if (!stored(r.statusCode)) throw this.refused(`putting the manifest ${reference}`, r);
    const said = headerValue(r.headers, 'docker-content-digest');
    if (said !== undefined && said !== digest) throw this.fail(`the registry stored the manifest as ${said}, but its bytes hash to ${digest}`);
    return digest;
  }

}

/** The registry stored what was put: 201 Created (some registries answer 200 or 204). */
function stored(status: number): boolean {
  return status === 201 || status === 200 || status === 204;
}

/** An upload the registry cannot resume: start it again in a new session (retried like a broken connection). */
class RestartUpload extends TransferError {}

/** The last byte of a `Range: 0-N` (or `bytes=0-N`) header. */
function rangeEnd(range: string | undefined): number | undefined {
  const m = /^(?:bytes=)?0-(\d+)$/.exec(range?.trim() ?? '');
  return m ? Number(m[1]) : undefined;
}

/** ` (CODE: message)` from a registry's JSON error body, if it has one. */
function registryErrorText(body: Buffer | undefined): string {
  if (!body || body.length === 0) return '';
  try {
    const doc = JSON.parse(body.toString('utf8')) as { errors?: { code?: string; message?: string }[] };
    const first = doc.errors?.[0];
    if (!first) return '';
    return `: ${[first.code, first.message].filter(Boolean).join(' ').slice(0, 200)}`;
  } catch {
    return '';
  }
}
