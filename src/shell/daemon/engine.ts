/**
 * A Docker Engine API client over a unix socket (Docker, and Podman's Docker-compatible
 * service). The socket is `?socket=PATH` (Python occystrap's option), else `DOCKER_HOST`
 * when it is `unix://…`, else `/var/run/docker.sock`. The API version is negotiated with
 * `GET /_ping`: the daemon's `API-Version`, capped at the newest this client speaks;
 * a daemon older than the oldest it speaks is refused.
 *
 * Errors are one line naming the socket and what to do: no daemon there, permission
 * denied, an image the daemon does not have, an API too old, or the daemon's own message.
 *
 * @module
 */
import type { Readable } from 'node:stream';
import { Client, type Dispatcher } from 'undici';
import { inputError, OccystrapError, outputError } from '../../core/errors.js';
import { MAX_JSON_BYTES } from '../../core/codecs/common.js';
import { readCapped } from '../fs/spool.js';
import type { EngineEndpoint } from './endpoint.js';

export { DEFAULT_SOCKET, type EngineEndpoint, engineEndpoint } from './endpoint.js';

/** The oldest Engine API version used here (Docker 1.13: `/images/load` with `quiet`, `/images/{name}/get`). */
export const MIN_API_VERSION = '1.25';
/** The newest this client speaks (Docker 24); newer daemons answer it too. */
export const MAX_API_VERSION = '1.43';

/** Which way the image goes: errors are input errors for a source, output errors for a destination. */
export type EngineRole = 'source' | 'destination';

/** `a` compared with `b`, as Engine API versions (`1.41`). */
export function compareApiVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** What `GET /images/{name}/json` says that occystrap uses. */
export interface ImageInspect {
  /** The config digest (`sha256:…`). */
  readonly id: string;
  readonly repoTags: readonly string[];
  /** `RootFS.Layers`: the diff_ids, in order. */
  readonly diffIds: readonly string[];
}

export interface EngineResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Readable & Dispatcher.BodyMixin;
}

const MAX_ERROR_BODY = 64 * 1024;

/** See the module comment. One instance per run; `close` it. */
export class EngineClient {
  private constructor(
    private readonly client: Client,
    readonly endpoint: EngineEndpoint,
    readonly apiVersion: string,
    /** `Server` of the ping (e.g. `Docker/20.10.24`, `Libpod/4.3.1`). */
    readonly server: string,
    private readonly role: EngineRole,
    private readonly label: string,
  ) {}

  /**
   * Connect and negotiate the API version.
   *
   * - Errors: no socket, refused, permission denied, not an Engine API, or too old: one
   *   line naming the socket (an `EINPUT` error for a source, `EOUTPUT` for a destination).
   * - Cancellation: `signal` aborts the ping.
   */
  static async connect(endpoint: EngineEndpoint, role: EngineRole, label: string, signal?: AbortSignal): Promise<EngineClient> {
    const client = new Client('http://docker', { socketPath: endpoint.socket, headersTimeout: 60_000, bodyTimeout: 0, keepAliveTimeout: 10_000 });
    const fail = role === 'source' ? inputError : outputError;
    try {
      let res: Dispatcher.ResponseData;
      try {
        res = await client.request({ method: 'GET', path: '/_ping', ...(signal ? { signal } : {}) });
      } catch (e) {
        throw fail(`${label}: ${describeConnectError(e, endpoint)}`, e);
      }
      const text = (await res.body.text()).trim();
      const version = headerValue(res.headers['api-version']);
      const server = headerValue(res.headers['server']) ?? 'unknown server';
      if (res.statusCode !== 200 || version === undefined) {
        throw fail(`${label}: ${endpoint.socket} (${endpoint.from}) did not answer as a Docker Engine API (GET /_ping: HTTP ${res.statusCode}${text ? ` ${JSON.stringify(text.slice(0, 80))}` : ''}); give the socket of dockerd or of podman system service`);
      }
      if (compareApiVersions(version, MIN_API_VERSION) < 0) {
        throw fail(`${label}: the daemon at ${endpoint.socket} speaks Engine API ${version}, older than ${MIN_API_VERSION} (Docker 1.13), which occystrap needs; upgrade the daemon`);
      }
      const negotiated = compareApiVersions(version, MAX_API_VERSION) > 0 ? MAX_API_VERSION : version;
      return new EngineClient(client, endpoint, negotiated, server, role, label);
    } catch (e) {
      await client.close().catch(() => undefined);
      throw e;
    }
  }

  /** A request under the negotiated version prefix; the caller reads or dumps the body. */
  async request(method: Dispatcher.HttpMethod, path: string, options: { body?: Dispatcher.DispatchOptions['body']; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<EngineResponse> {
    try {
      const res = await this.client.request({
        method,
        path: `/v${this.apiVersion}${path}`,
        ...(options.body !== undefined ? { body: options.body } : {}),
        ...(options.headers ? { headers: options.headers } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      return { status: res.statusCode, headers: res.headers, body: res.body };
    } catch (e) {
      if (OccystrapError.is(e) || (e as { name?: string }).name === 'AbortError') throw e;
      throw this.fail(`${describeConnectError(e, this.endpoint)} (${method} ${path})`, e);
    }
  }

  /**
   * `GET /images/{name}/json`.
   *
   * - Errors: 404 → the image is not in the daemon (what to do); another status → the
   *   daemon's message; an answer without `Id` or `RootFS.Layers` → refused.
   */
  async inspectImage(name: string, signal?: AbortSignal): Promise<ImageInspect> {
    const res = await this.request('GET', `/images/${encodeURIComponent(name)}/json`, signal ? { signal } : {});
    if (res.status === 404) {
      res.body.resume();
      throw this.fail(`image ${name} is not in the daemon at ${this.endpoint.socket}; "docker images" lists what it has (pull or load it first)`);
    }
    let body: string;
    try {
      body = await readCappedText(res.body, MAX_JSON_BYTES, `the daemon's inspect of ${name}`);
    } catch (e) {
      throw this.fail(`inspecting ${name}: ${(e as Error).message}`, e);
    }
    if (res.status !== 200) throw this.fail(`inspecting ${name}: ${daemonMessage(res.status, body)}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw this.fail(`inspecting ${name}: the daemon's answer is not JSON`);
    }
    const o = parsed as { Id?: unknown; RepoTags?: unknown; RootFS?: { Layers?: unknown } };
    const layers = o.RootFS?.Layers;
    if (typeof o.Id !== 'string' || !Array.isArray(layers) || !layers.every((l) => typeof l === 'string')) {
      throw this.fail(`inspecting ${name}: the answer has no Id or RootFS.Layers`);
    }
    return { id: o.Id, repoTags: Array.isArray(o.RepoTags) ? o.RepoTags.filter((t): t is string => typeof t === 'string') : [], diffIds: layers as string[] };
  }

  /**
   * `GET /images/{name}/get`: the docker-save archive, as the daemon streams it.
   *
   * - Errors: a status other than 200 → the daemon's message.
   * - Cancellation: `signal` aborts the download (the body errors).
   */
  async exportImage(name: string, signal?: AbortSignal): Promise<Readable> {
    const res = await this.request('GET', `/images/${encodeURIComponent(name)}/get`, signal ? { signal } : {});
    if (res.status !== 200) {
      const body = await readCappedText(res.body, MAX_ERROR_BODY, 'the error').catch(() => '');
      throw this.fail(`exporting ${name}: ${daemonMessage(res.status, body)}`);
    }
    return res.body;
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
  }

  fail(message: string, cause?: unknown): OccystrapError {
    const make = this.role === 'source' ? inputError : outputError;
    return make(`${this.label}: ${message}`, cause);
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The daemon's `{"message": …}`, else the status and the start of the body. */
export function daemonMessage(status: number, body: string): string {
  try {
    const m = (JSON.parse(body) as { message?: unknown }).message;
    if (typeof m === 'string' && m !== '') return `the daemon said: ${m.split('\n')[0]} (HTTP ${status})`;
  } catch {
    // not JSON: shown as it is
  }
  const text = body.trim().split('\n')[0]?.slice(0, 200) ?? '';
  return `HTTP ${status}${text ? `: ${text}` : ''}`;
}

/** The body as text, at most `limit` bytes (spool.ts's readCapped: over it, an error naming `what`). */
async function readCappedText(body: Readable, limit: number, what: string): Promise<string> {
  return Buffer.from(await readCapped(body, limit, what)).toString('utf8');
}

function describeConnectError(e: unknown, endpoint: EngineEndpoint): string {
  const code = (e as { code?: string }).code ?? (e as { cause?: { code?: string } }).cause?.code;
  const where = `${endpoint.socket} (${endpoint.from})`;
  switch (code) {
    case 'ENOENT':
      return `no Docker daemon socket at ${where}; start dockerd (or podman system service), or give ?socket=PATH or DOCKER_HOST=unix://PATH`;
    case 'ECONNREFUSED':
      return `the Docker daemon at ${where} is not running (connection refused); start it, or give ?socket=PATH`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied on ${where}; run as root or as a member of the socket's group (docker), or use a rootless daemon's socket`;
    case 'ENOTSOCK':
      return `${where} is not a socket; give the path of the daemon's unix socket`;
    default:
      return `talking to the Docker daemon at ${where} failed: ${(e as Error)?.message ?? String(e)}`;
  }
}
