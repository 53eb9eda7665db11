/**
 * Multi-platform copies, as pure data: which entries of a source index are copied
 * (`--all-platforms`, `--platforms LIST`) and the index pushed after them.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import type { Descriptor } from '../codecs/common.js';
import type { ImageIndex } from '../codecs/oci.js';
import { availablePlatforms, choosePlatform, describePlatform, type PlatformWanted } from '../platform.js';

/** `linux/amd64,linux/arm/v7`: each `OS/ARCH[/VARIANT]`. */
export function parsePlatformList(text: string): E.Either<string, PlatformWanted[]> {
  const out: PlatformWanted[] = [];
  for (const item of text.split(',')) {
    const parts = item.trim().split('/');
    if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) return E.left(`${JSON.stringify(item.trim())} is not OS/ARCH[/VARIANT] (e.g. linux/arm64, linux/arm/v7)`);
    out.push({ os: parts[0] as string, architecture: parts[1] as string, variant: parts[2] ?? '' });
  }
  return E.right(out);
}

/** Entries for no platform of their own: attestations (`unknown/unknown`) and entries without one. */
const isImageEntry = (d: Descriptor) => d.platform !== undefined && d.platform.os !== 'unknown' && d.platform.architecture !== 'unknown';

/**
 * The entries to copy, in index order: every image entry for `all`, else the one for each
 * platform listed (each must be there; `Left` names the one missing and what is offered).
 */
export function choosePlatforms(index: ImageIndex, wanted: 'all' | readonly PlatformWanted[]): E.Either<string, Descriptor[]> {
  if (wanted === 'all') {
    const all = index.manifests.filter(isImageEntry);
    return all.length > 0 ? E.right(all) : E.left('the index lists no image for a platform');
  }
  const chosen = new Set<Descriptor>();
  for (const w of wanted) {
    const d = choosePlatform(index.manifests, w);
    if (!d) return E.left(`no image for ${describePlatform(w)} in the index (available: ${availablePlatforms(index.manifests).join(', ') || 'none'})`);
    chosen.add(d);
  }
  return E.right(index.manifests.filter((d) => chosen.has(d)));
}

/** One copied entry: the source's descriptor and the manifest pushed for it. */
export interface CopiedEntry {
  readonly source: Descriptor;
  readonly pushed: { readonly digest: string; readonly size: number; readonly mediaType: string };
}

const encoder = new TextEncoder();

/**
 * The index to push last. When every entry was copied unchanged, the source's bytes (so
 * the index keeps its digest); otherwise a new index of the same media type listing the
 * copies in source order, each with its platform and annotations, and the source index's
 * annotations.
 */
export function indexToPush(source: { readonly mediaType: string; readonly raw: Uint8Array; readonly document: ImageIndex }, copied: readonly CopiedEntry[]): { mediaType: string; bytes: Uint8Array } {
  const unchanged = copied.length === source.document.manifests.length && copied.every((c, i) => c.pushed.digest === c.source.digest && source.document.manifests[i] === c.source);
  if (unchanged) return { mediaType: source.mediaType, bytes: source.raw };
  const doc = {
    schemaVersion: 2,
    mediaType: source.mediaType,
    manifests: copied.map((c) => ({
      mediaType: c.pushed.mediaType,
      digest: c.pushed.digest,
      size: c.pushed.size,
      ...(c.source.platform ? { platform: c.source.platform } : {}),
      ...(c.source.annotations ? { annotations: c.source.annotations } : {}),
    })),
    ...(source.document.annotations ? { annotations: source.document.annotations } : {}),
  };
  return { mediaType: source.mediaType, bytes: encoder.encode(JSON.stringify(doc)) };
}
