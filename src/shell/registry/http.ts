/**
 * HTTP for registries: one undici Agent (a pool per origin, connections = -j), redirects
 * followed here (at most MAX_REDIRECTS, a loop is an error naming the URL) with
 * credentials dropped across origins, retries with exponential backoff and jitter on
 * connection errors, 408, 429 and 5xx (honouring Retry-After), an optional
 * requests-per-second limit shared by every worker, and counters for the summary.
 *
 * Deadlines (OCCYSTRAP_HTTP_TIMEOUT, default 60 s): a JSON document (`document()`) must
 * arrive whole within it, or the attempt is abandoned and retried; blob readers use it
 * as the progress window (see MIN_PROGRESS_BYTES). undici's own timeouts only catch
 * silence, not a peer dripping a byte now and then.
 *
 * Never the global fetch or dispatcher: every request names this client's dispatcher.
 *
 * @module
 */
import type { Dispatcher } from 'undici';
import { Agent } from './undici-agent.js';
import type { Readable } from 'node:stream';
import { BulkHttp } from './bulk-http.js';
import { AbortError, inputError, usageError } from '../../core/errors.js';

export class RequestStats {
  requests = 0;
  retries = 0;
  /** Responses with status 429. */
  rateLimited = 0;
  /** Blob bytes that arrived, retried and dropped ones included (what crossed the network). */
  blobBytes = 0;
}

/** Spaces requests at least 1/rate seconds apart, across all callers. */
export class RateLimiter {
  private next = 0;
  constructor(private readonly perSecond: number) {}

  async acquire(signal?: AbortSignal): Promise<void> {
    const interval = 1000 / this.perSecond;
    const now = Date.now();
    const at = Math.max(now, this.next);
    this.next = at + interval;
    if (at > now) await sleep(at - now, signal);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError(signal.reason));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortError(signal?.reason));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Longest we wait between attempts, whatever Retry-After says. */
export const MAX_RETRY_DELAY_MS = 60_000;

/** Delay before retry `attempt` (0-based): Retry-After when given, else 2^attempt × 500 ms with full jitter. */
export function retryDelay(attempt: number, retryAfter: string | undefined, now: number, random: () => number = Math.random): number {
  if (retryAfter !== undefined) {
    const trimmed = retryAfter.trim();
    if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed) * 1000, MAX_RETRY_DELAY_MS);
    const date = Date.parse(trimmed);
    if (!Number.isNaN(date)) return Math.min(Math.max(date - now, 0), MAX_RETRY_DELAY_MS);
  }
  const ceiling = Math.min(500 * 2 ** attempt, 10_000);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  // A body cut short: a keep-alive socket closing ("other side closed" is UND_ERR_SOCKET),
  // or a `Connection: close` response ending before its Content-Length.
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ECONNABORTED',
]);

/** A transfer given up by us (too slow, or its body broke): retried like a connection error. */
export class TransferError extends Error {
  readonly retryable = true;
}

export function isRetryableError(e: unknown): boolean {
  if (e instanceof TransferError) return true;
  const code = (e as { code?: string })?.code;
  if (code && RETRYABLE_CODES.has(code)) return true;
  const cause = (e as { cause?: unknown })?.cause;
  return cause !== undefined && cause !== e && isRetryableError(cause);
}

export interface HttpClientOptions {
  readonly connections: number;
  readonly retries: number;
  readonly rateLimit?: number | undefined;
  readonly userAgent: string;
  /** Whole-document deadline and blob progress window, ms (default DEFAULT_TIMEOUT_MS). */
  readonly timeoutMs?: number | undefined;
}

export const DEFAULT_TIMEOUT_MS = 60_000;
/** A blob body delivering fewer bytes than this in one timeout window is abandoned (about 1 KiB/s at 60 s). */
export const MIN_PROGRESS_BYTES = 64 * 1024;
/** Redirects followed for one request. */
export const MAX_REDIRECTS = 10;

/** OCCYSTRAP_HTTP_TIMEOUT (seconds, 1 to 3600) as ms; a bad value is a usage error. */
export function timeoutFromEnv(env: NodeJS.ProcessEnv): number {
  const raw = env['OCCYSTRAP_HTTP_TIMEOUT'];
  if (raw === undefined || raw === '') return DEFAULT_TIMEOUT_MS;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1 || Number(raw) > 3600) {
    throw usageError(`OCCYSTRAP_HTTP_TIMEOUT takes a whole number of seconds from 1 to 3600, got ${JSON.stringify(raw)}`);
  }
  return Number(raw) * 1000;
}

/** A response read whole (JSON documents): `body` is undefined when it was over the limit. */
export interface DocumentResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer | undefined;
}

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * A request body: bytes, or a factory that makes a fresh stream for each attempt (a retry
 * or a 307/308 redirect sends the body again).
 */
export type RequestBody = Uint8Array | (() => Readable);

export interface HttpRequest {
  readonly url: string;
  readonly method?: HttpMethod;
  readonly body?: RequestBody;
  readonly headers?: Record<string, string>;
  readonly signal?: AbortSignal;
  /** A large body read as a stream (a blob): sent over node:http (see bulk-http.ts). */
  readonly bulk?: boolean;
}

/**
 * How far a blob body is read ahead of its sink: the download keeps going while the sink
 * inflates or writes (a 1 MiB read-ahead measured slower), and bytes queued before a cut
 * still count for the resume. (It began as the way around undici 7's assertion on a paused
 * `Connection: close` parser, nodejs/undici#5360; blob bodies now travel over node:http,
 * see bulk-http.ts.)
 */
export const BLOB_READ_AHEAD = 4 * 1024 * 1024;

/** A response whose body is read as a stream; `dump()` discards the rest of it. */
export interface HttpResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Readable & { dump(): Promise<void> };
}

/** An attempt answered with a retryable status: retry, honouring its Retry-After. */
class RetryLater {
  constructor(readonly retryAfter: string | undefined) {}
}

export class HttpClient {
  readonly stats = new RequestStats();
  readonly timeoutMs: number;
  private readonly dispatcher: Dispatcher;
  private readonly bulk: BulkHttp;
  private readonly limiter: RateLimiter | undefined;

  constructor(readonly options: HttpClientOptions) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.dispatcher = new Agent({
      connections: options.connections,
      pipelining: 1,
      connect: { timeout: Math.min(10_000, this.timeoutMs) },
      headersTimeout: Math.min(30_000, this.timeoutMs),
      bodyTimeout: this.timeoutMs,
    });
    this.bulk = new BulkHttp(options.connections);
    this.limiter = options.rateLimit ? new RateLimiter(options.rateLimit) : undefined;
  }

  /**
   * One request, no retries (callers that resume bodies drive their own loop). Redirects
   * are followed; Authorization and Cookie are not sent to another origin.
   */
  async once(req: HttpRequest, firstSlotTaken = false): Promise<HttpResponse> {
    let url = new URL(req.url);
    let headers: Record<string, string> = { 'user-agent': this.options.userAgent, ...req.headers };
    let method: HttpMethod = req.method ?? 'GET';
    let body = req.body;
    const visited = new Set<string>();
    for (let hops = 0; ; hops++) {
      visited.add(url.href);
      if (hops > 0 || !firstSlotTaken) await this.limiter?.acquire(req.signal);
      this.stats.requests++;
      // The final headers within timeoutMs: undici's headersTimeout restarts on every
      // 1xx, so endless `102 Processing` would hold the request forever. A streamed
      // body (an upload) may take longer to send than that: undici's idle timeouts watch it.
      const headersDeadline = new AbortController();
      const timer = typeof body === 'function' ? undefined : setTimeout(() => headersDeadline.abort(), this.timeoutMs);
      let response: HttpResponse;
      try {
        const signal = req.signal ? AbortSignal.any([req.signal, headersDeadline.signal]) : headersDeadline.signal;
        const payload = typeof body === 'function' ? body() : body;
        response =
          req.bulk && payload === undefined
            ? await this.bulk.request(url, method, headers, signal)
            : await this.dispatcher.request({ origin: url.origin, path: url.pathname + url.search, method, headers, signal, ...(payload !== undefined ? { body: payload } : {}) });
      } catch (e) {
        if (headersDeadline.signal.aborted && !req.signal?.aborted) throw new TransferError(`no answer within ${this.timeoutMs / 1000} s (OCCYSTRAP_HTTP_TIMEOUT)`);
        throw e;
      } finally {
        if (timer) clearTimeout(timer);
      }
      if (response.statusCode === 429) this.stats.rateLimited++;
      const location = headerValue(response.headers, 'location');
      if (![301, 302, 303, 307, 308].includes(response.statusCode) || location === undefined) return response;
      await response.body.dump();
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw inputError(`${url.href} redirects to ${JSON.stringify(location)}, which is not a URL`);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw inputError(`${url.href} redirects to ${next.protocol} URL ${next.href}; only http(s) is followed`);
      if (visited.has(next.href)) {
        throw inputError(`redirect loop: ${url.href} redirects to ${next.href}, which was already visited; the registry (or its storage) is misconfigured`);
      }
      if (hops >= MAX_REDIRECTS) {
        throw inputError(`too many redirects (more than ${MAX_REDIRECTS}) starting at ${req.url}, last to ${next.href}; the registry (or its storage) is misconfigured`);
      }
      if (next.origin !== url.origin) {
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !['authorization', 'cookie', 'proxy-authorization'].includes(k.toLowerCase())));
      }
      // 307/308 repeat the request as it was; 303 (and 301/302 after a POST) become a GET.
      if (response.statusCode === 303 || (method === 'POST' && (response.statusCode === 301 || response.statusCode === 302))) {
        method = 'GET';
        body = undefined;
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !['content-length', 'content-type', 'content-range'].includes(k.toLowerCase())));
      }
      url = next;
    }
  }

  /**
   * GET a whole (small) document with retries like `request()`, each attempt under the
   * total deadline `timeoutMs` (headers and body); an attempt that misses it is retried.
   * Redirect errors are not retried.
   */
  async document(req: HttpRequest, limit: number): Promise<DocumentResponse> {
    return this.retrying(req.signal, async (attempt) => {
      // Our own --rate-limit wait is not the registry's slowness: take the slot first.
      await this.limiter?.acquire(req.signal);
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(), this.timeoutMs);
      const signal = req.signal ? AbortSignal.any([req.signal, deadline.signal]) : deadline.signal;
      try {
        const response = await this.once({ ...req, signal }, true);
        if (!isRetryableStatus(response.statusCode) || attempt >= this.options.retries) {
          const body = await readBodyCapped(response, limit, req.method);
          return { statusCode: response.statusCode, headers: response.headers, body };
        }
        const retryAfter = headerValue(response.headers, 'retry-after');
        await response.body.dump();
        return new RetryLater(retryAfter);
      } catch (e) {
        if (deadline.signal.aborted && !req.signal?.aborted) throw new TransferError(`no complete answer within ${this.timeoutMs / 1000} s (OCCYSTRAP_HTTP_TIMEOUT)`);
        throw e;
      } finally {
        clearTimeout(timer);
      }
    });
  }

  /**
   * A request retried on connection errors and retryable statuses, up to `retries`
   * times. The final response is returned whatever its status; bodies of responses that
   * are retried are discarded.
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    return this.retrying(req.signal, async (attempt) => {
      const response = await this.once(req);
      if (!isRetryableStatus(response.statusCode) || attempt >= this.options.retries) return response;
      const retryAfter = headerValue(response.headers, 'retry-after');
      await response.body.dump();
      return new RetryLater(retryAfter);
    });
  }

  /**
   * The retry loop of `request()` and `document()`: an attempt returns its result, or
   * RetryLater for a retryable status (its body already discarded); a thrown error is
   * retried when retryable. Each retry is counted and waits with backoff (or Retry-After).
   */
  private async retrying<T>(signal: AbortSignal | undefined, attemptOnce: (attempt: number) => Promise<T | RetryLater>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let retryAfter: string | undefined;
      try {
        const outcome = await attemptOnce(attempt);
        if (!(outcome instanceof RetryLater)) return outcome;
        retryAfter = outcome.retryAfter;
      } catch (e) {
        if (signal?.aborted) throw new AbortError(signal.reason);
        if (attempt >= this.options.retries || !isRetryableError(e)) throw e;
      }
      this.stats.retries++;
      await sleep(retryDelay(attempt, retryAfter, Date.now()), signal);
    }
  }

  async close(): Promise<void> {
    this.bulk.close();
    await this.dispatcher.close();
  }
}

export function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Read a whole response body, refusing more than `limit` bytes (by Content-Length up
 * front, and while reading). Returns undefined when the body is too large (it is
 * destroyed then). The answer to a HEAD is empty, whatever its Content-Length says (a
 * blob's size, far over the cap).
 */
export async function readBodyCapped(response: HttpResponse, limit: number, method?: HttpMethod): Promise<Buffer | undefined> {
  if (method === 'HEAD') {
    await response.body.dump();
    return Buffer.alloc(0);
  }
  if (Number(headerValue(response.headers, 'content-length') ?? '0') > limit) {
    response.body.destroy();
    return undefined;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response.body) {
    total += (chunk as Buffer).length;
    if (total > limit) {
      response.body.destroy();
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
