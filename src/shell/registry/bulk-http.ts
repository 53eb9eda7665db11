/**
 * Blob bodies over `node:http`/`node:https`. undici parses HTTP in WebAssembly and copies
 * every received byte into the parser's memory; for multi-megabyte layer bodies that made
 * a loopback download of 136 MB take 0.30–0.37 s where node's native parser takes
 * 0.15–0.20 s (measured here; docs/performance.md). Registry API requests (manifests,
 * tokens, configs) stay on undici; only blob GETs come here, through the same
 * `HttpClient.once` loop (redirects, deadlines, rate limit, statistics).
 *
 * @module
 */
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { HttpResponse } from './http.js';

/** A retried response's body is read to its end (keeping the connection) up to this much, else dropped. */
const DUMP_LIMIT = 256 * 1024;

/** Read a body to its end (small) or destroy it; never fails. */
function dump(res: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    if (res.complete || res.destroyed) return resolve();
    let seen = 0;
    res.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > DUMP_LIMIT) res.destroy();
    });
    res.once('end', resolve);
    res.once('close', resolve);
    res.once('error', () => resolve());
    res.resume();
  });
}

export class BulkHttp {
  private readonly agents: { readonly http: http.Agent; readonly https: https.Agent };

  constructor(connections: number) {
    const options = { keepAlive: true, maxSockets: connections, scheduling: 'lifo' as const };
    this.agents = { http: new http.Agent(options), https: new https.Agent(options) };
  }

  /** One request, no redirects, no retries: the response as soon as its headers are in. */
  request(url: URL, method: string, headers: Record<string, string>, signal: AbortSignal): Promise<HttpResponse> {
    const secure = url.protocol === 'https:';
    const send = secure ? https.request : http.request;
    return new Promise<HttpResponse>((resolve, reject) => {
      const req = send(url, { method, headers, agent: secure ? this.agents.https : this.agents.http, signal }, (res) => {
        const body = Object.assign(res, { dump: () => dump(res) });
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body });
      });
      req.once('error', reject);
      req.end();
    });
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}
