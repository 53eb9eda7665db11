/**
 * Registry authentication: anonymous or with credentials, bearer tokens (any parameter
 * order in the challenge; `token` or `access_token`; `expires_in` honoured; cached per
 * registry and scope) and Basic when the registry challenges with Basic. A 401 with a
 * cached token refreshes it once. Authorization is never sent to another origin: the
 * HTTP layer strips it on cross-origin redirects, and tokens are only attached to
 * requests for the registry's own origin.
 *
 * @module
 */
import { parseChallenges } from '../../core/auth-challenge.js';
import * as E from 'fp-ts/lib/Either.js';
import { MAX_JSON_BYTES, parseJsonBytes } from '../../core/codecs/common.js';
import { hasCode, isExplained, OccystrapError } from '../../core/errors.js';
import type { Credentials } from './credentials.js';
import { type DocumentResponse, type HttpClient, TransferError } from './http.js';

function describeFailure(e: unknown): string {
  const err = e as { code?: string; message?: string; cause?: { message?: string } };
  const message = err?.cause?.message ?? err?.message ?? String(e);
  return err?.code ? `${err.code}: ${message}` : message;
}

interface CachedToken {
  readonly value: string;
  readonly expiresAt: number;
}

export class AuthError extends OccystrapError {
  constructor(message: string) {
    super('EINPUT', message);
  }
}

export class RegistryAuth {
  private readonly tokens = new Map<string, CachedToken>();
  private basic = false;
  private readonly pendingTokens = new Map<string, Promise<CachedToken>>();

  constructor(
    private readonly http: HttpClient,
    private readonly registry: string,
    private readonly credentials: Credentials | undefined,
    /** Plain HTTP is allowed for the token server only when the registry itself is plain HTTP. */
    private readonly insecure = false,
  ) {}

  /** Headers to send for `scope` now (a cached token or Basic), if any. */
  headersFor(scope: string): Record<string, string> {
    if (this.basic && this.credentials) return { authorization: `Basic ${basicValue(this.credentials)}` };
    const token = this.tokens.get(scope);
    if (token && token.expiresAt > Date.now()) return { authorization: `Bearer ${token.value}` };
    return {};
  }

  /**
   * Answer a 401: obtain what the challenge asks for. Returns false when there is nothing
   * new to try (the caller then reports the 401).
   */
  async handleUnauthorized(wwwAuthenticate: string | undefined, scope: string, signal?: AbortSignal): Promise<boolean> {
    const challenges = parseChallenges(wwwAuthenticate ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer && bearer.params['realm']) {
      this.tokens.delete(scope);
      const key = scope;
      let pending = this.pendingTokens.get(key);
      if (!pending) {
        pending = this.fetchToken(bearer.params['realm'], bearer.params['service'], bearer.params['scope'] ?? scope, signal);
        this.pendingTokens.set(key, pending);
        pending.finally(() => this.pendingTokens.delete(key)).catch(() => undefined);
      }
      this.tokens.set(scope, await pending);
      return true;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      if (!this.credentials) throw new AuthError(`${this.registry} requires credentials; give --username/--password, set OCCYSTRAP_USERNAME/OCCYSTRAP_PASSWORD or log in with docker/podman`);
      if (this.basic) return false;
      this.basic = true;
      return true;
    }
    return false;
  }

  private async fetchToken(realm: string, service: string | undefined, scope: string, signal?: AbortSignal): Promise<CachedToken> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new AuthError(`${this.registry} sent an invalid token realm ${JSON.stringify(realm)}`);
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && this.insecure)) {
      throw new AuthError(`${this.registry} names a token server at ${url.origin}, which is not HTTPS; refusing to send credentials there (use --insecure only for a plain-HTTP test registry)`);
    }
    if (service) url.searchParams.set('service', service);
    if (scope) url.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    if (this.credentials) headers['authorization'] = `Basic ${basicValue(this.credentials)}`;
    const started = Date.now();
    let response: DocumentResponse;
    try {
      response = await this.http.document({ url: url.toString(), headers, ...(signal ? { signal } : {}) }, MAX_JSON_BYTES);
    } catch (e) {
      if (hasCode(e, 'EABORT') || signal?.aborted) throw e;
      if (e instanceof TransferError) {
        throw new AuthError(`${this.registry}: the token server at ${url.origin}: ${e.message} after ${this.http.options.retries + 1} attempt(s); try again later, or raise OCCYSTRAP_HTTP_TIMEOUT`);
      }
      throw new AuthError(`${this.registry}: cannot reach the token server at ${url.origin} (${isExplained(e) ? e.message : describeFailure(e)})`);
    }
    if (response.statusCode === 401 || response.statusCode === 403) {
      throw new AuthError(
        this.credentials
          ? `${this.registry}: the token server refused the credentials from ${this.credentials.source} (HTTP ${response.statusCode}); check the username and password`
          : `${this.registry}: anonymous access was refused (HTTP ${response.statusCode}); give --username/--password or log in with docker/podman`,
      );
    }
    if (response.statusCode !== 200) {
      throw new AuthError(`${this.registry}: the token server at ${url.origin} answered HTTP ${response.statusCode}`);
    }
    if (!response.body) throw new AuthError(`${this.registry}: the token server's answer is over ${MAX_JSON_BYTES} bytes`);
    const parsed = parseJsonBytes('token answer', response.body);
    if (E.isLeft(parsed) || typeof parsed.right !== 'object' || parsed.right === null) {
      throw new AuthError(`${this.registry}: the token server answered something that is not a JSON object${E.isLeft(parsed) ? ` (${parsed.left.message})` : ''}`);
    }
    const doc = parsed.right as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const value = typeof doc.token === 'string' && doc.token !== '' ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : undefined;
    if (!value) throw new AuthError(`${this.registry}: the token server's answer has no token`);
    // Tokens without expires_in last 60 s (the distribution spec's default); refresh a little early.
    const lifetime = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
    return { value, expiresAt: started + Math.max(lifetime * 1000 - 5000, lifetime * 500) };
  }
}

function basicValue(c: Credentials): string {
  return Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64');
}
