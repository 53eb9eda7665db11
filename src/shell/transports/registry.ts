/**
 * `registry://HOST/NAME[:TAG|@DIGEST]`: pull from a registry (distribution API v2).
 * Pushing is planned.
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
import { describedImage, type SourceRole, type Transport } from './types.js';

const source: SourceRole<RegistryInput> = {
  usage: 'registry://HOST/NAME[:TAG|@DIGEST]',
  summary: 'a registry (distribution API v2), pull only',
  options: ['os', 'arch', 'architecture', 'variant', 'username', 'password', 'insecure', 'max_workers'],
  async open(target, settings) {
    const label = redactUri(target.uri);
    checkOptions(target, source, label);
    const ref = normalizeRegistryReference(orUsage(label, parseRegistryReference(target.body)));
    const defaults = settings.platform ?? DEFAULT_PLATFORM;
    const platform: PlatformWanted = {
      os: stringOption(target, label, 'os') ?? defaults.os,
      architecture: stringOption(target, label, 'arch', 'architecture') ?? defaults.architecture,
      variant: stringOption(target, label, 'variant') ?? defaults.variant,
    };
    const insecure = orUsage(label, booleanOption(target.options, 'insecure', settings.insecure ?? false));
    const workers = target.options['max_workers'];
    if (workers !== undefined && (typeof workers !== 'number' || workers < 1)) throw usageError(`${label}: ?max_workers= takes a number from 1`);
    const parallel = typeof workers === 'number' ? workers : (settings.parallel ?? 4);
    const username = stringOption(target, label, 'username');
    const password = stringOption(target, label, 'password');
    const [{ RegistryInput }, { resolveCredentials }, { HttpClient, timeoutFromEnv }, { API_INSECURE_HINT, CLI_INSECURE_HINT }] = await Promise.all([
      import('../inputs/registry.js'),
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
    return new RegistryInput({ reference: ref, apiHost: ref.apiHost, insecure, platform, http, credentials, retries, parallelism: parallel, label: name, insecureHint });
  },
  async describe(input, signal) {
    const { resolved, config } = await input.describe(signal);
    return describedImage(config, resolved.manifest, resolved.manifestDigest, resolved.manifestMediaType);
  },
};

export const registryTransport: Transport = {
  name: 'registry',
  what: 'a container registry',
  aliases: [],
  source,
  destination: {
    planned:
      'registry:// as a destination is not available in this version yet (it is planned); write tar://FILE and push it with "skopeo copy docker-archive:FILE docker://…"',
  },
};
