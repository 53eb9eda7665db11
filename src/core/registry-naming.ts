/**
 * Registry host and repository naming, including Docker Hub's conventions.
 *
 * @module
 */
import type { RegistryReference } from './uri.js';

/** `docker.io` and `index.docker.io` are served by `registry-1.docker.io`; bare names there get `library/`. */
export function normalizeRegistryReference(ref: RegistryReference): RegistryReference & { readonly apiHost: string } {
  const hub = ref.host === 'docker.io' || ref.host === 'index.docker.io' || ref.host === 'registry-1.docker.io';
  const name = hub && !ref.name.includes('/') ? `library/${ref.name}` : ref.name;
  return { ...ref, name, apiHost: hub ? 'registry-1.docker.io' : ref.host };
}

/** The scope string a token for pulling `name` asks for. */
export function pullScope(name: string): string {
  return `repository:${name}:pull`;
}

/** The scope string a token for pushing to `name` asks for (a push also reads: HEAD, mounts). */
export function pushScope(name: string): string {
  return `repository:${name}:pull,push`;
}
