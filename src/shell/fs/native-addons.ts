/**
 * occystrap's own small N-API addons (native/*.c), compiled into dist/native/ by
 * `npm run build` (scripts/build-native.mjs) where a C compiler is there. Each is
 * optional: a caller gets the addon, or the reason it is not there.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export type AddonName = 'isal-gzip' | 'fsops';

/**
 * Where `npm run build` puts an addon: dist/native/. This module runs from dist/bin/ (the
 * bundle) or from dist/src/shell/fs/ (the library), so both relative places are tried.
 */
export function addonCandidates(name: AddonName): string[] {
  return ['../native/', '../../../native/'].map((dir) => fileURLToPath(new URL(`${dir}${name}.node`, import.meta.url)));
}

const loaded = new Map<AddonName, unknown>();

/** The addon, or why it is not there: not built, or built but not loadable here. */
export function loadAddon<T>(name: AddonName): T | string {
  const cached = loaded.get(name);
  if (cached !== undefined) return cached as T | string;
  let result: T | string;
  const file = addonCandidates(name).find((candidate) => existsSync(candidate));
  if (file === undefined) result = `the ${name} addon is not built (looked for ${addonCandidates(name).join(', ')})`;
  else {
    try {
      result = createRequire(import.meta.url)(file) as T;
    } catch (e) {
      result = `the ${name} addon ${file} does not load (${(e as Error).message.split('\n')[0]})`;
    }
  }
  loaded.set(name, result);
  return result;
}
