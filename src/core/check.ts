/**
 * The rules of `occystrap check`: pure functions over facts about an image (its manifest
 * when the source has one, its config, and what a scan of each layer tar found). The
 * shell gathers the facts (hashing, reading files); nothing here does I/O.
 *
 * Check ids and severities follow occystrap (occystrap-features.md §7.1).
 *
 * @module
 */
import type { Digest } from './digest.js';
import type { ConfigElement, ImageName, LayerDescriptor, SkipReason } from './element.js';
import { layerCompression, MediaTypes } from './media-types.js';
import type { TarEntryInfo } from './filters/search.js';

export type Severity = 'error' | 'warning' | 'info';

export interface CheckResult {
  readonly severity: Severity;
  /** The check id, e.g. `diff-id`, `whiteout`, `history-count`. */
  readonly check: string;
  readonly message: string;
}

export type CheckMode = 'fast' | 'full';

/** A layer over this many compressed bytes gets a `large-layer` warning (1 GiB). */
export const LARGE_LAYER_BYTES = 1024 * 1024 * 1024;

/** How many `duplicate-file` results are listed before "... and N more". */
export const DUPLICATES_LISTED = 10;

const error = (check: string, message: string): CheckResult => ({ severity: 'error', check, message });
const warning = (check: string, message: string): CheckResult => ({ severity: 'warning', check, message });
const info = (check: string, message: string): CheckResult => ({ severity: 'info', check, message });

// ------------------------------------------------------------------ facts

/** What a registry manifest says (sources without one, such as tar://, give none). */
export interface ManifestFacts {
  readonly schemaVersion: unknown;
  readonly mediaType?: string | undefined;
  readonly config?: { readonly digest?: string | undefined; readonly size?: number | undefined } | undefined;
  readonly layers: readonly { readonly mediaType?: string | undefined; readonly size?: number | undefined; readonly digest?: string | undefined }[];
}

/** The config blob as the shell measured it. */
export interface ConfigBlobFacts {
  readonly digest: Digest;
  readonly size: number;
}

/** What the shell found in one delivered layer file. */
export interface LayerScan {
  readonly index: number;
  /** The diff_id the config declares for this position. */
  readonly expectedDiffId: Digest;
  /** sha256 of every byte of the delivered (uncompressed) file. */
  readonly computedDiffId: Digest;
  readonly size: number;
  /** Set when the file is not a readable tar. */
  readonly tarError?: string | undefined;
  /** Findings about individual entries ({@link entryChecks}). */
  readonly entryResults: readonly CheckResult[];
  /** Regular files, normalised (no leading `./` or `/`), for `duplicate-file`. */
  readonly regularFiles: readonly string[];
}

// ------------------------------------------------------- metadata (fast)

function configJson(raw: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(raw));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(1)} GB`;
}

const OCI_TYPES: ReadonlySet<string> = new Set([MediaTypes.ociManifest, MediaTypes.ociIndex]);

/**
 * The metadata checks (run in both modes): manifest structure when there is a manifest,
 * config structure, history against layers, compression and media-type compatibility,
 * large layers, deprecated fields. Without a manifest, layer facts come from the
 * source's layer descriptors (media type and declared size).
 */
export function metadataChecks(manifest: ManifestFacts | undefined, config: ConfigElement | undefined): CheckResult[] {
  const results: CheckResult[] = [];
  if (!manifest && !config) {
    results.push(warning('metadata', 'No manifest or config available; metadata checks skipped'));
    return results;
  }
  if (manifest) {
    if (manifest.schemaVersion !== 2) results.push(error('schema-version', `Manifest schemaVersion is ${JSON.stringify(manifest.schemaVersion) ?? 'missing'}, expected 2`));
    else results.push(info('schema-version', 'Manifest schemaVersion is 2'));
  }
  const json = config ? configJson(config.raw) : undefined;
  if (config) {
    const type = config.config.rootfs.type;
    if (type !== 'layers') results.push(error('rootfs-type', `Config rootfs.type is ${JSON.stringify(type)}, expected "layers"`));
    else results.push(info('rootfs-type', 'Config rootfs.type is "layers"'));
  }
  const diffIds = config?.config.rootfs.diff_ids.length;
  const layerCount = manifest ? manifest.layers.length : config?.layers.length;
  if (config && layerCount !== undefined && diffIds !== undefined) {
    const what = manifest ? 'Manifest' : 'The source';
    if (layerCount !== diffIds) results.push(error('layer-count', `${what} has ${layerCount} layers but config has ${diffIds} diff_ids`));
    else results.push(info('layer-count', `Layer count matches: ${layerCount} layers, ${diffIds} diff_ids`));
  }
  if (manifest) {
    const digest = manifest.config?.digest;
    if (digest) results.push(info('config-descriptor', `Config descriptor present (digest: ${digest}, size: ${manifest.config?.size ?? 'N/A'})`));
    else results.push(error('config-descriptor', 'Manifest has no config descriptor'));
  }
  if (config) {
    const history = config.config.history ?? [];
    const nonEmpty = history.filter((h) => h.empty_layer !== true).length;
    const layers = layerCount ?? config.config.rootfs.diff_ids.length;
    if (history.length === 0) results.push(info('history-count', 'No history entries present'));
    else if (nonEmpty !== layers) results.push(error('history-count', `History has ${nonEmpty} non-empty entries but image has ${layers} layers`));
    else results.push(info('history-count', `History entries match: ${nonEmpty} non-empty entries for ${layers} layers`));
  }

  const layerFacts: readonly { mediaType?: string | undefined; size?: number | undefined }[] = manifest
    ? manifest.layers
    : (config?.layers ?? []).map((l: LayerDescriptor) => ({ mediaType: l.mediaType, size: l.size }));
  const zstd = layerFacts.filter((l) => layerCompression(l.mediaType) === 'zstd').length;
  if (zstd > 0) {
    results.push(warning('zstd-compat', `${zstd} layer(s) use zstd compression; Docker Engine < 20.10 and containerd < 1.5 cannot pull this image`));
  }
  if (manifest) {
    const mt = manifest.mediaType ?? '';
    if (OCI_TYPES.has(mt)) results.push(info('oci-media-type', 'Image uses OCI media types; older Docker versions may not handle this correctly'));
    if (mt === MediaTypes.dockerManifest) results.push(info('docker-media-type', 'Image uses Docker v2 media types; some OCI-only tooling may not handle this'));
  } else if (layerFacts.length > 0) {
    if (layerFacts.every((l) => l.mediaType?.startsWith('application/vnd.oci.'))) {
      results.push(info('oci-media-type', 'Layers use OCI media types; older Docker versions may not handle this correctly'));
    } else if (layerFacts.every((l) => l.mediaType?.startsWith('application/vnd.docker.'))) {
      results.push(info('docker-media-type', 'Layers use Docker media types; some OCI-only tooling may not handle this'));
    }
  }
  layerFacts.forEach((l, i) => {
    if (l.size !== undefined && l.size > LARGE_LAYER_BYTES) results.push(warning('large-layer', `Layer ${i} is very large: ${formatSize(l.size)} compressed`));
  });
  const inner = json?.['config'];
  if (typeof inner === 'object' && inner !== null && (inner as Record<string, unknown>)['ArgsEscaped']) {
    results.push(warning('args-escaped', 'config.ArgsEscaped is set (Docker-specific, deprecated in OCI spec)'));
  }
  return results;
}

// ------------------------------------------------------------ full checks

/**
 * The config blob against the manifest's descriptor. Without a manifest there is no
 * descriptor: the source itself verified the config against the name it has (the
 * docker-save input checks `<hex>.json` and `blobs/sha256/<hex>` names), and the result
 * says so.
 */
export function configBlobChecks(manifest: ManifestFacts | undefined, config: ConfigElement, measured: ConfigBlobFacts): CheckResult[] {
  const results: CheckResult[] = [];
  const expected = manifest?.config?.digest;
  if (expected) {
    if (expected !== measured.digest) results.push(error('config-digest', `Config digest mismatch: expected ${expected}, got ${measured.digest}`));
    else results.push(info('config-digest', `Config digest verified: ${measured.digest}`));
  } else if (measured.digest !== config.digest) {
    results.push(error('config-digest', `Config digest mismatch: the source says ${config.digest}, the bytes hash to ${measured.digest}`));
  } else {
    results.push(info('config-digest', `Config digest ${measured.digest} (${measured.size} bytes); no manifest descriptor to compare with`));
  }
  const size = manifest?.config?.size;
  if (size !== undefined) {
    if (size !== measured.size) results.push(error('config-size', `Config size mismatch: expected ${size}, got ${measured.size}`));
    else results.push(info('config-size', `Config size verified: ${size} bytes`));
  }
  return results;
}

function basename(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

/** A path as a location in the root filesystem: no leading `./` or `/`. */
export function rootfsPath(path: string): string {
  let p = path;
  for (;;) {
    if (p.startsWith('./')) p = p.slice(2);
    else if (p.startsWith('/')) p = p.slice(1);
    else return p;
  }
}

/**
 * Findings about one tar entry of layer `layer`:
 *
 * - `whiteout` (error): a `.wh.` name with an empty target, or a target of `.` or `..`;
 *   (warning) a whiteout that is not a regular file;
 * - `whiteout-size` (warning): a whiteout file with content;
 * - `tar-timestamp` (error): a negative mtime;
 * - `tar-permissions` (warning): setuid or setgid together with world-writable.
 *
 * `.wh..wh..opq` (an opaque directory marker) is a valid whiteout.
 */
export function entryChecks(layer: number, entry: TarEntryInfo): CheckResult[] {
  const results: CheckResult[] = [];
  const base = basename(entry.path);
  if (base.startsWith('.wh.')) {
    const opaque = base === '.wh..wh..opq';
    const target = base.slice(4);
    if (!opaque && target === '') results.push(error('whiteout', `Layer ${layer}: empty whiteout target at ${entry.path}`));
    else if (!opaque && (target === '.' || target === '..')) results.push(error('whiteout', `Layer ${layer}: whiteout ${entry.path} names "${target}", outside its directory`));
    if (entry.kind !== 'file') {
      results.push(warning('whiteout', `Layer ${layer}: whiteout ${entry.path} is a ${entry.kind}, not an empty regular file`));
    } else if (entry.size > 0) {
      results.push(warning('whiteout-size', `Layer ${layer}: whiteout ${entry.path} is ${entry.size} bytes; whiteouts should be empty`));
    }
  }
  if (entry.mtime < 0) results.push(error('tar-timestamp', `Layer ${layer}: negative timestamp on ${entry.path} (mtime=${entry.mtime})`));
  if ((entry.mode & 0o6000) !== 0 && (entry.mode & 0o002) !== 0) {
    results.push(warning('tar-permissions', `Layer ${layer}: ${entry.path} has setuid/setgid with world-writable (mode=${(entry.mode & 0o7777).toString(8)})`));
  }
  return results;
}

/** Accumulates one layer's entries into a {@link LayerScan}. */
export class LayerScanBuilder {
  private readonly results: CheckResult[] = [];
  private readonly files: string[] = [];
  constructor(
    readonly index: number,
    readonly expectedDiffId: Digest,
  ) {}

  entry(entry: TarEntryInfo): void {
    this.results.push(...entryChecks(this.index, entry));
    if (entry.kind === 'file') this.files.push(rootfsPath(entry.path));
  }

  finish(measured: { computedDiffId: Digest; size: number; tarError?: string | undefined }): LayerScan {
    return {
      index: this.index,
      expectedDiffId: this.expectedDiffId,
      computedDiffId: measured.computedDiffId,
      size: measured.size,
      tarError: measured.tarError,
      entryResults: this.results,
      regularFiles: this.files,
    };
  }
}

/** `diff-id` and `tar-format` for one layer, then its entry findings. */
export function layerChecks(scan: LayerScan): CheckResult[] {
  const results: CheckResult[] = [];
  if (scan.computedDiffId !== scan.expectedDiffId) {
    results.push(error('diff-id', `Layer ${scan.index} diff_id mismatch: expected ${scan.expectedDiffId}, got ${scan.computedDiffId}`));
  } else {
    results.push(info('diff-id', `Layer ${scan.index} diff_id verified`));
  }
  if (scan.tarError !== undefined) results.push(error('tar-format', `Layer ${scan.index} is not a valid tar: ${scan.tarError}`));
  results.push(...scan.entryResults);
  return results;
}

/**
 * `duplicate-file` (info): regular files present in more than one layer (layers with the
 * same content count once), the first {@link DUPLICATES_LISTED} listed, then
 * `... and N more duplicate files`.
 */
export function duplicateFileChecks(scans: readonly LayerScan[]): CheckResult[] {
  const seen = new Map<string, number[]>();
  for (const scan of [...scans].sort((a, b) => a.index - b.index)) {
    for (const path of new Set(scan.regularFiles)) {
      const layers = seen.get(path);
      if (layers) layers.push(scan.index);
      else seen.set(path, [scan.index]);
    }
  }
  const results: CheckResult[] = [];
  let count = 0;
  for (const [path, layers] of seen) {
    if (layers.length < 2) continue;
    count++;
    if (count <= DUPLICATES_LISTED) results.push(info('duplicate-file', `File ${JSON.stringify(path)} appears in layers ${layers.join(', ')}`));
  }
  if (count > DUPLICATES_LISTED) results.push(info('duplicate-file', `... and ${count - DUPLICATES_LISTED} more duplicate files`));
  return results;
}

/**
 * A failure of the source while it was read (a digest mismatch the input refused, a
 * truncated archive, a missing layer) as a result: `diff-id` or `config-digest` when the
 * message says which, `blob-digest` for other digest errors, `source` otherwise.
 */
export function sourceFailure(e: unknown): CheckResult {
  const code = (e as { code?: unknown })?.code;
  const message = ((e as Error)?.message ?? String(e)).replace(/\s*\n\s*/g, ' ').trim();
  if (code === 'EDIGEST') {
    if (/diff_id/.test(message)) return error('diff-id', message);
    if (/\bconfig\b/.test(message)) return error('config-digest', message);
    return error('blob-digest', message);
  }
  return error('source', message);
}

// ------------------------------------------------------------------ a run

export interface CheckReport {
  readonly image: string;
  readonly tag: string;
  readonly mode: CheckMode;
  readonly errors: number;
  readonly warnings: number;
  readonly results: readonly CheckResult[];
}

/**
 * Collects the facts of one check run as they arrive (config first, layers in any order)
 * and assembles the results in a fixed order: metadata, config blob, layers by index,
 * duplicate files, source failure.
 */
export class CheckRun {
  private image: ImageName | undefined;
  private config: ConfigElement | undefined;
  private readonly head: CheckResult[] = [];
  private readonly scans: LayerScan[] = [];
  private readonly skipped: { index: number; diffId: Digest; reason: SkipReason }[] = [];
  private readonly failures: CheckResult[] = [];

  constructor(
    readonly mode: CheckMode,
    private manifest: ManifestFacts | undefined = undefined,
  ) {}

  /** Manifest facts learned separately from the element stream (registry sources). */
  setManifest(manifest: ManifestFacts): void {
    this.manifest = manifest;
  }

  /** The config arrived; `measured` is given in full mode. */
  addConfig(config: ConfigElement, measured?: ConfigBlobFacts): void {
    this.config = config;
    this.image = config.image;
    if (measured) this.head.push(...configBlobChecks(this.manifest, config, measured));
  }

  addLayer(scan: LayerScan): void {
    this.scans.push(scan);
  }

  addSkipped(layer: LayerDescriptor, reason: SkipReason): void {
    this.skipped.push({ index: layer.index, diffId: layer.diffId, reason });
  }

  addFailure(e: unknown): void {
    this.failures.push(sourceFailure(e));
  }

  report(): CheckReport {
    const results: CheckResult[] = [...metadataChecks(this.manifest, this.config), ...this.head];
    if (this.mode === 'full') {
      const perLayer = new Map<number, CheckResult[]>();
      for (const scan of this.scans) perLayer.set(scan.index, layerChecks(scan));
      for (const s of this.skipped) {
        perLayer.set(
          s.index,
          s.reason === 'duplicate'
            ? [info('diff-id', `Layer ${s.index} has the same content as an earlier layer (${s.diffId}); checked once`)]
            : [warning('diff-id', `Layer ${s.index} (${s.diffId}) was not delivered by the source; not checked`)],
        );
      }
      for (const index of [...perLayer.keys()].sort((a, b) => a - b)) results.push(...(perLayer.get(index) as CheckResult[]));
      results.push(...duplicateFileChecks(this.scans));
    }
    results.push(...this.failures);
    return {
      image: this.image?.name ?? 'unknown',
      tag: this.image?.tag ?? 'unknown',
      mode: this.mode,
      errors: results.filter((r) => r.severity === 'error').length,
      warnings: results.filter((r) => r.severity === 'warning').length,
      results,
    };
  }
}

/**
 * The text report: `Errors:`, `Warnings:` and `Info:` sections (each `  [id] message`,
 * then a blank line), then
 * `Check complete (fast (metadata only)|full): N error(s), M warning(s)`.
 */
export function formatCheckText(report: CheckReport): string {
  let out = '';
  const section = (title: string, severity: Severity) => {
    const rs = report.results.filter((r) => r.severity === severity);
    if (rs.length === 0) return;
    out += `${title}:\n`;
    for (const r of rs) out += `  [${r.check}] ${r.message}\n`;
    out += '\n';
  };
  section('Errors', 'error');
  section('Warnings', 'warning');
  section('Info', 'info');
  const mode = report.mode === 'fast' ? 'fast (metadata only)' : 'full';
  out += `Check complete (${mode}): ${report.errors} error(s), ${report.warnings} warning(s)\n`;
  return out;
}

/** The `-O json` document. */
export function checkReportJson(report: CheckReport): unknown {
  return {
    image: report.image,
    tag: report.tag,
    mode: report.mode,
    errors: report.errors,
    warnings: report.warnings,
    results: report.results.map((r) => ({ severity: r.severity, check: r.check, message: r.message })),
  };
}
