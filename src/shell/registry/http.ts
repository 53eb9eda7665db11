/**
 * HTTP for registries: one undici Agent (a pool per origin, connections = -j), redirects
 * followed with credentials dropped across origins, retries with exponential backoff and
 * jitter on connection errors, 408, 429 and 5xx (honouring Retry-After), an optional
 * requests-per-second limit shared by every worker, and counters for the summary.
 *
 * Never the global fetch or dispatcher: every request names this client's dispatcher.
 *
 * @module
 */
import { Agent, type Dispatcher, interceptors } from 'undici';
import { AbortError } from '../../core/errors.js';

export class RequestStats {
  requests = 0;
  retries = 0;
  /** Responses with status 429. */
  rateLimited = 0;
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
]);

export function isRetryableError(e: unknown): boolean {
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
}

export interface HttpRequest {
  readonly url: string;
  readonly method?: 'GET' | 'HEAD';
  readonly headers?: Record<string, string>;
  readonly signal?: AbortSignal;
}

export type HttpResponse = Dispatcher.ResponseData;

export class HttpClient {
  readonly stats = new RequestStats();
  private readonly dispatcher: Dispatcher;
  private readonly limiter: RateLimiter | undefined;

  constructor(readonly options: HttpClientOptions) {
    this.dispatcher = new Agent({
      connections: options.connections,
      pipelining: 1,
      connect: { timeout: 10_000 },
      headersTimeout: 30_000,
      bodyTimeout: 60_000,
    }).compose(interceptors.redirect({ maxRedirections: 5 }));
    this.limiter = options.rateLimit ? new RateLimiter(options.rateLimit) : undefined;
  }

  /** One request, no retries (callers that resume bodies drive their own loop). */
  async once(req: HttpRequest): Promise<HttpResponse> {
    await this.limiter?.acquire(req.signal);
    this.stats.requests++;
    const response = await this.dispatcher.request({
      origin: new URL(req.url).origin,
      path: new URL(req.url).pathname + new URL(req.url).search,
      method: req.method ?? 'GET',
      headers: { 'user-agent': this.options.userAgent, ...req.headers },
      signal: req.signal,
    });
    if (response.statusCode === 429) this.stats.rateLimited++;
    return response;
  }

  /**
   * A request retried on connection errors and retryable statuses, up to `retries`
   * times. The final response is returned whatever its status; bodies of responses that
   * are retried are discarded.
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      let response: HttpResponse;
      try {
        response = await this.once(req);
      } catch (e) {
        if (req.signal?.aborted) throw new AbortError(req.signal.reason);
        if (attempt >= this.options.retries || !isRetryableError(e)) throw e;
        this.stats.retries++;
        await sleep(retryDelay(attempt, undefined, Date.now()), req.signal);
        continue;
      }
      if (!isRetryableStatus(response.statusCode) || attempt >= this.options.retries) return response;
      const retryAfter = headerValue(response.headers, 'retry-after');
      await response.body.dump();
      this.stats.retries++;
      await sleep(retryDelay(attempt, retryAfter, Date.now()), req.signal);
    }
  }

  async close(): Promise<void> {
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
 * destroyed then).
 */
export async function readBodyCapped(response: HttpResponse, limit: number): Promise<Buffer | undefined> {
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
