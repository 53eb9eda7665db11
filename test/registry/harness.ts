// Test harness for the registry:// input: real registries and misbehaving
// servers on 127.0.0.1, random free ports, nothing else on the network.
//
//  - startRegistry():    Debian's docker-registry (distribution 2.8), anonymous,
//                        htpasswd (Basic) or token auth, filesystem storage in a
//                        temp dir, plain HTTP.
//  - startTokenServer(): a node:http token server signing JWTs (ES256 or RS256)
//                        the way distribution 2.8 verifies them (libtrust `kid`
//                        or an `x5c` chain), recording every request.
//  - pushImage(), pushMultiPlatform(): skopeo pushes from the fixture OCI layout.
//  - startFaultProxy():  a reverse proxy that injects 429/503/500, cut
//                        connections, redirects to an "object store" origin,
//                        corrupted bytes, delays and bandwidth caps.
//
// Every server started here is stopped by its stop(); the daemons
// (docker-registry, started by ../support/registry-daemon.mjs, shared with bench/)
// run under a tiny bash watchdog that kills them when the test process goes away,
// even on SIGKILL (its stdin pipe closes), and an 'exit' hook SIGKILLs whatever
// is still running.
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { pathToFileURL } from 'node:url';
import { fixturePath, repoRoot, run, skopeo, type RunResult } from '../integration/fixtures.js';
import type * as RegistryDaemon from '../support/registry-daemon.mjs';

// The daemon starter is plain JavaScript shared with bench/ (not compiled into dist/):
// loaded from the tree, typed by its .d.mts.
const daemons = (await import(pathToFileURL(path.join(repoRoot, 'test', 'support', 'registry-daemon.mjs')).href)) as typeof RegistryDaemon;
const { startRegistryDaemon } = daemons;
export const { freePort, probe, REGISTRY_BINARY } = daemons;

// ------------------------------------------------------------ bookkeeping

/** Temp dirs made by the harness (removed on exit as a last resort). */
const harnessDirs = new Set<string>();

process.on('exit', () => {
  for (const d of harnessDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
});

async function harnessTmp(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `occystrap-${prefix}-`));
  harnessDirs.add(dir);
  return dir;
}

async function removeHarnessTmp(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  harnessDirs.delete(dir);
}

/** Starts a node:http server on 127.0.0.1:<random port>. */
async function listen(server: http.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

async function closeServer(server: http.Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// -------------------------------------------------------------- registry

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** 'none' (default), 'htpasswd' (Basic) or 'token' (bearer, see startTokenServer). */
  auth?: 'none' | 'htpasswd' | 'token';
  /** htpasswd users (default: one user `tester` / `s3cret-pass`); token mode: passed to the token server it starts when none is given. */
  users?: Credentials[];
  /** Token mode: the token server to trust (default: one started for this registry and stopped with it). */
  tokenServer?: TokenServer;
}

export interface Registry {
  /** "127.0.0.1:PORT" */
  readonly host: string;
  /** "http://127.0.0.1:PORT" */
  readonly url: string;
  readonly auth: 'none' | 'htpasswd' | 'token';
  readonly users: readonly Credentials[];
  /** Token mode: the token server this registry trusts. */
  readonly tokenServer: TokenServer | undefined;
  /** Storage root (filesystem driver). */
  readonly storage: string;
  stop(): Promise<void>;
  /** docker-registry's log output so far (stderr, includes the access log). */
  logs(): string;
}

export const DEFAULT_USER: Credentials = { username: 'tester', password: 's3cret-pass' };
export const TOKEN_SERVICE = 'occystrap-test';
export const TOKEN_ISSUER = 'occystrap-test-issuer';

async function htpasswdFile(file: string, users: readonly Credentials[]): Promise<void> {
  const lines: string[] = [];
  for (const u of users) {
    // -B bcrypt (the only scheme distribution accepts), -C 4: cheapest cost, fast tests.
    const r = await run('htpasswd', ['-nbB', '-C', '4', u.username, u.password]);
    if (r.code !== 0) throw new Error(`htpasswd failed (${r.code}): ${r.stderr} -- install apache2-utils (scripts/ensure-system-deps.sh)`);
    lines.push(r.stdout.trim());
  }
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
}

function registryConfig(dir: string, port: number, auth: string): string {
  return [
    'version: 0.1',
    'log:',
    '  level: info',
    '  fields:',
    '    service: registry',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(path.join(dir, 'data'))}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
    '  headers:',
    '    X-Content-Type-Options: [nosniff]',
    auth,
    '',
  ].join('\n');
}

/**
 * Starts docker-registry on 127.0.0.1:<free port> and waits until `GET /v2/`
 * answers 200 (anonymous) or 401 (auth). Stop it with `stop()` (an `after()` hook).
 */
export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  const mode = options.auth ?? 'none';
  if (!existsSync(REGISTRY_BINARY)) throw new Error(`${REGISTRY_BINARY} not found -- install docker-registry (scripts/ensure-system-deps.sh)`);
  const dir = await harnessTmp('registry');
  const users = options.users ?? [DEFAULT_USER];
  let tokenServer = options.tokenServer;
  let ownTokenServer = false;
  try {
    let auth = '';
    if (mode === 'htpasswd') {
      const file = path.join(dir, 'htpasswd');
      await htpasswdFile(file, users);
      auth = ['auth:', '  htpasswd:', '    realm: occystrap-test-basic', `    path: ${JSON.stringify(file)}`].join('\n');
    } else if (mode === 'token') {
      if (tokenServer === undefined) {
        tokenServer = await startTokenServer({ users });
        ownTokenServer = true;
      }
      auth = [
        'auth:',
        '  token:',
        `    realm: ${JSON.stringify(tokenServer.realm)}`,
        `    service: ${JSON.stringify(tokenServer.service)}`,
        `    issuer: ${JSON.stringify(tokenServer.issuer)}`,
        `    rootcertbundle: ${JSON.stringify(tokenServer.certPath)}`,
      ].join('\n');
    }
    const { host, url, daemon } = await startRegistryDaemon({
      configPath: path.join(dir, 'config.yml'),
      config: (port) => registryConfig(dir, port, auth),
      readyStatuses: [200, 401],
    });
    const ts = tokenServer;
    let stopping: Promise<void> | undefined;
    return {
      host,
      url,
      auth: mode,
      users,
      tokenServer: ts,
      storage: path.join(dir, 'data'),
      logs: () => daemon.logs(),
      stop() {
        stopping ??= (async () => {
          await daemon.stop();
          if (ownTokenServer && ts) await ts.stop();
          await removeHarnessTmp(dir);
        })();
        return stopping;
      },
    };
  } catch (e) {
    if (ownTokenServer && tokenServer) await tokenServer.stop();
    await removeHarnessTmp(dir);
    throw e;
  }
}

/**
 * Starts a registry for the rest of the current test file: stopped by an
 * `after()` hook of `t` (or call stop() yourself). Use from `before()`.
 */
export async function registryFor(t: Pick<TestContext, 'after'>, options: RegistryOptions = {}): Promise<Registry> {
  const registry = await startRegistry(options);
  t.after(() => registry.stop());
  return registry;
}

/** Runs fn with a fresh registry and always stops it (also when fn throws). */
export async function withRegistry<T>(options: RegistryOptions, fn: (registry: Registry) => Promise<T>): Promise<T> {
  const registry = await startRegistry(options);
  try {
    return await fn(registry);
  } finally {
    await registry.stop();
  }
}

// ------------------------------------------------------------ token server

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenRequest {
  /** ms since the epoch */
  at: number;
  method: string;
  /** path and query as received */
  url: string;
  service: string | undefined;
  /** every `scope` query parameter, verbatim */
  scopes: string[];
  account: string | undefined;
  /** user from a Basic Authorization header (undefined when anonymous) */
  username: string | undefined;
  /** raw Authorization header, if any */
  authorization: string | undefined;
  status: number;
  /** what the issued token grants (empty when refused) */
  granted: Access[];
  /** the token issued (for asserting the client uses it) */
  token: string | undefined;
}

export interface TokenServerOptions {
  /** Accepted Basic credentials (default: DEFAULT_USER). */
  users?: Credentials[];
  /** expires_in of issued tokens, seconds (default 300); also sets exp. */
  expiresIn?: number;
  /** Field carrying the token in the JSON answer (default 'token'). */
  tokenField?: 'token' | 'access_token' | 'both';
  /** Anonymous requests get `pull` when asked (default false). */
  allowAnonymousPull?: boolean;
  /**
   * What anonymous requests get when they are not allowed (default
   * 'empty-token', like Docker Hub: a valid token granting nothing, so the
   * registry answers 401 insufficient_scope); 'refuse' answers 401.
   */
  anonymous?: 'empty-token' | 'refuse';
  /** Custom policy: the actions to grant (overrides the defaults). */
  grant?: (request: { username: string | undefined; access: Access }) => string[];
  /** Signature algorithm (default 'ES256'). */
  alg?: 'ES256' | 'RS256';
  /** How the JWT names its key (default 'kid': libtrust key id of the cert's key). */
  keyMode?: 'kid' | 'x5c';
  /** Leave out expires_in from the answer (default false). */
  omitExpiresIn?: boolean;
  /** Put this `kid` in the header instead of the real one (negative tests: the registry must refuse). */
  kidOverride?: string;
}

export interface TokenServer {
  /** "http://127.0.0.1:PORT" */
  readonly url: string;
  /** `${url}/token`: the realm the registry sends */
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** PEM certificate of the signing key (the registry's rootcertbundle). */
  readonly certPath: string;
  /** The libtrust key id of the signing key. */
  readonly kid: string;
  /** Every request, in order. */
  readonly requests: TokenRequest[];
  /** Requests that got a token. */
  issued(): TokenRequest[];
  /** Change the policy at run time. */
  readonly options: TokenServerOptions;
  stop(): Promise<void>;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function base32(data: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  while (out.length % 8 !== 0) out += '=';
  return out;
}

/**
 * The key id docker/libtrust gives a public key, which distribution 2.8 uses
 * to find a `kid` among the keys of its rootcertbundle: sha256 of the DER
 * SubjectPublicKeyInfo, first 240 bits, base32, in groups of 4 joined by ':'.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const b32 = base32(createHash('sha256').update(der).digest().subarray(0, 30));
  return (b32.match(/.{4}/g) ?? []).join(':');
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/** Parses `type:name:actions` (name may contain ':'). */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  const type = scope.slice(0, first).replace(/\(.*\)$/, '');
  return { type, name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter((a) => a !== '') };
}

export async function startTokenServer(options: TokenServerOptions = {}): Promise<TokenServer> {
  const opts: TokenServerOptions = { ...options };
  const dir = await harnessTmp('token');
  const keyPath = path.join(dir, 'key.pem');
  const certPath = path.join(dir, 'cert.pem');
  const alg = opts.alg ?? 'ES256';
  const newKey = alg === 'ES256' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
  const gen = await run('openssl', ['req', '-x509', ...newKey, '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', `/CN=${TOKEN_ISSUER}`]);
  if (gen.code !== 0) {
    await removeHarnessTmp(dir);
    throw new Error(`openssl could not make the token signing key: ${gen.stderr}`);
  }
  const privateKey = createPrivateKey(await readFile(keyPath));
  const certPem = await readFile(certPath, 'utf8');
  const certDer = Buffer.from(certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const kid = libtrustKeyId(createPublicKey(privateKey));

  const requests: TokenRequest[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const authorization = req.headers.authorization;
    const record: TokenRequest = {
      at: Date.now(),
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      service: url.searchParams.get('service') ?? undefined,
      scopes: url.searchParams.getAll('scope'),
      account: url.searchParams.get('account') ?? undefined,
      username: undefined,
      authorization,
      status: 0,
      granted: [],
      token: undefined,
    };
    requests.push(record);
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      record.status = status;
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
      res.end(text);
    };
    req.resume();
    if (url.pathname !== '/token' || req.method !== 'GET') return answer(404, { errors: [{ code: 'NOT_FOUND' }] });
    let username: string | undefined;
    if (authorization !== undefined) {
      const m = /^Basic\s+(\S+)$/i.exec(authorization);
      const decoded = m ? Buffer.from(m[1] as string, 'base64').toString('utf8') : '';
      const colon = decoded.indexOf(':');
      const user = (opts.users ?? [DEFAULT_USER]).find((u) => colon > 0 && u.username === decoded.slice(0, colon) && u.password === decoded.slice(colon + 1));
      if (!user) {
        return answer(401, { details: 'incorrect username or password' }, { 'www-authenticate': 'Basic realm="occystrap-test-token"' });
      }
      username = user.username;
      record.username = username;
    }
    if (record.service !== TOKEN_SERVICE) return answer(400, { details: `unknown service ${String(record.service)}` });
    const granted: Access[] = [];
    for (const s of record.scopes) {
      const access = parseScope(s);
      if (!access) continue;
      let actions: string[];
      if (opts.grant) actions = opts.grant({ username, access });
      else if (username !== undefined) actions = access.actions.filter((a) => ['pull', 'push', 'delete', '*'].includes(a));
      else if (opts.allowAnonymousPull === true) actions = access.actions.filter((a) => a === 'pull');
      else actions = [];
      if (username === undefined && actions.length === 0 && opts.anonymous === 'refuse') {
        return answer(401, { details: 'authentication required' }, { 'www-authenticate': 'Basic realm="occystrap-test-token"' });
      }
      granted.push({ type: access.type, name: access.name, actions });
    }
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = opts.expiresIn ?? 300;
    const header = opts.keyMode === 'x5c' ? { typ: 'JWT', alg, x5c: [certDer.toString('base64')] } : { typ: 'JWT', alg, kid: opts.kidOverride ?? kid };
    const claims = {
      iss: TOKEN_ISSUER,
      sub: username ?? '',
      aud: TOKEN_SERVICE,
      exp: now + expiresIn,
      nbf: now - 1,
      iat: now,
      jti: randomBytes(12).toString('hex'),
      access: granted,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = alg === 'ES256' ? cryptoSign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }) : cryptoSign('sha256', Buffer.from(input), privateKey);
    const token = `${input}.${b64url(signature)}`;
    record.granted = granted;
    record.token = token;
    const field = opts.tokenField ?? 'token';
    const body: Record<string, unknown> = { issued_at: new Date(now * 1000).toISOString() };
    if (field === 'token' || field === 'both') body['token'] = token;
    if (field === 'access_token' || field === 'both') body['access_token'] = token;
    if (opts.omitExpiresIn !== true) body['expires_in'] = expiresIn;
    return answer(200, body);
  });
  server.keepAliveTimeout = 2000;
  const port = await listen(server);
  const url = `http://127.0.0.1:${port}`;
  let stopping: Promise<void> | undefined;
  return {
    url,
    realm: `${url}/token`,
    service: TOKEN_SERVICE,
    issuer: TOKEN_ISSUER,
    certPath,
    kid,
    requests,
    options: opts,
    issued: () => requests.filter((r) => r.token !== undefined),
    stop() {
      stopping ??= (async () => {
        await closeServer(server);
        await removeHarnessTmp(dir);
      })();
      return stopping;
    },
  };
}

/** Decodes a JWT's payload (no verification). */
export function jwtClaims(token: string): Record<string, unknown> {
  const part = token.split('.')[1];
  if (part === undefined) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

// ------------------------------------------------------------------ pushes

/** The fixture OCI layout (`.fixtures/oci`, refs `sample` and `other`). */
export function fixtureLayout(): string {
  return fixturePath('oci');
}

export interface PushedImage {
  /** "127.0.0.1:PORT/NAME:TAG" */
  reference: string;
  host: string;
  name: string;
  tag: string;
  /** Manifest digest as stored by the registry. */
  manifestDigest: string;
  format: 'oci' | 'v2s2';
}

export interface PushOptions {
  /** 'oci' keeps the layout's OCI media types (default); 'v2s2' converts to Docker media types. */
  format?: 'oci' | 'v2s2';
  /** Source OCI layout (default: the fixture layout). */
  layout?: string;
}

/** skopeo without the user's auth files (and no signature policy). */
async function isolatedSkopeo(args: readonly string[]): Promise<RunResult> {
  const dir = await harnessTmp('skopeo');
  try {
    return await skopeo(args, {
      env: { ...process.env, REGISTRY_AUTH_FILE: path.join(dir, 'auth.json'), DOCKER_CONFIG: dir },
    });
  } finally {
    await removeHarnessTmp(dir);
  }
}

function splitTarget(target: string): { name: string; tag: string } {
  const colon = target.lastIndexOf(':');
  const slash = target.lastIndexOf('/');
  return colon > slash ? { name: target.slice(0, colon), tag: target.slice(colon + 1) } : { name: target, tag: 'latest' };
}

/**
 * `skopeo copy [--format v2s2] oci:<layout>:<ociRef> docker://<host>/<target>`;
 * returns the manifest digest the registry stored.
 */
export async function pushImage(registry: Pick<Registry, 'host'>, ociRef: string, target: string, creds?: Credentials, options: PushOptions = {}): Promise<PushedImage> {
  const format = options.format ?? 'oci';
  const dir = await harnessTmp('push');
  try {
    const digestFile = path.join(dir, 'digest');
    const args = ['copy', '--quiet', '--dest-tls-verify=false', '--digestfile', digestFile];
    if (creds) args.push('--dest-creds', `${creds.username}:${creds.password}`);
    if (format === 'v2s2') args.push('--format', 'v2s2');
    args.push(`oci:${options.layout ?? fixtureLayout()}:${ociRef}`, `docker://${registry.host}/${target}`);
    const r = await isolatedSkopeo(args);
    if (r.code !== 0) throw new Error(`skopeo ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    const { name, tag } = splitTarget(target);
    return { reference: `${registry.host}/${target}`, host: registry.host, name, tag, manifestDigest: (await readFile(digestFile, 'utf8')).trim(), format };
  } finally {
    await removeHarnessTmp(dir);
  }
}

/** pushImage with Docker media types (`--format v2s2`). */
export function pushImageDocker(registry: Pick<Registry, 'host'>, ociRef: string, target: string, creds?: Credentials): Promise<PushedImage> {
  return pushImage(registry, ociRef, target, creds, { format: 'v2s2' });
}

export interface PlatformEntry {
  os: string;
  architecture: string;
  variant?: string;
}

export interface PlatformImage extends PlatformEntry {
  /** "linux/arm/v7" */
  platform: string;
  manifestDigest: string;
  configDigest: string;
}

export interface MultiPlatformImage {
  reference: string;
  host: string;
  name: string;
  tag: string;
  indexDigest: string;
  indexMediaType: string;
  /** In index order (amd64 is deliberately not first). */
  platforms: PlatformImage[];
  /** Layers are the `sample` image's: facts from fixtures.json apply. */
  diffIds: string[];
}

/** Platforms of the multi-platform image, in index order. */
export const MULTI_PLATFORMS: readonly PlatformEntry[] = [
  { os: 'linux', architecture: 'arm64' },
  { os: 'linux', architecture: 'arm', variant: 'v7' },
  { os: 'linux', architecture: 'amd64' },
];

export const PLATFORM_LABEL = 'org.example.platform';

export function platformString(p: PlatformEntry): string {
  return [p.os, p.architecture, ...(p.variant ? [p.variant] : [])].join('/');
}

function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Record<string, string>;
  annotations?: Record<string, string>;
}

/**
 * Builds an OCI image index from the fixture `sample` image (same layers; one
 * config per platform with its architecture/variant and a label
 * org.example.platform=linux/arm/v7 ...) in a temp OCI layout, and pushes it
 * with `skopeo copy --all`. Returns the digests the registry stored.
 */
export async function pushMultiPlatform(registry: Pick<Registry, 'host'>, target: string, creds?: Credentials, platforms: readonly PlatformEntry[] = MULTI_PLATFORMS): Promise<MultiPlatformImage> {
  const src = fixtureLayout();
  const dir = await harnessTmp('multi');
  try {
    const layout = path.join(dir, 'oci');
    const blobs = path.join(layout, 'blobs', 'sha256');
    await mkdir(blobs, { recursive: true });
    for (const f of await readdir(path.join(src, 'blobs', 'sha256'))) await copyFile(path.join(src, 'blobs', 'sha256', f), path.join(blobs, f));
    await writeFile(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const srcIndex = JSON.parse(await readFile(path.join(src, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    const sampleDesc = srcIndex.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'sample');
    if (!sampleDesc) throw new Error(`${src}: no "sample" ref`);
    const blob = (digest: string): string => path.join(blobs, digest.replace(/^sha256:/, ''));
    const manifest = JSON.parse(await readFile(blob(sampleDesc.digest), 'utf8')) as { config: Descriptor; layers: Descriptor[] } & Record<string, unknown>;
    const config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8')) as Record<string, unknown> & {
      config?: { Labels?: Record<string, string> };
      rootfs: { diff_ids: string[] };
    };
    const put = async (data: string): Promise<{ digest: string; size: number }> => {
      const digest = sha256(data);
      await writeFile(blob(digest), data);
      return { digest, size: Buffer.byteLength(data) };
    };
    const entries: Descriptor[] = [];
    for (const p of platforms) {
      const c: Record<string, unknown> = { ...config, os: p.os, architecture: p.architecture };
      delete c['variant'];
      if (p.variant) c['variant'] = p.variant;
      c['config'] = { ...(config.config ?? {}), Labels: { ...(config.config?.Labels ?? {}), [PLATFORM_LABEL]: platformString(p) } };
      const cfg = await put(JSON.stringify(c));
      const m = await put(JSON.stringify({ ...manifest, config: { ...manifest.config, digest: cfg.digest, size: cfg.size } }));
      entries.push({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: m.digest,
        size: m.size,
        platform: { architecture: p.architecture, os: p.os, ...(p.variant ? { variant: p.variant } : {}) },
      });
    }
    const index = await put(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries }));
    await writeFile(
      path.join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...index, annotations: { 'org.opencontainers.image.ref.name': 'multi' } }],
      }),
    );
    const digestFile = path.join(dir, 'digest');
    const args = ['copy', '--quiet', '--all', '--preserve-digests', '--dest-tls-verify=false', '--digestfile', digestFile];
    if (creds) args.push('--dest-creds', `${creds.username}:${creds.password}`);
    args.push(`oci:${layout}:multi`, `docker://${registry.host}/${target}`);
    const r = await isolatedSkopeo(args);
    if (r.code !== 0) throw new Error(`skopeo ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    const pushed = (await readFile(digestFile, 'utf8')).trim();
    if (pushed !== index.digest) throw new Error(`the registry stored index ${pushed}, built ${index.digest}`);
    const { name, tag } = splitTarget(target);
    const result: PlatformImage[] = [];
    for (const [i, p] of platforms.entries()) {
      const e = entries[i] as Descriptor;
      const m = JSON.parse(await readFile(blob(e.digest), 'utf8')) as { config: Descriptor };
      result.push({ ...p, platform: platformString(p), manifestDigest: e.digest, configDigest: m.config.digest });
    }
    return {
      reference: `${registry.host}/${target}`,
      host: registry.host,
      name,
      tag,
      indexDigest: index.digest,
      indexMediaType: 'application/vnd.oci.image.index.v1+json',
      platforms: result,
      diffIds: config.rootfs.diff_ids,
    };
  } finally {
    await removeHarnessTmp(dir);
  }
}

// ------------------------------------------------------------ fault proxy

export type Fault =
  /** Answer with this status (and headers/body) instead of forwarding. */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** 429 (or `status`) with Retry-After (a number of seconds or an HTTP date). */
  | { kind: 'rate-limit'; retryAfter: number | string | Date; status?: number }
  /** Forward, but close the connection after `afterBytes` bytes of the body (with `connectionClose`, the response says `Connection: close`). */
  | { kind: 'cut'; afterBytes: number; connectionClose?: boolean }
  /** Forward the headers, then the body `bytes` bytes (default 1) every `everyMs` ms. */
  | { kind: 'drip'; everyMs: number; bytes?: number }
  /** Send `102 Processing` every `everyMs` ms and never a final answer (until the client goes away). */
  | { kind: 'informational'; everyMs: number }
  /** Forward, but declare and send only the first `bytes` bytes of the body (a short, complete response). */
  | { kind: 'short'; bytes: number }
  /** Redirect (307) to the request's own URL ('self') or to itself plus one more `?hop=` each time ('endless'). */
  | { kind: 'redirect-loop'; mode: 'self' | 'endless' }
  /** Destroy the connection without answering. */
  | { kind: 'reset' }
  /** Answer with a redirect to the object store (same path under /blobs/), not forwarding. */
  | { kind: 'redirect'; status?: 301 | 302 | 303 | 307 | 308 }
  /** Forward, but flip one byte of the body at `offset` (default 4: a gzip header's MTIME, so the stream still inflates). */
  | { kind: 'corrupt'; offset?: number }
  /** Wait before forwarding. */
  | { kind: 'delay'; ms: number }
  /** Forward with the body paced to about this many bytes per second. */
  | { kind: 'throttle'; bytesPerSecond: number }
  /** Forward the first `afterBytes` bytes of the request body (an upload), then drop both connections. */
  | { kind: 'cut-upload'; afterBytes: number };

export interface FaultRule {
  /** Method to match (default: any). */
  method?: string;
  /** Path (and query) to match. */
  path: RegExp;
  /** Matching requests to let through first (default 0). */
  skip?: number;
  /** How many matching requests get the fault (default 1; Infinity for every one). */
  times?: number;
  fault: Fault;
}

export interface ProxyRecord {
  seq: number;
  at: number;
  method: string;
  /** path and query */
  path: string;
  headers: http.IncomingHttpHeaders;
  authorization: string | undefined;
  range: string | undefined;
  /** Status sent to the client (0 if the connection was destroyed before answering). */
  status: number;
  /** Kind of fault injected, if any. */
  fault: Fault['kind'] | undefined;
  /** Index of the rule that matched. */
  rule: number | undefined;
  /** Body bytes sent to the client. */
  bytes: number;
  /** Request body bytes received from the client (an upload). */
  requestBytes: number;
  /** Response headers sent to the client. */
  responseHeaders: http.OutgoingHttpHeaders;
  done: boolean;
  /** When the response ended or its connection closed (0 until then). */
  finishedAt: number;
}

export interface ObjectStoreRecord {
  at: number;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  status: number;
  bytes: number;
}

export interface ObjectStore {
  /** "http://127.0.0.1:PORT" (another origin than the proxy) */
  readonly url: string;
  readonly requests: ObjectStoreRecord[];
  /** Directories with sha256/<hex> or <hex> blob files to serve (default: the fixture layout's blobs). */
  readonly blobDirs: string[];
  stop(): Promise<void>;
}

export interface FaultProxy {
  /** "127.0.0.1:PORT" */
  readonly host: string;
  readonly url: string;
  readonly upstream: string;
  readonly rules: FaultRule[];
  readonly requests: ProxyRecord[];
  /** The object store that redirects point at. */
  readonly objectStore: ObjectStore;
  /** Requests whose path matches. */
  matching(path: RegExp, method?: string): ProxyRecord[];
  /** Replace the rules (counters restart). */
  setRules(rules: FaultRule[]): void;
  stop(): Promise<void>;
}

export interface FaultProxyOptions {
  /** Blob directories for the object store (default: the fixture OCI layout's blobs). */
  blobDirs?: string[];
  /** Requests after which the proxy answers 599 to everything (default 5000): a looping client fails instead of hanging. */
  maxRequests?: number;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function forwardHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

/**
 * Upload sessions a registry still holds open for `repository` in its storage: directories
 * under its `_uploads` with their `startedat` (a cancelled session loses it; distribution
 * leaves only an empty-ish `hashstates` behind).
 */
export function openUploadSessions(registry: Pick<Registry, 'storage'>, repository: string): string[] {
  const dir = path.join(registry.storage, 'docker', 'registry', 'v2', 'repositories', repository, '_uploads');
  return existsSync(dir) ? readdirSync(dir).filter((id) => existsSync(path.join(dir, id, 'startedat'))) : [];
}

/** Regex for a blob GET path: /v2/<name>/blobs/<digest> (any name or digest by default). */
export function blobPath(digest?: string, name?: string): RegExp {
  const n = name !== undefined ? escapeRegExp(name) : '.+';
  const d = digest !== undefined ? escapeRegExp(digest) : 'sha256:[0-9a-f]{64}';
  return new RegExp(`^/v2/${n}/blobs/${d}(\\?.*)?$`);
}

/** Regex for a manifest path: /v2/<name>/manifests/<reference>. */
export function manifestPath(name?: string, reference?: string): RegExp {
  const n = name !== undefined ? escapeRegExp(name) : '.+';
  const r = reference !== undefined ? escapeRegExp(reference) : '[^/?]+';
  return new RegExp(`^/v2/${n}/manifests/${r}(\\?.*)?$`);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function startObjectStore(blobDirs: string[]): Promise<ObjectStore> {
  const requests: ObjectStoreRecord[] = [];
  const server = http.createServer((req, res) => {
    const record: ObjectStoreRecord = { at: Date.now(), method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, status: 0, bytes: 0 };
    requests.push(record);
    req.resume();
    const m = /^\/blobs\/(?:.*\/)?(?:sha256:|sha256\/)?([0-9a-f]{64})(?:\?.*)?$/.exec(req.url ?? '');
    const file = m ? blobDirs.map((d) => [path.join(d, m[1] as string), path.join(d, 'sha256', m[1] as string)]).flat().find((f) => existsSync(f)) : undefined;
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
      record.status = 404;
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such blob\n');
      return;
    }
    const size = statSync(file).size;
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      if (range[2] !== '') end = Math.min(Number(range[2]), size - 1);
      if (start >= size) {
        record.status = 416;
        res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
        return;
      }
      status = 206;
    }
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream', 'content-length': end - start + 1, 'accept-ranges': 'bytes' };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${size}`;
    record.status = status;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return void res.end();
    const stream = createReadStream(file, { start, end });
    stream.on('data', (c) => (record.bytes += (c as Buffer).length));
    stream.pipe(res);
  });
  const port = await listen(server);
  let stopping: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    blobDirs,
    stop() {
      stopping ??= closeServer(server);
      return stopping;
    },
  };
}

/**
 * A reverse proxy on 127.0.0.1:<random port> in front of `upstream` (e.g. a
 * Registry's url). Everything is forwarded (streaming, keep-alive to both
 * sides, the client's Host kept so the registry's Location headers point back
 * at the proxy) except requests matched by a rule, which get its fault.
 */
export async function startFaultProxy(upstream: string, rules: FaultRule[] = [], options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const upstreamUrl = new URL(upstream);
  const objectStore = await startObjectStore(options.blobDirs ?? [path.join(fixtureLayout(), 'blobs')]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const requests: ProxyRecord[] = [];
  let active: FaultRule[] = [...rules];
  let counters = active.map(() => ({ seen: 0, hit: 0 }));
  const maxRequests = options.maxRequests ?? 5000;

  const pick = (method: string, p: string): { rule: FaultRule; index: number } | undefined => {
    for (const [index, rule] of active.entries()) {
      if (rule.method !== undefined && rule.method.toUpperCase() !== method) continue;
      if (!rule.path.test(p)) continue;
      const c = counters[index] as { seen: number; hit: number };
      c.seen++;
      if (c.seen <= (rule.skip ?? 0)) continue;
      if (c.hit >= (rule.times ?? 1)) continue;
      c.hit++;
      return { rule, index };
    }
    return undefined;
  };

  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const p = req.url ?? '/';
    const record: ProxyRecord = {
      seq: requests.length,
      at: Date.now(),
      method,
      path: p,
      headers: req.headers,
      authorization: req.headers.authorization,
      range: req.headers.range,
      status: 0,
      fault: undefined,
      rule: undefined,
      bytes: 0,
      responseHeaders: {},
      done: false,
      requestBytes: 0,
      finishedAt: 0,
    };
    res.once('close', () => (record.finishedAt = Date.now()));
    requests.push(record);
    const respond = (status: number, headers: http.OutgoingHttpHeaders, body = ''): void => {
      req.resume();
      record.status = status;
      record.responseHeaders = { ...headers, 'content-length': Buffer.byteLength(body) };
      res.writeHead(status, record.responseHeaders);
      res.end(body, () => (record.done = true));
      record.bytes = Buffer.byteLength(body);
    };
    if (requests.length > maxRequests) {
      return respond(599, { 'content-type': 'text/plain' }, 'fault proxy: request limit reached\n');
    }
    const hit = pick(method, p);
    const fault = hit?.rule.fault;
    if (hit) {
      record.fault = hit.rule.fault.kind;
      record.rule = hit.index;
    }
    switch (fault?.kind) {
      case 'status':
        return respond(fault.status, { 'content-type': 'application/json', ...(fault.headers ?? {}) }, fault.body ?? JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `injected ${fault.status}` }] }));
      case 'rate-limit': {
        const ra = fault.retryAfter instanceof Date ? fault.retryAfter.toUTCString() : String(fault.retryAfter);
        return respond(fault.status ?? 429, { 'content-type': 'application/json', 'retry-after': ra }, JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'injected rate limit' }] }));
      }
      case 'reset':
        req.resume();
        req.socket.destroy();
        record.done = true;
        return;
      case 'redirect': {
        const m = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(p);
        const location = `${objectStore.url}/blobs/${m ? m[1] : 'unknown'}?X-Occystrap-Signature=${randomBytes(8).toString('hex')}`;
        return respond(fault.status ?? 307, { location, 'content-type': 'text/html' }, `<a href="${location}">Temporary Redirect</a>.\n`);
      }
      case 'informational': {
        req.resume();
        record.status = 102;
        const tick = setInterval(() => {
          if (res.destroyed || req.socket.destroyed) {
            clearInterval(tick);
            record.done = true;
            return;
          }
          res.writeProcessing();
          record.bytes++;
        }, fault.everyMs);
        res.on('close', () => clearInterval(tick));
        return;
      }
      case 'redirect-loop': {
        const hop = Number(/[?&]hop=(\d+)/.exec(p)?.[1] ?? '0');
        const location = fault.mode === 'self' ? p : `${p.replace(/[?&]hop=\d+/, '')}${p.includes('?') && !/[?]hop=/.test(p) ? '&' : '?'}hop=${hop + 1}`;
        return respond(307, { location, 'content-type': 'text/html' }, `<a href="${location}">Temporary Redirect</a>.\n`);
      }
      default:
        break;
    }
    const forward = (): void => {
      const upReq = http.request(
        {
          protocol: upstreamUrl.protocol,
          hostname: upstreamUrl.hostname,
          port: upstreamUrl.port,
          method,
          path: p,
          headers: forwardHeaders(req.headers),
          agent,
        },
        (upRes) => {
          const status = upRes.statusCode ?? 502;
          const headers = forwardHeaders(upRes.headers);
          if (fault?.kind === 'cut' && fault.connectionClose) headers['connection'] = 'close';
          const shortTo = fault?.kind === 'short' ? fault.bytes : undefined;
          if (shortTo !== undefined) headers['content-length'] = String(shortTo);
          record.status = status;
          record.responseHeaders = headers;
          res.writeHead(status, headers);
          let sent = 0;
          const cutAt = fault?.kind === 'cut' ? fault.afterBytes : undefined;
          const corruptAt = fault?.kind === 'corrupt' ? (fault.offset ?? 4) : undefined;
          const bps = fault?.kind === 'throttle' ? fault.bytesPerSecond : undefined;
          let cut = false;
          // A client that goes away stops the upstream read (no hanging pump).
          res.on('close', () => {
            if (!res.writableFinished) upRes.destroy();
          });
          const drained = (): Promise<void> =>
            new Promise<void>((resolve) => {
              const done = (): void => {
                res.off('drain', done);
                res.off('close', done);
                resolve();
              };
              res.on('drain', done);
              res.on('close', done);
            });
          const pump = async (): Promise<void> => {
            for await (const raw of upRes) {
              let chunk = raw as Buffer;
              if (cut) continue;
              if (corruptAt !== undefined && corruptAt >= sent && corruptAt < sent + chunk.length) {
                chunk = Buffer.from(chunk);
                chunk[corruptAt - sent] = (chunk[corruptAt - sent] as number) ^ 0xff;
              }
              if (shortTo !== undefined) {
                if (sent + chunk.length > shortTo) {
                  chunk = chunk.subarray(0, shortTo - sent);
                  cut = true;
                }
                if (chunk.length > 0 && !res.write(chunk)) await drained();
                sent += chunk.length;
                record.bytes = sent;
                continue;
              }
              if (fault?.kind === 'drip') {
                const step = fault.bytes ?? 1;
                for (let o = 0; o < chunk.length && !res.destroyed; o += step) {
                  res.write(chunk.subarray(o, o + step));
                  sent += Math.min(step, chunk.length - o);
                  record.bytes = sent;
                  await sleep(fault.everyMs);
                }
                if (res.destroyed) {
                  upRes.destroy();
                  record.done = true;
                  return;
                }
                continue;
              }
              if (cutAt !== undefined && sent + chunk.length >= cutAt) {
                const part = chunk.subarray(0, cutAt - sent);
                sent += part.length;
                record.bytes = sent;
                cut = true;
                await new Promise<void>((resolve) => res.write(part, () => resolve()));
                // FIN after the bytes are flushed: the client sees a short body.
                res.socket?.end();
                setTimeout(() => res.socket?.destroy(), 200).unref();
                upRes.destroy();
                record.done = true;
                return;
              }
              if (bps !== undefined) {
                const slice = Math.max(1, Math.floor(bps / 20));
                for (let o = 0; o < chunk.length; o += slice) {
                  const piece = chunk.subarray(o, o + slice);
                  if (!res.write(piece)) await drained();
                  sent += piece.length;
                  record.bytes = sent;
                  await sleep((piece.length / bps) * 1000);
                }
              } else {
                if (!res.write(chunk)) await drained();
                sent += chunk.length;
                record.bytes = sent;
              }
            }
            res.end(() => (record.done = true));
          };
          pump().catch(() => {
            res.destroy();
            record.done = true;
          });
        },
      );
      upReq.on('error', (e) => {
        if (!res.headersSent) respond(502, { 'content-type': 'text/plain' }, `fault proxy: upstream error ${e.message}\n`);
        else res.destroy();
      });
      // Counted here, where the body starts to flow (not earlier: a delayed forward would lose it).
      req.on('data', (chunk: Buffer) => (record.requestBytes += chunk.length));
      if (fault?.kind === 'cut-upload') {
        let forwarded = 0;
        req.on('data', (chunk: Buffer) => {
          if (forwarded >= fault.afterBytes) return;
          const part = chunk.subarray(0, fault.afterBytes - forwarded);
          forwarded += part.length;
          upReq.write(part);
          if (forwarded >= fault.afterBytes) {
            // The registry keeps what arrived; the client sees its connection reset mid-body.
            setTimeout(() => {
              upReq.destroy();
              req.socket.destroy();
              record.done = true;
            }, 200).unref();
          }
        });
        return;
      }
      req.pipe(upReq);
    };
    if (fault?.kind === 'delay') setTimeout(forward, fault.ms);
    else forward();
  });
  server.keepAliveTimeout = 5000;
  const port = await listen(server);
  let stopping: Promise<void> | undefined;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    upstream,
    get rules() {
      return active;
    },
    requests,
    objectStore,
    matching: (re, m) => requests.filter((r) => re.test(r.path) && (m === undefined || r.method === m.toUpperCase())),
    setRules(next) {
      active = [...next];
      counters = active.map(() => ({ seen: 0, hit: 0 }));
    },
    stop() {
      stopping ??= (async () => {
        await closeServer(server);
        agent.destroy();
        await objectStore.stop();
      })();
      return stopping;
    },
  };
}

// ------------------------------------------------------- small utilities

/** Blob file of the fixture OCI layout. */
export function fixtureBlob(digest: string): Buffer {
  return readFileSync(path.join(fixtureLayout(), 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Set when the connection failed or closed before the whole body arrived. */
  error: string | undefined;
}

/** One plain GET (new connection, no redirects followed); collects what arrives even when the body is cut short. */
export function httpGet(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawResponse> {
  return new Promise((resolve) => {
    const req = http.request(url, { method, agent: false, headers, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      let settled = false;
      const finish = (error: string | undefined): void => {
        if (settled) return;
        settled = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), error });
      };
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => finish(res.complete ? undefined : 'incomplete body'));
      res.on('aborted', () => finish('aborted'));
      res.on('error', (e) => finish(e.message));
      res.on('close', () => finish(res.complete ? undefined : 'closed before the end of the body'));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, headers: {}, body: Buffer.alloc(0), error: e.message }));
    req.end();
  });
}
