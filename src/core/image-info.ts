/**
 * What `occystrap info` reports about an image, computed from its config and layer
 * descriptors alone (no layer is read).
 *
 * @module
 */
import type { ConfigElement } from './element.js';
import { printable } from './printable.js';

export interface LayerInfo {
  readonly index: number;
  /** The blob digest for registry sources; the diff_id for docker-save sources. */
  readonly digest: string;
  /** Compressed size when the source declares it, else null. */
  readonly size: number | null;
  readonly mediaType: string;
  readonly diffId: string;
  readonly createdBy: string | null;
}

export interface ImageInfo {
  readonly image: string;
  readonly tag: string;
  readonly mediaType: string | null;
  readonly manifestDigest: string | null;
  readonly platform: string;
  readonly configDigest: string;
  readonly created: string | null;
  readonly author: string | null;
  readonly labels: Readonly<Record<string, string>>;
  readonly env: readonly string[];
  readonly entrypoint: readonly string[] | null;
  readonly cmd: readonly string[] | null;
  readonly workingDir: string | null;
  readonly user: string | null;
  readonly layers: readonly LayerInfo[];
}

/** Pair layers with the history entries that made them (entries with empty_layer excluded). */
export function imageInfo(config: ConfigElement, extra: { mediaType?: string; manifestDigest?: string; blobDigests?: readonly string[] } = {}): ImageInfo {
  const c = config.config;
  const history = (c.history ?? []).filter((h) => h.empty_layer !== true);
  const cc = c.config ?? {};
  const platform = [c.os ?? 'unknown', c.architecture ?? 'unknown', c.variant].filter((p) => p !== undefined && p !== '').join('/');
  return {
    image: config.image.name,
    tag: config.image.tag,
    mediaType: extra.mediaType ?? null,
    manifestDigest: extra.manifestDigest ?? null,
    platform,
    configDigest: config.digest,
    created: c.created ?? null,
    author: c.author ?? null,
    labels: cc.Labels ?? {},
    env: cc.Env ?? [],
    entrypoint: cc.Entrypoint ?? null,
    cmd: cc.Cmd ?? null,
    workingDir: cc.WorkingDir ?? null,
    user: cc.User ?? null,
    layers: config.layers.map((l) => ({
      index: l.index,
      digest: extra.blobDigests?.[l.index] ?? l.diffId,
      size: l.size ?? null,
      mediaType: l.mediaType,
      diffId: l.diffId,
      createdBy: history[l.index]?.created_by ?? null,
    })),
  };
}

/** The text form of {@link imageInfo}; every value from the image is escaped for the terminal. */
export function formatImageInfo(info: ImageInfo, formatBytes: (n: number) => string): string {
  const lines: string[] = [];
  lines.push(`Image:         ${printable(info.image)}`);
  lines.push(`Tag:           ${printable(info.tag)}`);
  if (info.mediaType) lines.push(`Media type:    ${printable(info.mediaType)}`);
  if (info.manifestDigest) lines.push(`Manifest:      ${info.manifestDigest}`);
  lines.push(`Platform:      ${printable(info.platform)}`);
  lines.push(`Config:        ${info.configDigest}`);
  if (info.created) lines.push(`Created:       ${printable(info.created)}`);
  if (info.author) lines.push(`Author:        ${printable(info.author)}`);
  if (info.entrypoint) lines.push(`Entrypoint:    ${printable(JSON.stringify(info.entrypoint))}`);
  if (info.cmd) lines.push(`Cmd:           ${printable(JSON.stringify(info.cmd))}`);
  if (info.workingDir) lines.push(`Working dir:   ${printable(info.workingDir)}`);
  if (info.user) lines.push(`User:          ${printable(info.user)}`);
  if (info.env.length > 0) {
    lines.push('Env:');
    for (const e of info.env) lines.push(`  ${printable(e)}`);
  }
  const labels = Object.keys(info.labels).sort();
  if (labels.length > 0) {
    lines.push('Labels:');
    for (const k of labels) lines.push(`  ${printable(k)}=${printable(info.labels[k] ?? '')}`);
  }
  lines.push(`Layers (${info.layers.length}):`);
  for (const l of info.layers) {
    const size = l.size === null ? '' : ` ${formatBytes(l.size)}`;
    lines.push(`  ${l.index} ${l.digest}${size} ${printable(l.mediaType)}`);
    if (l.digest !== l.diffId) lines.push(`    diff_id ${l.diffId}`);
    if (l.createdBy) lines.push(`    created_by ${printable(l.createdBy.length > 200 ? `${l.createdBy.slice(0, 197)}...` : l.createdBy)}`);
  }
  return `${lines.join('\n')}\n`;
}
