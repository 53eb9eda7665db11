/**
 * From URIs to inputs and outputs.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { usageError } from '../core/errors.js';
import type { ImageInput, ImageOutput } from '../core/pipeline/types.js';
import type { ImageSelector } from '../core/plans/docker-save.js';
import { booleanOption, checkKnownOptions, parseRegistryReference, parseUri, redactUri, type UriOptions } from '../core/uri.js';
import { DEFAULT_PLATFORM, type PlatformWanted } from '../core/platform.js';
import { normalizeRegistryReference } from '../core/registry-naming.js';
// The registry modules (and undici) load only when a registry:// URI is used: start-up
// of tar:// runs stays short.
import type { RegistryInput } from './inputs/registry.js';
import { VERSION } from './version.js';
import { DockerSaveInput } from './inputs/docker-save.js';
import { DirOutput } from './outputs/dir.js';
import { TarOutput } from './outputs/tar.js';

const INPUT_SCHEMES = ['tar', 'registry'];
const OUTPUT_SCHEMES = ['tar', 'dir'];
const PLANNED_OUTPUTS: Record<string, string> = {
  registry: 'registry:// as a destination is not available in this version yet (it is planned); write tar://FILE and push it with "skopeo copy docker-archive:FILE docker://…"',
  docker: 'docker:// as a destination is not available in this version yet (it is planned); write tar://FILE and "docker load -i FILE"',
};
const PLANNED: Record<string, string> = {
  docker: 'docker:// is not available in this version yet (it is planned); use "docker save -o FILE IMAGE" and tar://FILE',
  quay: 'quay:// is not available in this version yet (it is planned)',
  dockerpush: 'dockerpush:// is not available in this version yet (it is planned)',
  oci: 'oci:// output is not available in this version yet (it is planned); use dir://',
  mounts: 'mounts:// output is not available in this version yet (it is planned); use dir://',
};

function orUsage<A>(label: string, r: E.Either<string, A>): A {
  if (E.isLeft(r)) throw usageError(`${label}: ${r.left}`);
  return r.right;
}

function filePath(scheme: string, body: string, role: string): string {
  if (body === '') throw usageError(`${scheme}:// ${role} needs a path, e.g. ${scheme}://image.tar`);
  return body;
}

function selectorFrom(uri: string, options: UriOptions): ImageSelector {
  const index = options['index'];
  const tag = options['tag'];
  if (index !== undefined && tag !== undefined) throw usageError(`${uri}: give ?index= or ?tag=, not both`);
  if (index !== undefined) {
    if (typeof index !== 'number' || index < 0) throw usageError(`${uri}: ?index= takes a number from 0, got ${JSON.stringify(index)}`);
    return { _tag: 'Index', index };
  }
  if (tag !== undefined) {
    if (typeof tag !== 'string' && typeof tag !== 'number') throw usageError(`${uri}: ?tag= takes NAME:TAG, got ${JSON.stringify(tag)}`);
    return { _tag: 'Tag', tag: String(tag) };
  }
  return { _tag: 'First' };
}

/** What registry inputs need from the global options (defaults when absent). */
export interface InputSettings {
  readonly parallel?: number;
  readonly platform?: PlatformWanted;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly insecure?: boolean;
  readonly retries?: number;
  readonly rateLimit?: number | undefined;
  readonly env?: NodeJS.ProcessEnv;
}

function stringOption(uri: string, options: UriOptions, ...keys: string[]): string | undefined {
  for (const key of keys) {
    const v = Object.hasOwn(options, key) ? options[key] : undefined;
    if (v === undefined) continue;
    if (typeof v === 'string' || typeof v === 'number') return String(v);
    throw usageError(`${uri}: ?${key}= takes one value, got ${JSON.stringify(v)}`);
  }
  return undefined;
}

async function openRegistryInput(uri: string, body: string, options: UriOptions, settings: InputSettings): Promise<ImageInput> {
  orUsage(uri, checkKnownOptions('registry', options, ['os', 'arch', 'architecture', 'variant', 'username', 'password', 'insecure', 'max_workers']));
  const ref = normalizeRegistryReference(orUsage(uri, parseRegistryReference(body)));
  const defaults = settings.platform ?? DEFAULT_PLATFORM;
  const platform: PlatformWanted = {
    os: stringOption(uri, options, 'os') ?? defaults.os,
    architecture: stringOption(uri, options, 'arch', 'architecture') ?? defaults.architecture,
    variant: stringOption(uri, options, 'variant') ?? defaults.variant,
  };
  const insecure = orUsage(uri, booleanOption(options, 'insecure', settings.insecure ?? false));
  const workers = options['max_workers'];
  if (workers !== undefined && (typeof workers !== 'number' || workers < 1)) throw usageError(`${uri}: ?max_workers= takes a number from 1`);
  const parallel = typeof workers === 'number' ? workers : (settings.parallel ?? 4);
  const username = stringOption(uri, options, 'username');
  const password = stringOption(uri, options, 'password');
  const [{ RegistryInput }, { resolveCredentials }, { HttpClient, timeoutFromEnv }] = await Promise.all([
    import('./inputs/registry.js'),
    import('./registry/credentials.js'),
    import('./registry/http.js'),
  ]);
  const timeoutMs = timeoutFromEnv(settings.env ?? process.env);
  const credentials = await resolveCredentials(ref.apiHost, {
    ...(username !== undefined || password !== undefined ? { uri: { ...(username !== undefined ? { username } : {}), ...(password !== undefined ? { password } : {}) } } : {}),
    cli: { username: settings.username, password: settings.password },
    env: settings.env ?? process.env,
  });
  const http = new HttpClient({ connections: parallel, retries: settings.retries ?? 3, rateLimit: settings.rateLimit, userAgent: `occystrap/${VERSION}`, timeoutMs });
  const label = `registry://${ref.host}/${ref.name}${ref.digest ? `@${ref.digest}` : `:${ref.tag}`}`;
  return new RegistryInput({ reference: ref, apiHost: ref.apiHost, insecure, platform, http, credentials, retries: settings.retries ?? 3, parallelism: parallel, label });
}

/** Build the input for a source URI; checks that a local file exists (exit 2 when not). */
export async function openInput(uri: string, settings: InputSettings = {}): Promise<ImageInput> {
  const parsed = orUsage('source', parseUri(uri));
  switch (parsed.scheme) {
    case 'registry':
      return openRegistryInput(redactUri(uri), parsed.body, parsed.options, settings);
    case 'tar': {
      orUsage(uri, checkKnownOptions('tar', parsed.options, ['index', 'tag']));
      const path = filePath('tar', parsed.body, 'source');
      const selector = selectorFrom(uri, parsed.options);
      try {
        const st = await fs.stat(path);
        if (!st.isFile()) throw usageError(`${uri}: ${path} is not a file; give a docker-save tarball`);
      } catch (e) {
        if ((e as { code?: string }).code === 'ENOENT') throw usageError(`${uri}: ${path} does not exist; check the path`);
        throw e;
      }
      return new DockerSaveInput({ path, selector, label: uri });
    }
    default:
      throw usageError(PLANNED[parsed.scheme] ?? `unknown source scheme "${parsed.scheme}://" in ${uri}; sources: ${INPUT_SCHEMES.map((s) => `${s}://`).join(', ')}`);
  }
}

export function openOutput(uri: string, settings: { readonly parallel?: number } = {}): ImageOutput {
  const parsed = orUsage('destination', parseUri(uri));
  switch (parsed.scheme) {
    case 'tar': {
      orUsage(uri, checkKnownOptions('tar', parsed.options, []));
      return new TarOutput({ path: filePath('tar', parsed.body, 'destination'), label: uri });
    }
    case 'dir': {
      orUsage(uri, checkKnownOptions('dir', parsed.options, ['unique_names', 'expand']));
      const uniqueNames = orUsage(uri, booleanOption(parsed.options, 'unique_names', false));
      const expand = orUsage(uri, booleanOption(parsed.options, 'expand', false));
      if (expand) throw usageError(`${uri}: ?expand=true (a merged rootfs) is not available in this version yet; omit it`);
      return new DirOutput({ path: filePath('dir', parsed.body, 'destination'), uniqueNames, label: uri, concurrency: settings.parallel ?? 4 });
    }
    default:
      throw usageError(PLANNED_OUTPUTS[parsed.scheme] ?? PLANNED[parsed.scheme] ?? `unknown destination scheme "${parsed.scheme}://" in ${uri}; destinations: ${OUTPUT_SCHEMES.map((s) => `${s}://`).join(', ')}`);
  }
}

/** True for inputs opened from registry:// URIs (they can describe an image without its layers). */
export function isRegistryInput(input: ImageInput): input is RegistryInput {
  return typeof (input as Partial<RegistryInput>).describe === 'function';
}

/**
 * The directory a destination writes in (a dir:// root, the directory of a tar:// file),
 * resolved; undefined for a URI that is not a file destination.
 */
export function destinationArea(uri: string): string | undefined {
  const parsed = parseUri(uri);
  if (E.isLeft(parsed) || parsed.right.body === '') return undefined;
  if (parsed.right.scheme === 'tar') return path.dirname(path.resolve(parsed.right.body));
  if (parsed.right.scheme === 'dir') return path.resolve(parsed.right.body);
  return undefined;
}
