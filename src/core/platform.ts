/**
 * Choosing one image from a multi-platform index.
 *
 * @module
 */
import type { Descriptor } from './codecs/common.js';

export interface PlatformWanted {
  readonly os: string;
  readonly architecture: string;
  /** '' matches only entries without a variant (occystrap's rule). */
  readonly variant: string;
}

export const DEFAULT_PLATFORM: PlatformWanted = { os: 'linux', architecture: 'amd64', variant: '' };

export function describePlatform(p: { os: string; architecture: string; variant?: string | undefined }): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/**
 * The first index entry whose os, architecture and variant equal the wanted ones
 * (a missing variant counts as ''). Entries without a platform (attestations) never match.
 */
export function choosePlatform(manifests: readonly Descriptor[], wanted: PlatformWanted): Descriptor | undefined {
  const variantOf = (architecture: string, variant: string) => (architecture === 'arm64' && variant === 'v8' ? '' : variant);
  const want = variantOf(wanted.architecture, wanted.variant);
  const exact = manifests.find(
    (m) => m.platform !== undefined && m.platform.os === wanted.os && m.platform.architecture === wanted.architecture && (m.platform.variant ?? '') === wanted.variant,
  );
  // arm64's only variant is v8, so 'arm64' and 'arm64/v8' name the same platform (as in containerd).
  return (
    exact ??
    manifests.find(
      (m) => m.platform !== undefined && m.platform.os === wanted.os && m.platform.architecture === wanted.architecture && variantOf(m.platform.architecture, m.platform.variant ?? '') === want,
    )
  );
}

/** The platforms an index offers, for the "no match" error. */
export function availablePlatforms(manifests: readonly Descriptor[]): string[] {
  return manifests.filter((m) => m.platform !== undefined).map((m) => describePlatform(m.platform as NonNullable<Descriptor['platform']>));
}
