/**
 * Where registry credentials come from, first match wins:
 * 1. the URI (`?username=&password=`),
 * 2. the command line (`--username/--password`),
 * 3. the environment (`OCCYSTRAP_USERNAME/OCCYSTRAP_PASSWORD`),
 * 4. docker's config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`):
 *    `credHelpers[host]`, then `auths[host].auth`, then `credsStore`,
 * 5. podman's auth file (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
 *    `~/.config/containers/auth.json`).
 * Secrets are never logged.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { MAX_JSON_BYTES, parseJsonBytes } from '../../core/codecs/common.js';

export interface Credentials {
  readonly username: string;
  readonly password: string;
  /** Where they came from, for messages (never the secret itself). */
  readonly source: string;
}

export interface CredentialSources {
  readonly uri?: { username?: string; password?: string };
  readonly cli?: { username?: string | undefined; password?: string | undefined };
  readonly env?: NodeJS.ProcessEnv;
}

function pair(u: string | undefined, p: string | undefined, source: string): Credentials | undefined {
  if (u === undefined && p === undefined) return undefined;
  return { username: u ?? '', password: p ?? '', source };
}

async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  try {
    const st = await fs.stat(file);
    if (st.size > MAX_JSON_BYTES) return undefined;
    const doc = parseJsonBytes(file, await fs.readFile(file));
    return E.isRight(doc) && typeof doc.right === 'object' && doc.right !== null ? (doc.right as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Keys a config may use for `host`: bare, with scheme, Docker Hub's legacy index URL. */
function keysFor(host: string): string[] {
  const keys = [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`];
  if (host === 'registry-1.docker.io' || host === 'docker.io' || host === 'index.docker.io') {
    keys.push('https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io');
  }
  return keys;
}

function fromAuths(doc: Record<string, unknown> | undefined, host: string, source: string): Credentials | undefined {
  const auths = doc?.['auths'];
  if (typeof auths !== 'object' || auths === null) return undefined;
  for (const key of keysFor(host)) {
    const entry = (auths as Record<string, unknown>)[key];
    if (typeof entry !== 'object' || entry === null) continue;
    const e = entry as Record<string, unknown>;
    if (typeof e['auth'] === 'string' && e['auth'] !== '') {
      const decoded = Buffer.from(e['auth'], 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source };
    }
    if (typeof e['username'] === 'string' && typeof e['password'] === 'string') {
      return { username: e['username'], password: e['password'], source };
    }
  }
  return undefined;
}

/** Ask `docker-credential-<helper> get` (the docker credential-helper protocol). */
export async function fromCredentialHelper(helper: string, host: string, env: NodeJS.ProcessEnv): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(helper)) return undefined;
  const program = `docker-credential-${helper}`;
  const output = await new Promise<string | undefined>((resolve) => {
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      if (out.length < 65536) out += d;
    });
    child.on('error', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code === 0 ? out : undefined);
    });
    child.stdin.end(host);
  });
  if (!output) return undefined;
  const parsed = parseJsonBytes(program, Buffer.from(output, 'utf8'));
  if (E.isLeft(parsed) || typeof parsed.right !== 'object' || parsed.right === null) return undefined;
  const doc = parsed.right as { Username?: unknown; Secret?: unknown };
  if (typeof doc.Username !== 'string' || typeof doc.Secret !== 'string') return undefined;
  if (doc.Username === '<token>') return undefined; // identity tokens need the OAuth flow
  return { username: doc.Username, password: doc.Secret, source: program };
}

export async function resolveCredentials(host: string, sources: CredentialSources): Promise<Credentials | undefined> {
  const env = sources.env ?? process.env;
  const direct =
    pair(sources.uri?.username, sources.uri?.password, 'the URI') ??
    pair(sources.cli?.username, sources.cli?.password, '--username/--password') ??
    pair(env['OCCYSTRAP_USERNAME'], env['OCCYSTRAP_PASSWORD'], 'OCCYSTRAP_USERNAME/OCCYSTRAP_PASSWORD');
  if (direct) return direct;

  const dockerConfigPath = path.join(env['DOCKER_CONFIG'] ?? path.join(os.homedir(), '.docker'), 'config.json');
  const docker = await readJson(dockerConfigPath);
  if (docker) {
    const helpers = docker['credHelpers'];
    if (typeof helpers === 'object' && helpers !== null) {
      for (const key of keysFor(host)) {
        const helper = (helpers as Record<string, unknown>)[key];
        if (typeof helper === 'string') {
          const c = await fromCredentialHelper(helper, host, env);
          if (c) return c;
        }
      }
    }
    const fromFile = fromAuths(docker, host, dockerConfigPath);
    if (fromFile) return fromFile;
    if (typeof docker['credsStore'] === 'string') {
      const c = await fromCredentialHelper(docker['credsStore'], host, env);
      if (c) return c;
    }
  }
  const podmanFiles = [
    env['REGISTRY_AUTH_FILE'],
    env['XDG_RUNTIME_DIR'] ? path.join(env['XDG_RUNTIME_DIR'], 'containers', 'auth.json') : undefined,
    path.join(os.homedir(), '.config', 'containers', 'auth.json'),
  ].filter((f): f is string => f !== undefined);
  for (const file of podmanFiles) {
    const c = fromAuths(await readJson(file), host, file);
    if (c) return c;
  }
  return undefined;
}
