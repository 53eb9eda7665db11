/**
 * `tar://` input: a docker-save archive (Docker 1.10–24 layout, Docker 25+ OCI layout,
 * skopeo's symlinked layout), read as one sequential stream.
 *
 * First a quick walk over the headers ({@link indexTarArchive}) finds `manifest.json` and
 * the config; when they come at the end (as `docker save` and skopeo write them) they are
 * read from their places first, so each layer is delivered as soon as the sequential read
 * has spooled it, while the later ones are still being read. The sequential read checks
 * that it meets them where the walk said.
 *
 * Entries are handled as they arrive. Only `manifest.json` is read into memory (capped).
 * Every regular file's place in the archive (data offset and size) is remembered: other
 * top-level `*.json` files (configs) are read back from there when the manifest names
 * one, so memory does not grow with their number. Every other file is streamed into an
 * owned temp file, decompressed if gzip/zstd, with its raw and uncompressed digests
 * computed in the same pass. Until `manifest.json` and the config are known, layers have
 * to be spooled; once they are, each later layer is delivered as soon as it is written,
 * and layers the output already has are drained without being written. A layer that
 * becomes needed only through a link seen after its entry was drained is read again
 * from its place in the archive (the input is a regular file).
 *
 * The archive must end with the tar end marker (two zero blocks); without it the archive
 * is refused as truncated, as when the marker is cut short. A name used by the image
 * (`manifest.json`, the config, a layer, a link on the way) that appears twice is refused:
 * tar readers disagree on which copy counts.
 *
 * @module
 */
import { createReadStream, promises as fs } from 'node:fs';
import { Readable, Transform, type TransformCallback, Writable } from 'node:stream';
import * as E from 'fp-ts/lib/Either.js';
import * as tarStream from 'tar-stream';
import { normalizeArchivePath, resolveLinkTarget } from '../../core/archive-path.js';
import { decodeDockerSaveManifest, type DockerSaveEntry } from '../../core/codecs/docker-save.js';
import { describeDecodeError, MAX_JSON_BYTES } from '../../core/codecs/common.js';
import { decodeImageConfig } from '../../core/codecs/oci.js';
import { type Digest, digestAlgorithm, digestHex, parseDigest } from '../../core/digest.js';
import { type ConfigElement, type DataPayload, type ImageElement, type ImageName, type LayerDescriptor, type LayerElement, type LayerForms, type TarConsumer, type UnnamedTarget, wantsAny } from '../../core/element.js';
import { AbortError, digestError, inputError } from '../../core/errors.js';
import { MediaTypes } from '../../core/media-types.js';
import type { TempFile } from '../../core/ownership.js';
import type { ImageInput, InputContext } from '../../core/pipeline/types.js';
import { imageNameOf, type ImageSelector, selectImage } from '../../core/plans/docker-save.js';
import { digestOfBlobPath } from '../../core/plans/oci-layout-read.js';
import { BlobSink, consumerWritable, readCapped, type SinkResult, spoolToFile, type SpoolResult } from '../fs/spool.js';
import { sha256Bytes } from '../fs/hash.js';
import { indexTarArchive, type Location } from './tar-index.js';

interface Spooled {
  readonly file: TempFile;
  readonly result: SpoolResult;
  readonly size: number;
}

interface PlannedLayer {
  readonly descriptor: LayerDescriptor;
  /** The manifest's path, normalised (links not yet followed). */
  readonly path: string;
  /** The blob digest the path names (`blobs/<alg>/<hex>`), when it names one. */
  readonly blobDigest: Digest | undefined;
  delivered: boolean;
}

interface Plan {
  readonly config: ConfigElement;
  readonly layers: PlannedLayer[];
}


/** Top-level files we never spool: metadata, and legacy `<hex>.json` configs (read back from the archive when named). */
function isTopLevelMetadata(name: string): boolean {
  return !name.includes('/') && (name.endsWith('.json') || name === 'repositories' || name === 'oci-layout');
}

const TAR_BLOCK = 512;
const roundUpToBlock = (n: number) => Math.ceil(n / TAR_BLOCK) * TAR_BLOCK;

/** Files the pipeline never needs: v1 per-layer metadata. */
function isIgnorable(name: string): boolean {
  return /(^|\/)(json|VERSION)$/.test(name) && name.includes('/');
}

/**
 * The archive as a stream only (a daemon's `GET /images/{name}/get`): read once, in order.
 * Without random access, nothing needed is drained to be read again later: every entry an
 * image may need is spooled (or streamed into a consumer in its turn), and top-level JSON
 * files (configs) are kept in memory, capped.
 */
export interface ArchiveStream {
  /** Open the archive's bytes (called once). */
  open(signal: AbortSignal): Promise<Readable>;
  /** Called when the read ends, whatever the outcome (close the connection). */
  close?(): Promise<void>;
  /**
   * What the daemon said of the image before the export (its inspect): with it the image
   * is planned as soon as its config passes, and each layer is delivered once an entry
   * whose content hashes to its diff_id has been spooled, long before `manifest.json`
   * (which daemons write last). `manifest.json` must then agree, or the run fails.
   */
  readonly expected?: { readonly configDigest: Digest; readonly diffIds: readonly Digest[]; readonly image: ImageName };
}

export interface DockerSaveInputOptions {
  /** A docker-save tarball on disk; or give {@link stream}. */
  readonly path?: string;
  readonly stream?: ArchiveStream;
  readonly selector: ImageSelector;
  /** How the source is named in messages (the URI the user typed). */
  readonly label?: string;
}

export class DockerSaveInput implements ImageInput {
  readonly description: string;
  constructor(private readonly options: DockerSaveInputOptions) {
    if ((options.path === undefined) === (options.stream === undefined)) throw new Error('DockerSaveInput: give a path or a stream, one of them');
    this.description = options.label ?? `tar://${options.path ?? 'stream'}`;
  }

  elements(ctx: InputContext): AsyncIterable<ImageElement> {
    return readDockerSave(this.options, this.description, ctx);
  }
}

async function* readDockerSave(options: DockerSaveInputOptions, label: string, ctx: InputContext): AsyncGenerator<ImageElement, void, undefined> {
  const { effects, owner, signal } = ctx;
  const fail = (message: string, cause?: unknown) => inputError(`${label}: ${message}`, cause);

  const file = options.path;
  if (file !== undefined) {
    try {
      const st = await fs.stat(file);
      if (!st.isFile()) throw fail('not a regular file; give the path of a docker-save tarball');
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') throw fail('no such file; check the path (docker save -o FILE makes one)');
      throw e;
    }
  }
  /** Top-level JSON files kept in memory when the archive is a stream (it cannot be read again). */
  const captured = new Map<string, Uint8Array>();
  let capturedBytes = 0;

  let manifestBytes: Uint8Array | undefined;
  let sawRepositories = false;
  const located = new Map<string, Location>();
  /** How many file and link entries carry each name: more than one is ambiguous. */
  const nameCounts = new Map<string, number>();
  /** Where the last entry's data (with padding) ends: the end marker must follow. */
  let entriesEnd = 0;
  const aliases = new Map<string, E.Either<string, string>>();
  const spooled = new Map<string, Spooled>();
  let plan: Plan | undefined;
  let manifestEntry: DockerSaveEntry | undefined;

  function resolveAliases(p: string): E.Either<string, string> {
    let current = p;
    for (let hop = 0; hop < 16; hop++) {
      const a = aliases.get(current);
      if (a === undefined) return E.right(current);
      if (E.isLeft(a)) return a;
      current = a.right;
    }
    return E.left(`too many links from ${p}`);
  }

  // The output is asked once per layer: a layer drained as unwanted and one delivered
  // after spooling would otherwise ask twice (a stat per layer for dir://).
  const answers = new Map<number, Promise<LayerForms>>();
  const formsFor = (d: LayerDescriptor): Promise<LayerForms> => {
    let answer = answers.get(d.index);
    if (!answer) {
      answer = ctx.wants(d);
      answers.set(d.index, answer);
    }
    return answer;
  };
  const wants = async (d: LayerDescriptor): Promise<boolean> => wantsAny(await formsFor(d));

  const release = async (s: Spooled) => effects.perform({ _tag: 'Release', file: s.file, owner });

  /** An entry's data, read again from the archive file. */
  const readLocated = (loc: Location): Readable => {
    if (file === undefined) throw fail('an entry is needed again after the stream passed it (a link that comes after its target); save the image to a file and read it with tar://');
    return loc.size === 0 ? Readable.from([]) : createReadStream(file, { start: loc.offset, end: loc.offset + loc.size - 1 });
  };

  const readConfigBytes = async (path: string): Promise<Uint8Array | undefined> => {
    const kept = captured.get(path);
    if (kept) return kept;
    const s = spooled.get(path);
    if (s) {
      if (s.size > MAX_JSON_BYTES) throw fail(`config ${path} is ${s.size} bytes, over the ${MAX_JSON_BYTES}-byte JSON limit`);
      return readCapped(createReadStream(s.file.path), MAX_JSON_BYTES, `config ${path}`);
    }
    const loc = located.get(path);
    if (!loc) return undefined;
    if (loc.size > MAX_JSON_BYTES) throw fail(`config ${path} is ${loc.size} bytes, over the ${MAX_JSON_BYTES}-byte JSON limit`);
    const raw = await readCapped(readLocated(loc), MAX_JSON_BYTES, `config ${path}`);
    if (raw.length !== loc.size) throw fail(`config ${path} changed while it was read (the archive file was modified); read it again`);
    return raw;
  };

  /**
   * Spool entry `name` from `open()` into a new owned temp file (released if that fails)
   * and keep it as the entry's spooled copy, releasing a copy spooled before.
   */
  const spoolEntry = async (name: string, open: () => Readable, failure: (e: unknown) => string): Promise<void> => {
    const file = await effects.perform({ _tag: 'CreateTemp', owner, purpose: `tar-${sourceIdOf(name).slice(0, 16)}` });
    let result: SpoolResult;
    try {
      result = await spoolToFile(open(), file.path, { compression: 'sniff', signal });
    } catch (e) {
      await effects.perform({ _tag: 'Release', file, owner });
      if (signal.aborted) throw new AbortError(signal.reason);
      throw fail(failure(e), e);
    }
    const previous = spooled.get(name);
    spooled.set(name, { file, result, size: result.contentSize });
    if (expected) {
      contentOfName.set(name, result.contentDigest);
      spooledByContent.set(result.contentDigest, name);
    }
    if (previous) await release(previous); // refused as ambiguous at the end if the image uses it
  };

  /** Spool an entry again from its place in the archive (it was drained before a link made it needed). */
  const spoolLocated = (name: string, loc: Location): Promise<void> =>
    spoolEntry(name, () => readLocated(loc), (e) => `cannot read ${name} again: ${(e as Error)?.message ?? String(e)}`);

  /** The manifest.json entry of the chosen image, once manifest.json has been read. */
  const chooseManifestEntry = (): DockerSaveEntry | undefined => {
    if (!manifestEntry && manifestBytes) {
      const decoded = decodeDockerSaveManifest(manifestBytes);
      if (E.isLeft(decoded)) throw fail(describeDecodeError(decoded.left));
      const chosen = selectImage(decoded.right, options.selector);
      if (E.isLeft(chosen)) throw fail(chosen.left);
      manifestEntry = chosen.right.entry;
    }
    return manifestEntry;
  };

  const expected = options.stream?.expected;
  /** Spooled entries by the sha256 of their content (a stream with `expected`: layers are found by diff_id). */
  const spooledByContent = new Map<Digest, string>();
  /** The content digest of every entry spooled so far, by name (to check manifest.json against a plan made early). */
  const contentOfName = new Map<string, Digest>();
  let plannedFromExpected = false;

  /** The layers `expected` lists, as planned layers (known by content, not by name). */
  const layersFromExpected = (diffIds: readonly string[]): PlannedLayer[] =>
    diffIds.map((diffId, index) => {
      if (!diffId.startsWith('sha256:')) throw fail(`config rootfs.diff_ids[${index}] is ${diffId}; only sha256 diff_ids are supported`);
      return { descriptor: { index, sourceId: digestHex(diffId as Digest), diffId: diffId as Digest, mediaType: MediaTypes.dockerLayerTar }, path: '', blobDigest: undefined, delivered: false };
    });

  /**
   * The config verified and waiting to follow the layers: the plan was made from the
   * layer list alone (see {@link planProvisionally}), so the image's config goes last.
   */
  let finalConfig: ConfigElement | undefined;
  /** The plan was made from the layer list alone (see {@link planProvisionally}). */
  const provisionalPlan = () => plan?.config.standIn === true;

  /** With `expected`: the plan, once the config with the expected digest has passed. */
  const tryPlanFromExpected = async (): Promise<ConfigElement | undefined> => {
    if (!expected || finalConfig || (plan && !provisionalPlan())) return undefined;
    const hex = expected.configDigest.slice('sha256:'.length);
    const name = [`${hex}.json`, `blobs/sha256/${hex}`].find((n) => captured.has(n) || spooled.has(n));
    if (!name) return undefined;
    const raw = (await readConfigBytes(name)) as Uint8Array;
    const digest = sha256Bytes(raw);
    if (digest !== expected.configDigest) throw digestError(`${label}: config ${name} has digest ${digest}, but the daemon named ${expected.configDigest}; the export is corrupt`);
    const config = decodeImageConfig(`${label}: config ${name}`, raw);
    if (E.isLeft(config)) throw inputError(describeDecodeError(config.left));
    const diffIds = config.right.rootfs.diff_ids;
    if (diffIds.length !== expected.diffIds.length || diffIds.some((d, i) => d !== expected.diffIds[i])) {
      throw fail(`the config's rootfs.diff_ids (${diffIds.length}) are not the layers the daemon listed (${expected.diffIds.length}); the image changed meanwhile; run again`);
    }
    if (plan) {
      // Planned from the layer list: the same layers, and this config goes after them.
      finalConfig = { _tag: 'Config', image: expected.image, digest, raw, config: config.right, layers: plan.config.layers };
      return undefined;
    }
    const layers = layersFromExpected(diffIds);
    const element: ConfigElement = { _tag: 'Config', image: expected.image, digest, raw, config: config.right, layers: layers.map((l) => l.descriptor) };
    plan = { config: element, layers };
    plannedFromExpected = true;
    return element;
  };

  /**
   * With `expected`, an entry that may be a layer arriving before the config (a legacy
   * export is sorted by id, the config anywhere among the layers), and an output that
   * takes a tar unnamed at its end: plan from the inspected layer list now, with a
   * provisional stand-in config, so the entry goes straight there instead of into a temp
   * file; the verified config follows the layers. Undefined (spool as usual) otherwise.
   */
  const planProvisionally = async (): Promise<ConfigElement | undefined> => {
    if (plan || !expected || file !== undefined) return undefined;
    const layers = layersFromExpected(expected.diffIds);
    const first = layers[0];
    if (!first || !(await formsFor(first.descriptor)).place?.unnamed) return undefined;
    const raw = new TextEncoder().encode(JSON.stringify({ rootfs: { type: 'layers', diff_ids: expected.diffIds } }));
    const config = decodeImageConfig(`${label}: the inspected layer list`, raw);
    if (E.isLeft(config)) throw inputError(describeDecodeError(config.left));
    const element: ConfigElement = {
      _tag: 'Config',
      image: expected.image,
      digest: sha256Bytes(raw),
      raw,
      config: config.right,
      layers: layers.map((l) => l.descriptor),
      provisional: true,
      standIn: true,
    };
    plan = { config: element, layers };
    plannedFromExpected = true;
    return element;
  };

  /** With a plan made from `expected`: deliver every layer whose content has been spooled. */
  async function* deliverByContent(): AsyncGenerator<LayerElement, void, undefined> {
    if (!plan || !plannedFromExpected) return;
    for (const layer of plan.layers) {
      if (layer.delivered) continue;
      const diffId = layer.descriptor.diffId;
      const name = spooledByContent.get(diffId);
      if (!name) continue;
      // Every position with this diff_id goes now, as one group: the data once, with the
      // first that is wanted (a layer listed twice, and nothing wanted, is present twice).
      const group = yield* skipDuplicates(plan.layers.filter((l) => !l.delivered && l.descriptor.diffId === diffId));
      const s = spooled.get(name) as Spooled;
      spooled.delete(name);
      spooledByContent.delete(diffId);
      const handOff = { done: false };
      try {
        yield* deliverGroup(group, { _tag: 'Tar', tar: { file: s.file, size: s.result.contentSize } }, handOff);
      } finally {
        if (!handOff.done) await release(s);
      }
    }
  }

  /** A plan made early must be the one manifest.json describes: its config, and each layer's content. */
  const checkManifestAgrees = () => {
    const entry = chooseManifestEntry() as DockerSaveEntry;
    const configPath = normalizeArchivePath(entry.Config);
    const resolvedConfig = E.isRight(configPath) ? resolveAliases(configPath.right) : configPath;
    const configName = `${(expected as { configDigest: Digest }).configDigest.slice('sha256:'.length)}`;
    if (E.isLeft(resolvedConfig) || !(resolvedConfig.right === `${configName}.json` || resolvedConfig.right === `blobs/sha256/${configName}`)) {
      throw fail(`manifest.json names config ${JSON.stringify(entry.Config)}, not the image the daemon inspected; the export is inconsistent`);
    }
    const layers = (plan as Plan).layers;
    if (entry.Layers.length !== layers.length) throw fail(`manifest.json lists ${entry.Layers.length} layers, the config ${layers.length}`);
    entry.Layers.forEach((p, i) => {
      const normalized = normalizeArchivePath(p);
      const resolved = E.isRight(normalized) ? resolveAliases(normalized.right) : normalized;
      const content = E.isRight(resolved) ? contentOfName.get(resolved.right) : undefined;
      if (content !== layers[i]?.descriptor.diffId) {
        throw fail(`manifest.json Layers[${i}] ${JSON.stringify(p)} is not the layer with diff_id ${layers[i]?.descriptor.diffId}; the export is inconsistent`);
      }
    });
  };

  /** Build the plan once manifest.json and the config are both available. */
  const tryPlan = async (): Promise<ConfigElement | undefined> => {
    if (plan) return undefined;
    if (!manifestBytes) return undefined;
    const entry = chooseManifestEntry();
    if (!entry) return undefined;
    refuseAmbiguousNames(); // the names seen so far; checked again at the end

    const configPath = normalizeArchivePath(entry.Config);
    if (E.isLeft(configPath)) throw fail(`manifest.json Config ${JSON.stringify(entry.Config)} ${configPath.left}; refusing a path outside the archive`);
    const resolvedConfig = resolveAliases(configPath.right);
    if (E.isLeft(resolvedConfig)) throw fail(`manifest.json Config: ${resolvedConfig.left}`);
    const raw = await readConfigBytes(resolvedConfig.right);
    if (!raw) return undefined;

    const configDigest = sha256Bytes(raw);
    if (expected && configDigest !== expected.configDigest) {
      throw digestError(`${label}: the export's config ${resolvedConfig.right} has digest ${configDigest}, but the daemon named ${expected.configDigest}; the image changed meanwhile (a tag moved?); run again`);
    }
    const namedDigest = digestNamedBy(resolvedConfig.right);
    if (namedDigest && E.isLeft(namedDigest)) throw fail(`config path ${resolvedConfig.right}: ${namedDigest.left}`);
    if (namedDigest && E.isRight(namedDigest) && namedDigest.right !== configDigest) {
      throw digestError(`${label}: config ${resolvedConfig.right} has digest ${configDigest}, but its name says ${namedDigest.right}; the archive is corrupt`);
    }
    const config = decodeImageConfig(`${label}: config ${resolvedConfig.right}`, raw);
    if (E.isLeft(config)) throw inputError(describeDecodeError(config.left));
    entry.Layers.forEach((layerPath, index) => {
      const normalized = normalizeArchivePath(layerPath);
      if (E.isLeft(normalized)) throw fail(`manifest.json Layers[${index}] ${JSON.stringify(layerPath)} ${normalized.left}; refusing a path outside the archive`);
    });
    const diffIds = config.right.rootfs.diff_ids;
    if (diffIds.length !== entry.Layers.length) {
      throw fail(`manifest.json lists ${entry.Layers.length} layers but the config's rootfs.diff_ids has ${diffIds.length}`);
    }
    const layers: PlannedLayer[] = entry.Layers.map((layerPath, index) => {
      const normalized = normalizeArchivePath(layerPath);
      if (E.isLeft(normalized)) throw fail(`manifest.json Layers[${index}] ${JSON.stringify(layerPath)} ${normalized.left}; refusing a path outside the archive`);
      const blob = digestNamedBy(normalized.right);
      if (blob && E.isLeft(blob)) throw fail(`manifest.json Layers[${index}] ${JSON.stringify(layerPath)}: ${blob.left}`);
      const diffId = diffIds[index] as Digest;
      if (!diffId.startsWith('sha256:')) throw fail(`config rootfs.diff_ids[${index}] is ${diffId}; only sha256 diff_ids are supported`);
      const sourceId = sourceIdOf(normalized.right);
      return {
        descriptor: { index, sourceId, diffId, mediaType: blob ? MediaTypes.ociLayer : MediaTypes.dockerLayerTar },
        path: normalized.right,
        blobDigest: blob && E.isRight(blob) ? blob.right : undefined,
        delivered: false,
      };
    });
    const element: ConfigElement = {
      _tag: 'Config',
      image: imageNameOf(entry, options.selector),
      digest: configDigest,
      raw,
      config: config.right,
      layers: layers.map((l) => l.descriptor),
    };
    plan = { config: element, layers };
    return element;
  };

  /** diff_ids whose data went with an element: a later layer with one is a duplicate. */
  const deliveredWithData = new Set<Digest>();

  /**
   * Yield `duplicate` for the layers whose diff_id already went with an element (a layer
   * listed twice, or through a link seen after the first copy was delivered, as when the
   * plan came first) and return the others.
   */
  async function* skipDuplicates(layers: PlannedLayer[]): AsyncGenerator<LayerElement, PlannedLayer[], undefined> {
    const rest: PlannedLayer[] = [];
    for (const layer of layers) {
      if (!deliveredWithData.has(layer.descriptor.diffId)) {
        rest.push(layer);
        continue;
      }
      layer.delivered = true;
      yield { _tag: 'Layer', layer: layer.descriptor, payload: { _tag: 'Skipped', reason: 'duplicate' } };
    }
    return rest;
  }

  /**
   * Yield a group of layers one file feeds: the first wanted one with `payload` (setting
   * `handOff.done` before the yield, so the caller never releases what was handed over),
   * the later ones as duplicates, unwanted earlier ones as present.
   */
  async function* deliverGroup(group: PlannedLayer[], payload: DataPayload, handOff: { done: boolean }): AsyncGenerator<LayerElement, void, undefined> {
    for (const layer of group) {
      layer.delivered = true;
      if (handOff.done) {
        yield { _tag: 'Layer', layer: layer.descriptor, payload: { _tag: 'Skipped', reason: 'duplicate' } };
      } else if (await wants(layer.descriptor)) {
        handOff.done = true;
        deliveredWithData.add(layer.descriptor.diffId);
        yield { _tag: 'Layer', layer: layer.descriptor, payload };
      } else {
        yield { _tag: 'Layer', layer: layer.descriptor, payload: { _tag: 'Skipped', reason: 'present' } };
      }
    }
  }

  /**
   * Deliver every planned layer whose (resolved) file is spooled or located, in manifest
   * order, asking the output first. A located layer the output takes as it is read goes to
   * its consumer from its place in the archive, once every earlier layer is delivered; until
   * then it waits, unless this is the `last` call (then it is spooled).
   */
  async function* deliverReady(last = false): AsyncGenerator<LayerElement, void, undefined> {
    if (!plan) return;
    const byPath = new Map<string, PlannedLayer[]>();
    for (const layer of plan.layers) {
      if (layer.delivered) continue;
      const resolved = resolveAliases(layer.path);
      if (E.isLeft(resolved)) throw fail(`manifest.json Layers[${layer.descriptor.index}]: ${resolved.left}`);
      if (!spooled.has(resolved.right) && !located.has(resolved.right)) continue;
      const group = byPath.get(resolved.right) ?? [];
      group.push(layer);
      byPath.set(resolved.right, group);
    }
    for (const [path, all] of byPath) {
      const group = yield* skipDuplicates(all);
      if (group.length === 0) {
        const s = spooled.get(path);
        spooled.delete(path);
        if (s) await release(s);
        continue;
      }
      if (!spooled.has(path)) {
        // Drained earlier (no layer needed it then), or already delivered for another layer.
        if (!(await anyWanted(group, wants))) {
          for (const layer of group) {
            layer.delivered = true;
            yield { _tag: 'Layer', layer: layer.descriptor, payload: { _tag: 'Skipped', reason: 'present' } };
          }
          continue;
        }
        const loc = located.get(path) as Location;
        const consumer = await consumerFor(group);
        if (consumer === 'later' && !last) continue;
        if (consumer !== 'none' && consumer !== 'later') {
          yield* consumeEntry(path, group, consumer, () => readLocated(loc));
          continue;
        }
        await spoolLocated(path, loc);
      }
      const s = spooled.get(path) as Spooled;
      spooled.delete(path);
      const handOff = { done: false };
      try {
        for (const layer of group) verifyLayer(layer, path, s.result);
        yield* deliverGroup(group, { _tag: 'Tar', tar: { file: s.file, size: s.result.contentSize } }, handOff);
      } finally {
        if (!handOff.done) await release(s);
      }
    }
  }

  const verifyLayer = (layer: PlannedLayer, path: string, result: SpoolResult) => {
    if (layer.blobDigest && layer.blobDigest !== result.rawDigest) {
      throw digestError(`${label}: blob ${path} has digest ${result.rawDigest}, but its name says ${layer.blobDigest}; the archive is corrupt`);
    }
    if (result.contentDigest !== layer.descriptor.diffId) {
      throw digestError(
        `${label}: layer ${layer.descriptor.index} (${path}) has diff_id ${result.contentDigest}, but the config says ${layer.descriptor.diffId}; the archive is corrupt`,
      );
    }
  };

  /** Which planned layers a file entry feeds (after links), or undefined before the plan exists. */
  const consumersOf = (name: string): PlannedLayer[] | undefined => {
    // A plan from `expected` knows layers by content, not by name: spool, then look.
    if (!plan || plannedFromExpected) return undefined;
    return plan.layers.filter((l) => {
      if (l.delivered) return false;
      const r = resolveAliases(l.path);
      return E.isRight(r) && r.right === name;
    });
  };

  /** The entries read before the sequential pass (manifest.json, the config), and where; the pass must meet each there. */
  const readEarly = new Map<string, Location>();
  const metEarly = new Set<string>();

  /** manifest.json and the config, read from where the header walk found them; the config element when that worked. */
  const planEarly = async (): Promise<ConfigElement | undefined> => {
    let index: Map<string, Location> | undefined;
    if (file === undefined) return undefined; // a stream has no headers to walk
    const handle = await fs.open(file, 'r');
    try {
      index = await indexTarArchive(handle);
    } finally {
      await handle.close();
    }
    const manifestAt = index?.get('manifest.json');
    if (!index || !manifestAt || manifestAt.size > MAX_JSON_BYTES) return undefined;
    let bytes: Uint8Array;
    try {
      bytes = await readCapped(readLocated(manifestAt), MAX_JSON_BYTES, `${label}: manifest.json`);
    } catch {
      return undefined; // the sequential read meets the same trouble and reports it in context
    }
    if (bytes.length !== manifestAt.size) return undefined;
    manifestBytes = bytes;
    readEarly.set('manifest.json', manifestAt);
    const entry = chooseManifestEntry();
    const configPath = entry ? normalizeArchivePath(entry.Config) : undefined;
    const configAt = configPath && E.isRight(configPath) ? index.get(configPath.right) : undefined;
    if (!configPath || E.isLeft(configPath) || !configAt) return undefined; // a link or missing: found on the way
    located.set(configPath.right, configAt);
    readEarly.set(configPath.right, configAt);
    return tryPlan();
  };

  /** A regular file entry: manifest.json into memory, metadata located only, anything else spooled unless the plan says it is not needed. */
  async function* handleFile(name: string, offset: number, size: number, stream: Readable, failure: () => Error | undefined): AsyncGenerator<ImageElement, void, undefined> {
    const early = readEarly.get(name);
    if (early && !metEarly.has(name) && early.offset === offset && early.size === size) {
      metEarly.add(name);
      stream.resume(); // read before the pass
      return;
    }
    if (name === 'manifest.json') {
      if (manifestBytes) {
        stream.resume();
        throw fail('the archive has two manifest.json entries; tar readers disagree on which one counts (GNU tar and Python take the last, others the first), so it is refused; save the image again');
      }
      if (size > MAX_JSON_BYTES) {
        stream.resume();
        throw fail(`manifest.json is ${size} bytes, over the ${MAX_JSON_BYTES}-byte limit for JSON documents`);
      }
      manifestBytes = await readCapped(stream, MAX_JSON_BYTES, `${label}: ${name}`);
      return;
    }
    if (isTopLevelMetadata(name) || isIgnorable(name)) {
      if (name === 'repositories') sawRepositories = true;
      if (file === undefined && name.endsWith('.json') && !name.includes('/')) {
        // A config, maybe: a stream cannot be read again, so keep it (capped).
        if (size > MAX_JSON_BYTES) {
          stream.resume();
          return; // not a config occystrap would read (refused as too big if the manifest names it)
        }
        capturedBytes += size;
        if (capturedBytes > MAX_CAPTURED_BYTES) throw fail(`the archive holds over ${MAX_CAPTURED_BYTES} bytes of top-level JSON files; save the image to a file and read it with tar://`);
        captured.set(name, await readCapped(stream, MAX_JSON_BYTES, `${label}: ${name}`));
        return;
      }
      stream.resume(); // a config among these is read back from the archive when the manifest names it
      return;
    }
    const listed = consumersOf(name);
    const consumers = listed === undefined ? undefined : yield* skipDuplicates(listed);
    if (consumers !== undefined && consumers.length === 0) {
      stream.resume(); // not part of the chosen image (a later link may still make it needed)
      return;
    }
    if (consumers !== undefined && !(await anyWanted(consumers, wants))) {
      stream.resume();
      for (const layer of consumers) {
        layer.delivered = true;
        yield { _tag: 'Layer', layer: layer.descriptor, payload: { _tag: 'Skipped', reason: 'present' } };
      }
      return;
    }
    const open = () => {
      const failed = failure();
      if (failed || stream.destroyed) throw failed ?? new Error('Unexpected end of data');
      return stream;
    };
    const consumer = consumers === undefined ? 'none' : await consumerFor(consumers);
    if (consumer === 'later' && file !== undefined) {
      // Read again from its place when its turn comes (deliverReady), straight into the output.
      stream.resume();
      return;
    }
    if (consumer !== 'none' && consumer !== 'later') {
      yield* consumeEntry(name, consumers as PlannedLayer[], consumer, open);
      return;
    }
    const target = consumers === undefined ? yield* unnamedTargetFor(name, size) : undefined;
    if (target === 'drain') {
      // Every layer is delivered: this copy is only hashed (manifest.json must agree with it).
      contentOfName.set(name, await hashEntry(name, open));
      return;
    }
    if (target) {
      yield* placeEntry(name, size, target, open);
      return;
    }
    await spoolEntry(name, open, (e) => `cannot read ${name}: ${describeTarError(e)}`);
  }

  /**
   * A stream with `expected` whose output takes tars unnamed (see {@link UnnamedTarPlacement}):
   * the place at its end for entry `name`, planning provisionally first when no config has
   * passed yet; `drain` when every layer is delivered already. Undefined (spool it) for the
   * config's own blob, or when the output has no such place.
   */
  async function* unnamedTargetFor(name: string, size: number): AsyncGenerator<ImageElement, UnnamedTarget | 'drain' | undefined, undefined> {
    if (!expected || file !== undefined) return undefined;
    if (name === `blobs/sha256/${digestHex(expected.configDigest)}`) return undefined;
    if (!plan) {
      const provisional = await planProvisionally();
      if (!provisional) return undefined;
      yield provisional;
    }
    if (!plannedFromExpected) return undefined;
    const next = (plan as Plan).layers.find((l) => !l.delivered);
    if (!next) return 'drain';
    const unnamed = (await formsFor(next.descriptor)).place?.unnamed;
    return unnamed ? await unnamed.claim(size, signal) : undefined;
  }

  /** Give entry `name`'s bytes to `sink`, to their end; on a failure the sink is aborted and the error names the entry. */
  const pour = async (sink: BlobSink, name: string, open: () => Readable): Promise<SinkResult> => {
    try {
      for await (const chunk of open()) {
        signal.throwIfAborted();
        await sink.write(chunk);
      }
      return await sink.end();
    } catch (e) {
      await sink.abort(e instanceof Error ? e : new Error(String(e)));
      if (signal.aborted) throw new AbortError(signal.reason);
      throw fail(`cannot read ${name}: ${describeTarError(e)}`, e);
    }
  };

  /** The content digest of entry `name` (decompressed when it is gzip/zstd), read to its end and not kept. */
  const hashEntry = async (name: string, open: () => Readable): Promise<Digest> =>
    ((await pour(new BlobSink({ tar: { writable: new Writable({ write: (_chunk, _enc, cb) => cb() }) } }, 'sniff'), name, open)).content as { digest: Digest }).digest;

  /**
   * Write entry `name` (decompressed when it is gzip/zstd) into the output's unnamed
   * `target`, then name it by its content: the undelivered layers with that diff_id get
   * it (the first wanted one `Placed`, the rest as {@link deliverGroup} does); content no
   * undelivered layer has is dropped. On any failure the target is dropped.
   */
  async function* placeEntry(name: string, storedSize: number, target: UnnamedTarget, open: () => Readable): AsyncGenerator<LayerElement, void, undefined> {
    // A large layer's bulk with O_DIRECT: it takes no page-cache pages (see DirectFileWriter).
    const sink = new BlobSink({ tar: { path: target.file.path, start: target.offset, direct: storedSize >= DIRECT_MIN_BYTES } }, 'sniff');
    let contentDigest: Digest;
    let contentSize: number;
    try {
      const content = (await pour(sink, name, open)).content as { digest: Digest; size: number };
      contentDigest = content.digest;
      contentSize = content.size;
    } catch (e) {
      await target.drop();
      throw e;
    }
    contentOfName.set(name, contentDigest);
    const group = yield* skipDuplicates((plan as Plan).layers.filter((l) => !l.delivered && l.descriptor.diffId === contentDigest));
    if (group.length === 0 || !(await anyWanted(group, wants))) {
      await target.drop();
      for (const layer of group) {
        layer.delivered = true;
        yield { _tag: 'Layer', layer: layer.descriptor, payload: { _tag: 'Skipped', reason: 'present' } };
      }
      return;
    }
    await target.name(contentDigest, contentSize);
    yield* deliverGroup(group, { _tag: 'Placed', placed: { target, size: contentSize } }, { done: false });
  }

  /**
   * What the output offers for a group of layers sharing one file: `none` (spool it),
   * `later` (it takes the tar as it is read, but an earlier layer is not delivered yet: the
   * output may wait for those to be applied, and a layer this read has not reached would
   * never come), or the consumer it granted for the group's first wanted layer.
   */
  const consumerFor = async (group: PlannedLayer[]): Promise<TarConsumer | 'none' | 'later'> => {
    let carrier: PlannedLayer | undefined;
    for (const layer of group) {
      if (await wants(layer.descriptor)) {
        carrier = layer;
        break;
      }
    }
    if (!carrier || !plan) return 'none';
    const forms = await formsFor(carrier.descriptor);
    if (!forms.tar || !forms.consume) return 'none';
    const index = carrier.descriptor.index;
    if (!plan.layers.every((l) => l.delivered || l.descriptor.index >= index)) return 'later';
    return (await forms.consume.claim(signal)) ?? 'none';
  };

  /**
   * Stream the entry into `consumer` (decompressed when it is gzip/zstd), verify it for
   * every layer it feeds, then end the consumer and deliver the group: the first wanted
   * layer `Consumed`, the rest as {@link deliverReady} does. On any failure the consumer is
   * aborted, never ended.
   */
  async function* consumeEntry(name: string, group: PlannedLayer[], consumer: TarConsumer, open: () => Readable): AsyncGenerator<LayerElement, void, undefined> {
    let result: SpoolResult;
    try {
      const r = await pour(new BlobSink({ tar: { writable: consumerWritable(consumer) } }, 'sniff'), name, open);
      const content = r.content as { digest: Digest; size: number };
      result = { rawDigest: r.rawDigest, rawSize: r.rawSize, contentDigest: content.digest, contentSize: content.size, compression: r.compression };
      for (const layer of group) verifyLayer(layer, name, result);
    } catch (e) {
      consumer.abort(e instanceof Error ? e : new Error(String(e)));
      throw e;
    }
    consumer.end();
    yield* deliverGroup(group, { _tag: 'Consumed', consumed: { consumer: consumer.id, size: result.contentSize } }, { done: false });
  }

  /** Every name on the way from a manifest path to its file (the path, each link, the target). */
  const namesOnTheWay = (p: string): string[] => {
    const names = [p];
    let current = p;
    for (let hop = 0; hop < 16; hop++) {
      const a = aliases.get(current);
      if (a === undefined || E.isLeft(a)) break;
      current = a.right;
      names.push(current);
    }
    return names;
  };

  /** A name the image uses that two entries carry: which one counts depends on the reader. */
  const refuseAmbiguousNames = () => {
    if (!manifestEntry) return;
    const paths = [manifestEntry.Config, ...manifestEntry.Layers];
    for (const p of paths) {
      const normalized = normalizeArchivePath(p);
      if (E.isLeft(normalized)) continue; // reported by the plan
      for (const n of namesOnTheWay(normalized.right)) {
        const count = nameCounts.get(n) ?? 0;
        if (count > 1) {
          throw fail(`the archive has ${count} entries named ${JSON.stringify(n)}, which manifest.json uses; tar readers disagree on which one counts, so it is refused; save the image again`);
        }
      }
    }
  };

  // 1 MiB reads: with the default 64 KiB, tar-stream's per-chunk work made reading the
  // bench's 280 MB archive take 1.0 s instead of 0.5 s.
  const earlyConfig = await planEarly();
  if (earlyConfig) yield earlyConfig;
  const tail = new TailKeeper(TAIL_BYTES);
  let source: Readable;
  if (file !== undefined) source = createReadStream(file, { highWaterMark: 1 << 20 });
  else {
    try {
      const body = await (options.stream as ArchiveStream).open(signal);
      body.once('error', (e) => tail.destroy(e));
      source = body.pipe(tail);
    } catch (e) {
      await options.stream?.close?.();
      throw e;
    }
  }
  const extract = tarStream.extract();
  source.on('error', (e) => extract.destroy(e));
  source.pipe(extract);
  const onAbort = () => {
    const err = new AbortError(signal.reason);
    source.destroy(err);
    extract.destroy(err);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    try {
      for await (const entry of extract) {
        const header = entry.header;
        const stream = entry as unknown as Readable; // streamx readable: node-compatible
        // The extractor may fail this entry while we await something else; remember it.
        let entryFailure: Error | undefined;
        stream.once('error', (e: Error) => (entryFailure = e));
        const dataOffset = (header as { byteOffset?: number }).byteOffset;
        if (typeof dataOffset !== 'number') throw new Error('tar-stream gave no byteOffset for an entry');
        entriesEnd = dataOffset + (header.type === 'directory' ? 0 : roundUpToBlock(header.size ?? 0));
        const normalized = normalizeArchivePath(header.name);
        if (E.isLeft(normalized)) {
          stream.resume();
          throw fail(`archive entry ${JSON.stringify(header.name)} ${normalized.left}; refusing an archive that reaches outside itself`);
        }
        const name = normalized.right;
        if (header.type === 'symlink' || header.type === 'link' || header.type === 'file' || header.type === 'contiguous-file') {
          nameCounts.set(name, (nameCounts.get(name) ?? 0) + 1);
        }
        switch (header.type) {
          case 'symlink':
            aliases.set(name, resolveLinkTarget(name, header.linkname ?? ''));
            stream.resume();
            break;
          case 'link': {
            const target = normalizeArchivePath(header.linkname ?? '');
            aliases.set(name, E.isLeft(target) ? E.left(`hard link ${name} -> ${header.linkname} ${target.left}`) : target);
            stream.resume();
            break;
          }
          case 'file':
          case 'contiguous-file':
            located.set(name, { offset: dataOffset, size: header.size ?? 0 });
            yield* handleFile(name, dataOffset, header.size ?? 0, stream, () => entryFailure);
            break;
          default:
            stream.resume();
            continue;
        }
        const configElement = (await tryPlanFromExpected()) ?? (await tryPlan());
        if (configElement) yield configElement;
        yield* deliverReady();
        yield* deliverByContent();
      }
    } catch (e) {
      if (signal.aborted) throw new AbortError(signal.reason);
      if ((e as { code?: string }).code === 'EINPUT' || (e as { code?: string }).code === 'EDIGEST') throw e;
      throw fail(`${describeTarError(e)}`);
    }

    for (const [name, at] of readEarly) {
      if (!metEarly.has(name)) {
        throw fail(`${name} is not where the archive's headers said (${at.size} bytes at offset ${at.offset}); the archive is malformed; save the image again`);
      }
    }
    if (!(file !== undefined ? await endMarkerAt(file, entriesEnd) : tail.zerosAt(entriesEnd, 2 * TAR_BLOCK))) {
      throw fail('the archive is truncated (it does not end with the tar end-of-archive marker after its last entry); download or save it again');
    }
    if (!manifestBytes) {
      if (sawRepositories) {
        throw fail(
          'this is a pre-1.10 docker-save archive (only "repositories", no manifest.json), which is not supported; convert it with "docker load -i FILE && docker save -o NEW IMAGE" using Docker 1.10 or later',
        );
      }
      throw fail('no manifest.json in the archive; it is not a docker-save tarball (make one with "docker save -o FILE IMAGE")');
    }
    chooseManifestEntry();
    refuseAmbiguousNames();
    const late = await tryPlan();
    if (late) yield late;
    if (!plan) {
      throw fail(`the config ${manifestEntry?.Config ?? ''} named by manifest.json is not in the archive`);
    }
    yield* deliverReady(true);
    yield* deliverByContent();
    if (plannedFromExpected) checkManifestAgrees();
    const missing = plan.layers.find((l) => !l.delivered);
    if (missing && plannedFromExpected) {
      throw fail(`layer ${missing.descriptor.index} (diff_id ${missing.descriptor.diffId}) is not in the export; the archive is incomplete`);
    }
    if (missing) {
      throw fail(`layer ${missing.descriptor.index} (${missing.path}) listed in manifest.json is not in the archive; the archive is incomplete`);
    }
    if (provisionalPlan()) {
      if (!finalConfig) throw fail(`the config ${expected?.configDigest ?? ''} the daemon named is not in the export; the archive is incomplete`);
      yield finalConfig;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    source.destroy();
    extract.destroy();
    await options.stream?.close?.();
    for (const s of spooled.values()) await release(s);
    spooled.clear();
  }
}

async function anyWanted(layers: PlannedLayer[], wants: (d: LayerDescriptor) => Promise<boolean>): Promise<boolean> {
  for (const l of layers) if (await wants(l.descriptor)) return true;
  return false;
}

/** `blobs/<alg>/<hex>` names a digest; validate it before trusting it. */
function digestNamedBy(path: string): E.Either<string, Digest> | undefined {
  const blob = digestOfBlobPath(path);
  if (blob) {
    if (E.isRight(blob) && digestAlgorithm(blob.right) !== 'sha256') return E.left(`${digestAlgorithm(blob.right)} blobs are not supported in docker-save archives (only sha256)`);
    return blob;
  }
  const legacy = /^([0-9a-f]{64})\.json$/.exec(path);
  if (legacy) return parseDigest(`sha256:${legacy[1]}`) as E.Either<string, Digest>;
  return undefined;
}

function sourceIdOf(path: string): string {
  const blob = /^blobs\/[^/]+\/([^/]+)$/.exec(path);
  if (blob) return blob[1] as string;
  const dir = /^([^/]+)\/layer\.tar$/.exec(path);
  if (dir) return dir[1] as string;
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base.replace(/\.tar$/, '');
}

function describeTarError(e: unknown): string {
  const message = (e as Error)?.message ?? String(e);
  if (/unexpected end/i.test(message)) return 'the archive is truncated (unexpected end of data); download or save it again';
  if (/invalid tar header|unknown format|checksum/i.test(message)) return `not a valid tar archive (${message}); give a file made by "docker save"`;
  return message;
}

/** Top-level JSON bytes a streamed archive may hold in memory. */
const MAX_CAPTURED_BYTES = 64 << 20;
/** Entries placed in the output at least this large are written with O_DIRECT (smaller ones cost a device write each for little). */
const DIRECT_MIN_BYTES = 8 << 20;
/** The end of a streamed archive kept, to find the end marker after the last entry. */
const TAIL_BYTES = 64 * 1024;

/**
 * Passes a stream through, counting its bytes and keeping the last `keep` of them, so the
 * end marker of a streamed archive can be checked once the last entry is known.
 */
class TailKeeper extends Transform {
  private total = 0;
  private chunks: Buffer[] = [];
  private kept = 0;
  constructor(private readonly keep: number) {
    super({ highWaterMark: 1 << 20 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.total += chunk.length;
    this.chunks.push(chunk);
    this.kept += chunk.length;
    while (this.chunks.length > 1 && this.kept - (this.chunks[0] as Buffer).length >= this.keep) this.kept -= (this.chunks.shift() as Buffer).length;
    cb(null, chunk);
  }
  /** True when the `length` bytes at stream offset `offset` were all seen, and are zero. */
  zerosAt(offset: number, length: number): boolean {
    const start = this.total - this.kept;
    if (offset < start || offset + length > this.total) return false;
    const tail = Buffer.concat(this.chunks);
    return tail.subarray(offset - start, offset - start + length).every((b) => b === 0);
  }
}

/** True when two zero blocks (the tar end marker) start at `offset` of the file. */
async function endMarkerAt(path: string, offset: number): Promise<boolean> {
  const handle = await fs.open(path, 'r');
  try {
    const buf = Buffer.alloc(2 * TAR_BLOCK);
    const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
    return bytesRead === buf.length && buf.every((b) => b === 0);
  } finally {
    await handle.close();
  }
}
