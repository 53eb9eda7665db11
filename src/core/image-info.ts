/**
 * What `occystrap info` reports about an image, computed from its config and, where the
 * source has one, its manifest (no layer is read). The fields and their names are the
 * Python occystrap's (`info -O json`), so scripts that read them keep working; the extra
 * fields this version adds are listed in docs/cli.md.
 *
 * @module
 */
import { type ConfigElement, repositoryPath } from './element.js';
import { layerCompression } from './media-types.js';
import { printable } from './printable.js';

/** The manifest facts `info` shows, for sources that have a manifest (registry, OCI layout). */
export interface ManifestFacts {
  readonly digest: string;
  readonly schemaVersion: unknown;
  readonly mediaType: string;
  readonly config: { readonly digest: string; readonly size: number };
  readonly layers: readonly { readonly mediaType: string; readonly size: number; readonly digest: string }[];
}

export interface LayerInfo {
  /** Position in the manifest, from 0 (the base layer), as occystrap counts. */
  readonly index: number;
  /** The compressed blob digest (manifest sources only). */
  readonly digest?: string;
  /** The compressed blob size in bytes (manifest sources only). */
  readonly size?: number;
  /** The manifest's media type; without a manifest, the one the source declares (docker-save: a tar). */
  readonly media_type: string;
  /** `gzip`, `zstd`, `none` or `unknown`, from the media type (manifest sources only). */
  readonly compression?: string;
  /** The uncompressed tar's digest, from the config's rootfs.diff_ids. */
  readonly diff_id: string;
  /** The history entry that made the layer (empty_layer entries skipped), when there is one. */
  readonly created_by?: string;
}

/** The JSON object `info -O json` prints: occystrap's fields first, then this version's extras. */
export interface ImageInfo {
  readonly image: string;
  readonly tag: string;
  readonly schema_version?: unknown;
  readonly media_type?: string;
  readonly config_digest: string;
  readonly config_size?: number;
  readonly layer_count: number;
  readonly total_compressed_size?: number;
  readonly layers: readonly LayerInfo[];
  readonly architecture: string;
  readonly os: string;
  readonly variant: string;
  readonly created: string;
  readonly diff_ids: readonly string[];
  readonly history_count: number;
  readonly empty_layer_count: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly env: readonly string[];
  readonly entrypoint: readonly string[] | null;
  readonly cmd: readonly string[] | null;
  readonly working_dir: string;
  readonly exposed_ports: readonly string[];
  readonly volumes: readonly string[];
  // This version's additions.
  /** The registry host, for registry sources (occystrap's `image` never carries it). */
  readonly registry?: string;
  readonly manifest_digest?: string;
  readonly platform: string;
  readonly author?: string;
  readonly user?: string;
}

/**
 * Build the report. Layers follow the config's layer list (manifest order); history
 * entries marked empty_layer are counted but not paired with a layer.
 */
export function imageInfo(config: ConfigElement, manifest?: ManifestFacts): ImageInfo {
  const c = config.config;
  const history = c.history ?? [];
  const made = history.filter((h) => h.empty_layer !== true);
  const cc = c.config ?? {};
  const layers = config.layers.map((l): LayerInfo => {
    const m = manifest?.layers[l.index];
    const createdBy = made[l.index]?.created_by;
    return {
      index: l.index,
      ...(m ? { digest: m.digest, size: m.size, media_type: m.mediaType, compression: layerCompression(m.mediaType) ?? 'unknown' } : { media_type: l.mediaType }),
      diff_id: l.diffId,
      ...(createdBy !== undefined ? { created_by: createdBy } : {}),
    };
  });
  return {
    image: repositoryPath(config.image),
    tag: config.image.tag,
    ...(manifest ? { schema_version: manifest.schemaVersion, media_type: manifest.mediaType } : {}),
    config_digest: config.digest,
    ...(manifest ? { config_size: manifest.config.size } : {}),
    layer_count: layers.length,
    ...(manifest ? { total_compressed_size: manifest.layers.reduce((n, l) => n + l.size, 0) } : {}),
    layers,
    architecture: c.architecture ?? '',
    os: c.os ?? '',
    variant: c.variant ?? '',
    created: c.created ?? '',
    diff_ids: c.rootfs.diff_ids,
    history_count: history.length,
    empty_layer_count: history.length - made.length,
    labels: cc.Labels ?? {},
    env: cc.Env ?? [],
    entrypoint: cc.Entrypoint ?? null,
    cmd: cc.Cmd ?? null,
    working_dir: cc.WorkingDir ?? '',
    exposed_ports: Object.keys(cc.ExposedPorts ?? {}),
    volumes: Object.keys(cc.Volumes ?? {}),
    ...(config.image.registry !== undefined ? { registry: config.image.registry } : {}),
    ...(manifest ? { manifest_digest: manifest.digest } : {}),
    platform: [c.os || 'unknown', c.architecture || 'unknown', c.variant].filter((p) => p !== undefined && p !== '').join('/'),
    ...(c.author !== undefined ? { author: c.author } : {}),
    ...(cc.User ? { user: cc.User } : {}),
  };
}

/** Cut a cell to `width` characters, marking the cut as occystrap does (`...`). */
function cut(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width)}...` : text;
}

/** A left-aligned table with `+---+` rules, the shape of occystrap's PrettyTable output. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [rule, line(header), rule, ...rows.map(line), rule];
}

/**
 * The text form of {@link imageInfo}, in occystrap's sections (the header lines, `Layers: N`
 * with a table, `Total compressed size`, `History:`, `Container Config:`), plus this
 * version's lines (`Registry:`, `Manifest:`, `Author:`, `User:`). Every value taken from
 * the image is escaped for the terminal.
 */
export function formatImageInfo(info: ImageInfo, formatBytes: (n: number) => string): string {
  const lines: string[] = [];
  const p = (v: unknown) => printable(String(v));
  lines.push(`Image:         ${p(info.image)}:${p(info.tag)}`);
  if (info.registry !== undefined) lines.push(`Registry:      ${p(info.registry)}`);
  if (info.media_type !== undefined) lines.push(`Media type:    ${p(info.media_type)}`);
  if (info.schema_version !== undefined) lines.push(`Schema:        v${p(info.schema_version)}`);
  if (info.manifest_digest !== undefined) lines.push(`Manifest:      ${info.manifest_digest}`);
  lines.push(`Platform:      ${p(info.platform)}`);
  if (info.created) lines.push(`Created:       ${p(info.created)}`);
  if (info.author) lines.push(`Author:        ${p(info.author)}`);
  lines.push(`Config digest: ${info.config_digest}`);
  if (info.config_size !== undefined) lines.push(`Config size:   ${formatBytes(info.config_size)}`);
  lines.push('');
  lines.push(`Layers: ${info.layer_count}`);
  if (info.total_compressed_size !== undefined) lines.push(`Total compressed size: ${formatBytes(info.total_compressed_size)}`);
  if (info.layers.length > 0) {
    const hasBlob = info.layers.some((l) => l.digest !== undefined);
    const hasCreatedBy = info.layers.some((l) => l.created_by !== undefined);
    const header = ['#', ...(hasBlob ? ['Compressed Digest'] : []), 'DiffID', ...(hasBlob ? ['Size', 'Compression'] : []), ...(hasCreatedBy ? ['Created By'] : [])];
    const rows = info.layers.map((l) => [
      String(l.index),
      ...(hasBlob ? [cut(l.digest ?? '', 25)] : []),
      cut(l.diff_id, 25),
      ...(hasBlob ? [l.size === undefined ? 'N/A' : formatBytes(l.size), p(l.compression ?? '')] : []),
      // One line per cell: a newline in a history entry would tear the table.
      ...(hasCreatedBy ? [cut(p(l.created_by ?? '').replace(/\s+/g, ' '), 50)] : []),
    ]);
    lines.push('', ...table(header, rows));
    // The table cuts digests as occystrap's does; scripts and people also get them whole.
    lines.push('', 'Layer digests:');
    for (const l of info.layers) lines.push(`  ${l.index} ${l.digest !== undefined ? `${l.digest} ` : ''}diff_id ${l.diff_id}`);
  }
  lines.push('', `History: ${info.history_count} entries (${info.empty_layer_count} empty)`);
  lines.push('', 'Container Config:');
  if (info.entrypoint && info.entrypoint.length > 0) lines.push(`  Entrypoint: ${p(JSON.stringify(info.entrypoint))}`);
  if (info.cmd && info.cmd.length > 0) lines.push(`  Cmd:        ${p(JSON.stringify(info.cmd))}`);
  if (info.working_dir) lines.push(`  WorkingDir: ${p(info.working_dir)}`);
  if (info.user) lines.push(`  User:       ${p(info.user)}`);
  if (info.exposed_ports.length > 0) lines.push(`  Ports:      ${info.exposed_ports.map(p).join(', ')}`);
  if (info.volumes.length > 0) lines.push(`  Volumes:    ${info.volumes.map(p).join(', ')}`);
  if (info.env.length > 0) {
    lines.push('  Environment:');
    for (const e of info.env) lines.push(`    ${p(e)}`);
  }
  const labels = Object.keys(info.labels).sort();
  if (labels.length > 0) {
    lines.push('  Labels:');
    for (const k of labels) lines.push(`    ${p(k)}=${p(info.labels[k] ?? '')}`);
  }
  return `${lines.join('\n')}\n`;
}
