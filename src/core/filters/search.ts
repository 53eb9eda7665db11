/**
 * The `search` filter: list the paths in every layer that match a glob or a regular
 * expression, and pass the image on untouched.
 *
 * Layer bytes reach this pure module through a port ({@link ReadLayer}): the shell gives
 * a function that streams a temp file the caller owns. The tar is parsed here with the
 * project's own reader (`../tar/reader.ts`), streaming; nothing is written.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { RE2JS } from 're2js';
import { type Digest, digestHex } from '../digest.js';
import { Forms, type ImageElement, type ImageName, type LayerDescriptor, type DataPayload, releaseElement, repositoryPath, type TarFile, tarOf } from '../element.js';
import { usageError } from '../errors.js';
import type { TempFile } from '../ownership.js';
import { DownstreamForms, ensureTar, keepForms } from '../pipeline/layer-forms.js';
import type { ImageFilter, StageContext, WantsLayer } from '../pipeline/types.js';
import { printable } from '../printable.js';
import { globMatcher } from './glob.js';
import { readTar, type TarEntry, TarReadError } from '../tar/reader.js';

// ------------------------------------------------------------------ ports

/**
 * Port: stream the bytes of a temp file. The caller must own `file` for as long as it
 * reads (a `TempFile` path is valid only while its holder owns it).
 */
export type ReadLayer = (file: TempFile, signal: AbortSignal) => AsyncIterable<Uint8Array>;

// ------------------------------------------------------------ tar entries

/** Entry kinds, named as occystrap names them. */
export type EntryKind = 'file' | 'directory' | 'symlink' | 'hardlink' | 'fifo' | 'character device' | 'block device' | 'unknown';

/** What a tar header says about one entry (data is not read). */
export interface TarEntryInfo {
  /** The path as stored (PAX `path` and GNU long names applied); a directory's trailing `/` removed. */
  readonly path: string;
  readonly kind: EntryKind;
  readonly size: number;
  /** Full mode bits, setuid/setgid/sticky included. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Seconds since the epoch; a PAX `mtime` record wins over the header (it may be negative or fractional). */
  readonly mtime: number;
  /** Target of a symlink or hardlink. */
  readonly linkname?: string;
}

function kindOf(entry: TarEntry): EntryKind {
  if (entry.unknownType !== undefined) return 'unknown';
  switch (entry.header.type) {
    case 'file':
      return 'file';
    case 'directory':
      return 'directory';
    case 'symlink':
      return 'symlink';
    case 'link':
      return 'hardlink';
    case 'fifo':
      return 'fifo';
    case 'character-device':
      return 'character device';
    case 'block-device':
      return 'block device';
  }
}

function describeEntry(entry: TarEntry): TarEntryInfo {
  const header = entry.header;
  const kind = kindOf(entry);
  let path = header.name;
  if (kind === 'directory' && path.length > 1) path = path.replace(/\/+$/, '');
  return {
    path,
    kind,
    size: header.size,
    mode: header.mode,
    uid: header.uid,
    gid: header.gid,
    mtime: header.mtime,
    ...((kind === 'symlink' || kind === 'hardlink') && header.linkname !== undefined ? { linkname: header.linkname } : {}),
  };
}

/**
 * The entries of a tar stream, header by header, in archive order, read by the project's
 * tar reader in its lenient mode (a missing end marker, a name that is not UTF-8 and an
 * unknown entry type are listed, not refused, as Python's tarfile lists them). Entry data
 * is skipped as it streams by. A malformed tar raises {@link TarReadError}; an error of
 * `bytes` itself is raised as is. An empty stream (zero bytes) is not a tar (Python:
 * "empty file"). Returning early stops reading `bytes`.
 */
export async function* tarEntries(bytes: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntryInfo, void, undefined> {
  let total = 0;
  async function* counted(): AsyncGenerator<Uint8Array, void, undefined> {
    for await (const chunk of bytes) {
      total += chunk.length;
      yield chunk;
    }
  }
  // Extras of global headers stay apart: a listing needs none, so an entry costs the same however many are in effect.
  for await (const entry of readTar(counted(), { lenient: true, globalExtrasApart: true })) yield describeEntry(entry);
  if (total === 0) throw new TarReadError('empty file (0 bytes)', 0);
}

// ---------------------------------------------------------------- matching

export interface SearchOptions {
  readonly pattern: string;
  /** Regular expression, found anywhere in the path (RE2 syntax), instead of a glob. */
  readonly regex: boolean;
  /** `image:tag:layer:path` lines instead of the human report. */
  readonly scriptFriendly: boolean;
}

/** What the regex engine does not have, for the error message. */
const REGEX_DIALECT = 'regular expressions use RE2 syntax (linear time): no lookahead, lookbehind or backreferences';

/**
 * `\uXXXX` and `\u{X...}` (JavaScript) as RE2's `\x{...}`; every other escape is left for
 * RE2 to accept or refuse (re2js's own `translateRegExp` turns an unknown escape such as
 * `\k<n>` into a literal, silently changing what a pattern means).
 */
function jsUnicodeEscapesToRe2(pattern: string): string {
  return pattern.replace(/\\(?:u([0-9A-Fa-f]{4})|u\{([0-9A-Fa-f]+)\}|[^])/g, (whole, four?: string, braced?: string) => {
    const hex = four ?? braced;
    return hex === undefined ? whole : `\\x{${hex}}`;
  });
}

/**
 * The matcher: a glob must match the full path or its basename (fnmatch semantics, `*`
 * crosses `/`); a regex is searched anywhere in the path.
 *
 * Regexes run on RE2 (the `re2js` port), not on the backtracking `RegExp`: a user's
 * `(a+)+$` cannot then run for ever on a hostile path, and matching time is linear in
 * the path. JavaScript's `\u0041` and `\u{1F600}` escapes are translated first.
 */
export function searchMatcher(options: Pick<SearchOptions, 'pattern' | 'regex'>): E.Either<string, (path: string) => boolean> {
  if (options.regex) {
    let re: RE2JS;
    try {
      re = RE2JS.compile(jsUnicodeEscapesToRe2(options.pattern));
    } catch (e) {
      const why = ((e as Error).message ?? String(e)).replace(/^error parsing regexp: /, '');
      return E.left(`invalid regular expression ${JSON.stringify(options.pattern)}: ${why} (${REGEX_DIALECT})`);
    }
    return E.right((path) => re.test(path));
  }
  const matches = globMatcher(options.pattern);
  return E.right((path) => {
    if (matches(path)) return true;
    const slash = path.lastIndexOf('/');
    return slash >= 0 && matches(path.slice(slash + 1));
  });
}

function flag(options: Readonly<Record<string, unknown>>, ...keys: string[]): E.Either<string, boolean> {
  for (const key of keys) {
    if (!Object.hasOwn(options, key)) continue;
    const v = options[key];
    if (typeof v === 'boolean') return E.right(v);
    if (v === 1 || v === 0) return E.right(v === 1);
    return E.left(`search: ${key}= takes true or false, got ${JSON.stringify(v)}`);
  }
  return E.right(false);
}

/**
 * Options of `-f search:pattern=P[,regex=true][,script_friendly=true]`
 * (`script-friendly` is accepted too).
 */
export function parseSearchOptions(options: Readonly<Record<string, unknown>>): E.Either<string, SearchOptions> {
  const known = ['pattern', 'regex', 'script_friendly', 'script-friendly'];
  const unknown = Object.keys(options).filter((k) => !known.includes(k));
  if (unknown.length > 0) return E.left(`search: unknown option ${unknown.join(', ')}; it takes pattern=P, regex=true|false, script_friendly=true|false`);
  const raw = Object.hasOwn(options, 'pattern') ? options['pattern'] : undefined;
  if (raw === undefined || raw === true || raw === '') return E.left('search needs a pattern: -f search:pattern=GLOB (or pattern=REGEX,regex=true)');
  if (Array.isArray(raw)) return E.left('search takes one pattern= (a "," inside a pattern cannot be written in a -f spec; use the search command)');
  if (typeof raw === 'boolean') return E.left(`search: pattern= got ${JSON.stringify(raw)}`);
  const regex = flag(options, 'regex');
  if (E.isLeft(regex)) return regex;
  const scriptFriendly = flag(options, 'script_friendly', 'script-friendly');
  if (E.isLeft(scriptFriendly)) return scriptFriendly;
  const parsed: SearchOptions = { pattern: String(raw), regex: regex.right, scriptFriendly: scriptFriendly.right };
  const matcher = searchMatcher(parsed);
  if (E.isLeft(matcher)) return E.left(`search: ${matcher.left}`);
  return E.right(parsed);
}

// ------------------------------------------------------------------ report

export interface SearchMatch {
  readonly path: string;
  readonly entry: TarEntryInfo;
}

export interface LayerMatches {
  /** Manifest position of the first layer with this content. */
  readonly index: number;
  /** The layer's name as occystrap prints it (see {@link layerNameOf}). */
  readonly name: string;
  readonly diffId: Digest;
  readonly matches: readonly SearchMatch[];
}

export interface SearchReport {
  readonly image: ImageName;
  /** Layers with at least one match, in manifest order. */
  readonly layers: readonly LayerMatches[];
  /** Layers that were searched (distinct contents). */
  readonly layersSearched: number;
  /** Layers that could not be read as tar, with the reason. */
  readonly unreadable: readonly UnreadableLayer[];
}

export interface UnreadableLayer {
  readonly index: number;
  readonly name: string;
  readonly diffId: Digest;
  readonly reason: string;
}

/**
 * A layer's name in the reports, as occystrap names it: the input's name for the layer
 * (registry and OCI layout: compressed blob digest hex; docker-save: v1 directory id or
 * blob hex; rewritten: the new diff_id hex). A layer without one is named by its diff_id
 * hex, the one name every layer has.
 */
export function layerNameOf(layer: Pick<LayerDescriptor, 'sourceId' | 'diffId'>): string {
  return layer.sourceId !== '' ? layer.sourceId : digestHex(layer.diffId);
}

/** One line per match for the human report; names from the layer are escaped (one line each). */
function describeMatch(m: SearchMatch): string {
  const e = m.entry;
  const path = printable(m.path);
  if (e.kind === 'symlink' || e.kind === 'hardlink') return `${path} -> ${printable(e.linkname ?? '')} (${e.kind})`;
  if (e.kind === 'file') return `${path} (file, ${e.size} bytes)`;
  return `${path} (${e.kind})`;
}

/**
 * The report as text, exactly as occystrap prints it:
 *
 * - script-friendly: `image:tag:layer:path` per match, nothing when there is no match
 *   (image without its registry host, layer as {@link layerNameOf} names it);
 * - human: `Layer: <layer name>` then one indented line per match and a blank line, for
 *   each layer with matches, then `Found N match(es) in M layer(s).`; with no match,
 *   `No matches found.`
 *
 * Every field taken from the input (image name and tag, layer name, path, link target)
 * goes through `printable`, so a name with a line break or a terminal control stays on
 * its own line, escaped, and cannot fake a report line.
 */
export function formatSearchReport(report: SearchReport, scriptFriendly: boolean): string {
  const total = report.layers.reduce((n, l) => n + l.matches.length, 0);
  if (scriptFriendly) {
    let out = '';
    for (const layer of report.layers) {
      const prefix = `${printable(repositoryPath(report.image))}:${printable(report.image.tag)}:${printable(layer.name)}`;
      for (const m of layer.matches) out += `${prefix}:${printable(m.path)}\n`;
    }
    return out;
  }
  if (total === 0) return 'No matches found.\n';
  let out = '';
  for (const layer of report.layers) {
    out += `Layer: ${printable(layer.name)}\n`;
    for (const m of layer.matches) out += `  ${describeMatch(m)}\n`;
    out += '\n';
  }
  const layers = report.layers.length;
  out += `Found ${total} match${total === 1 ? '' : 'es'} in ${layers} layer${layers === 1 ? '' : 's'}.\n`;
  return out;
}

/**
 * The report as one JSON document (for `occystrap -O json search`). `image` is the full
 * name (with any registry host); `layer` is the name the text reports print, `diffId` the
 * sha256 of the layer's uncompressed tar.
 */
export function searchReportJson(report: SearchReport): unknown {
  return {
    image: report.image.name,
    tag: report.image.tag,
    layersSearched: report.layersSearched,
    matches: report.layers.flatMap((l) =>
      l.matches.map((m) => ({
        layer: l.name,
        diffId: l.diffId,
        index: l.index,
        path: m.path,
        type: m.entry.kind,
        size: m.entry.size,
        mode: m.entry.mode,
        uid: m.entry.uid,
        gid: m.entry.gid,
        mtime: m.entry.mtime,
        ...(m.entry.linkname !== undefined ? { linkname: m.entry.linkname } : {}),
      })),
    ),
    unreadable: report.unreadable.map((u) => ({ layer: u.name, diffId: u.diffId, index: u.index, reason: u.reason })),
  };
}

// ------------------------------------------------------------------ filter

export interface SearchFilterOptions {
  readonly pattern: string;
  readonly regex?: boolean;
  readonly read: ReadLayer;
  /** Called once, when the stream has ended without error, with everything found. */
  readonly report: (report: SearchReport) => void | Promise<void>;
  /** A layer that is not a readable tar (it is reported and skipped, as occystrap does). */
  readonly warn?: (message: string) => void;
}

/**
 * A pass-through that searches every layer it sees. Its `wants` asks for the tar of every
 * layer plus what the stages after ask for, so the input delivers every layer; a layer
 * that came only as a blob is inflated here (an `Inflate` effect). Each element is then
 * passed on with just the forms the stages after asked for (the others are released; a
 * layer they said they have becomes `Skipped: present`). A layer whose content (diff_id)
 * was already searched, and a layer delivered without data, are not searched again.
 *
 * - Errors: an unreadable layer is reported and passed on; an inflate or read failure
 *   releases the element's files and propagates.
 * - Ownership: files this stage drops or makes are released or passed on, never kept.
 */
export class SearchFilter implements ImageFilter {
  readonly name = 'search';
  private readonly matches: (path: string) => boolean;

  constructor(private readonly options: SearchFilterOptions) {
    const matcher = searchMatcher({ pattern: options.pattern, regex: options.regex ?? false });
    if (E.isLeft(matcher)) throw usageError(matcher.left);
    this.matches = matcher.right;
  }

  private readonly downstream = new DownstreamForms();

  /** The tar of every layer, plus whatever the stages after ask for. */
  wants(inner: WantsLayer): WantsLayer {
    return this.downstream.wrap(inner, Forms.tar);
  }

  apply(elements: AsyncIterable<ImageElement>, ctx: StageContext): AsyncIterable<ImageElement> {
    return this.run(elements, ctx);
  }

  private async *run(elements: AsyncIterable<ImageElement>, ctx: StageContext): AsyncGenerator<ImageElement, void, undefined> {
    let image: ImageName = { name: 'unknown', tag: 'unknown' };
    const found = new Map<Digest, LayerMatches>();
    const unreadable: UnreadableLayer[] = [];
    const searched = new Set<Digest>();
    const formCtx = { effects: ctx.effects, owner: ctx.owner, signal: ctx.signal };
    for await (const original of elements) {
      let element = original;
      if (element._tag === 'Config') {
        image = element.image;
      } else if (element.payload._tag !== 'Skipped') {
        const layer = element.layer;
        const after = this.downstream.of(layer.index);
        let payload: DataPayload = element.payload;
        const releaseHeld = releaseElement(ctx.effects, ctx.owner);
        if (!searched.has(layer.diffId)) {
          // Make the tar (if only the blob came), keeping the blob when the stages after want it.
          try {
            payload = (await ensureTar(layer, element.payload, formCtx, after.blob)).payload;
          } catch (e) {
            await releaseHeld(element).catch(() => undefined);
            throw e;
          }
          searched.add(layer.diffId);
          const tar = tarOf(payload) as TarFile;
          let result: Awaited<ReturnType<SearchFilter['searchLayer']>>;
          try {
            result = await this.searchLayer(tar.file, ctx.signal);
          } catch (e) {
            await releaseHeld({ _tag: 'Layer', layer, payload }).catch(() => undefined);
            throw e;
          }
          this.note(result, layer, unreadable, found);
        }
        const passed = await keepForms(payload, after, formCtx);
        if (passed !== element.payload) element = { _tag: 'Layer', layer, payload: passed };
      }
      yield element;
    }
    const layers = [...found.values()].sort((a, b) => a.index - b.index);
    await this.options.report({ image, layers, layersSearched: searched.size, unreadable: unreadable.sort((a, b) => a.index - b.index) });
  }

  private note(
    result: { _tag: 'Found'; matches: SearchMatch[] } | { _tag: 'Unreadable'; reason: string },
    layer: LayerDescriptor,
    unreadable: UnreadableLayer[],
    found: Map<Digest, LayerMatches>,
  ): void {
    if (result._tag === 'Unreadable') {
      unreadable.push({ index: layer.index, name: layerNameOf(layer), diffId: layer.diffId, reason: result.reason });
      this.options.warn?.(`search: layer ${layer.index} (diff_id ${layer.diffId}) is not a readable tar: ${result.reason}; skipped`);
    } else if (result.matches.length > 0) {
      found.set(layer.diffId, { index: layer.index, name: layerNameOf(layer), diffId: layer.diffId, matches: result.matches });
    }
  }

  private async searchLayer(
    file: TempFile,
    signal: AbortSignal,
  ): Promise<{ _tag: 'Found'; matches: SearchMatch[] } | { _tag: 'Unreadable'; reason: string }> {
    const matches: SearchMatch[] = [];
    try {
      for await (const entry of tarEntries(this.options.read(file, signal))) {
        if (this.matches(entry.path)) matches.push({ path: entry.path, entry });
      }
    } catch (e) {
      if (e instanceof TarReadError && !signal.aborted) return { _tag: 'Unreadable', reason: e.message };
      throw e;
    }
    return { _tag: 'Found', matches };
  }
}
