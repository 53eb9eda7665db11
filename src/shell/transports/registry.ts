/**
 * `registry://HOST/NAME[:TAG|@DIGEST]`: pull from a registry (distribution API v2), or
 * push one image to it.
 *
 * @module
 */
import { usageError } from '../../core/errors.js';
import { DEFAULT_PLATFORM, type PlatformWanted } from '../../core/platform.js';
import { normalizeRegistryReference } from '../../core/registry-naming.js';
import { booleanOption, parseRegistryReference, redactUri } from '../../core/uri.js';
// Only types here: the registry modules (and undici) load in open(), so start-up of
// runs without a registry:// URI stays short.
import type { RegistryInput } from '../inputs/registry.js';
import { VERSION } from '../version.js';
import { checkOptions, orUsage, stringOption } from './target-options.js';
import { type DestinationRole, describedImage, type SourceRole, type Target, type Transport, type TransportSettings } from './types.js';

/** What both roles read from a registry URI and the settings: the reference, TLS, credentials, HTTP. */
async function connect(target: Target, settings: TransportSettings, role: SourceRole | DestinationRole) {
  const label = redactUri(target.uri);
  checkOptions(target, role, label);
  const ref = normalizeRegistryReference(orUsage(label, parseRegistryReference(target.body)));
  const insecure = orUsage(label, booleanOption(target.options, 'insecure', settings.insecure ?? false));
  const workers = target.options['max_workers'];
  if (workers !== undefined && (typeof workers !== 'number' || workers < 1)) throw usageError(`${label}: ?max_workers= takes a number from 1`);
  const parallel = typeof workers === 'number' ? workers : (settings.parallel ?? 4);
  const username = stringOption(target, label, 'username');
  const password = stringOption(target, label, 'password');
  const [{ resolveCredentials }, { HttpClient, timeoutFromEnv }, { API_INSECURE_HINT, CLI_INSECURE_HINT }] = await Promise.all([
    import('../registry/credentials.js'),
    import('../registry/http.js'),
    import('../registry/client.js'),
  ]);
  const env = settings.env ?? process.env;
  const credentials = await resolveCredentials(ref.apiHost, {
    ...(username !== undefined || password !== undefined ? { uri: { ...(username !== undefined ? { username } : {}), ...(password !== undefined ? { password } : {}) } } : {}),
    cli: { username: settings.username, password: settings.password },
    env,
  });
  const retries = settings.retries ?? 3;
  const http = new HttpClient({ connections: parallel, retries, rateLimit: settings.rateLimit, userAgent: `occystrap/${VERSION}`, timeoutMs: timeoutFromEnv(env) });
  const name = `registry://${ref.host}/${ref.name}${ref.digest ? `@${ref.digest}` : `:${ref.tag}`}`;
  const insecureHint = settings.audience === 'cli' ? CLI_INSECURE_HINT : API_INSECURE_HINT;
  return { label, ref, insecure, parallel, credentials, retries, http, name, insecureHint, env };
}

const source: SourceRole<RegistryInput> = {
  usage: 'registry://HOST/NAME[:TAG|@DIGEST]',
  summary: 'a registry (distribution API v2)',
  options: ['os', 'arch', 'architecture', 'variant', 'username', 'password', 'insecure', 'max_workers'],
  async open(target, settings) {
    const c = await connect(target, settings, source);
    const defaults = settings.platform ?? DEFAULT_PLATFORM;
    const platform: PlatformWanted = {
      os: stringOption(target, c.label, 'os') ?? defaults.os,
      architecture: stringOption(target, c.label, 'arch', 'architecture') ?? defaults.architecture,
      variant: stringOption(target, c.label, 'variant') ?? defaults.variant,
    };
    const { RegistryInput } = await import('../inputs/registry.js');
    return new RegistryInput({
      reference: c.ref,
      apiHost: c.ref.apiHost,
      insecure: c.insecure,
      platform,
      http: c.http,
      credentials: c.credentials,
      retries: c.retries,
      parallelism: c.parallel,
      label: c.name,
      insecureHint: c.insecureHint,
    });
  },
  async describe(input, signal) {
    const { resolved, config } = await input.describe(signal);
    return describedImage(config, resolved.manifest, resolved.manifestDigest, resolved.manifestMediaType);
  },
};

/** OCCYSTRAP_PUSH_CHUNK_BYTES: blobs larger than this are sent in chunks of this size. */
function chunkBytesFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env['OCCYSTRAP_PUSH_CHUNK_BYTES'];
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw usageError(`OCCYSTRAP_PUSH_CHUNK_BYTES takes a number of bytes from 1, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

const destination: DestinationRole = {
  usage: 'registry://HOST/NAME[:TAG|@DIGEST]',
  summary: 'push to a registry; unchanged layers go as the source\'s blobs',
  options: ['username', 'password', 'insecure', 'max_workers', 'compression', 'format'],
  async open(target, settings) {
    const c = await connect(target, settings, destination);
    const compressionRaw = stringOption(target, c.label, 'compression') ?? settings.compression ?? 'gzip';
    if (compressionRaw !== 'gzip' && compressionRaw !== 'zstd') throw usageError(`${c.label}: ?compression= takes gzip or zstd, got ${JSON.stringify(compressionRaw)}`);
    const format = stringOption(target, c.label, 'format') ?? 'auto';
    if (format !== 'auto' && format !== 'oci' && format !== 'docker') throw usageError(`${c.label}: ?format= takes auto, oci or docker, got ${JSON.stringify(format)}`);
    const chunkBytes = chunkBytesFromEnv(c.env);
    const [{ RegistryClient }, { BlobPusher }, { RegistryOutput }] = await Promise.all([import('../registry/client.js'), import('../registry/push.js'), import('../outputs/registry.js')]);
    const client = new RegistryClient({
      apiHost: c.ref.apiHost,
      name: c.ref.name,
      insecure: c.insecure,
      http: c.http,
      credentials: c.credentials,
      label: c.name,
      insecureHint: c.insecureHint,
      access: 'push',
    });
    const pusher = new BlobPusher({ client, label: c.name, name: c.ref.name, retries: c.retries, ...(chunkBytes !== undefined ? { chunkBytes } : {}) });
    return new RegistryOutput({
      pusher,
      label: c.name,
      reference: settings.pushUntagged ? { untagged: true } : c.ref.digest ? { digest: c.ref.digest } : { tag: c.ref.tag },
      compression: compressionRaw,
      format,
      concurrency: c.parallel,
      registry: c.ref.apiHost,
      repository: c.ref.name,
      close: () => c.http.close(),
      stats: () => ({ ...c.http.stats, uploaded: pusher.stats.bytesSent }),
    });
  },
};

export const registryTransport: Transport = {
  name: 'registry',
  what: 'a container registry',
  aliases: [],
  source,
  destination,
};
