/**
 * `tar://` input: a docker-save archive (Docker 1.10–24 layout, Docker 25+ OCI layout,
 * skopeo's symlinked layout), read as one sequential stream.
 *
 * Entries are handled as they arrive. Small metadata (`manifest.json`, `repositories`,
 * `<hex>.json` configs) is read into memory (capped); every other file is streamed into
 * an owned temp file, decompressed if gzip/zstd, with its raw and uncompressed digests
 * computed in the same pass. Until `manifest.json` and the config are known, layers
 * have to be spooled; once they are, each later layer is delivered as soon as it is
 * written, and layers the output already has are drained without being written.
 *
 * @module
 */
import { createReadStream, promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import * as E from 'fp-ts/lib/Either.js';
import * as tarStream from 'tar-stream';
import { normalizeArchivePath, resolveLinkTarget } from '../../core/archive-path.js';
import { decodeDockerSaveManifest, type DockerSaveEntry } from '../../core/codecs/docker-save.js';
import { describeDecodeError, MAX_JSON_BYTES } from '../../core/codecs/common.js';
import { decodeImageConfig } from '../../core/codecs/oci.js';
import { type Digest, describeDigestError, parseDigest } from '../../core/digest.js';
import type { ConfigElement, ImageElement, LayerDescriptor, LayerElement } from '../../core/element.js';
import { AbortError, digestError, inputError } from '../../core/errors.js';
import { MediaTypes } from '../../core/media-types.js';
import type { TempFile } from '../../core/ownership.js';
import type { ImageInput, InputContext } from '../../core/pipeline/types.js';
import { imageNameOf, type ImageSelector, selectImage } from '../../core/plans/docker-save.js';
import { readCapped, spoolToFile, type SpoolResult } from '../fs/spool.js';
import { sha256Bytes } from '../fs/hash.js';

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

const METADATA_NAMES = new Set(['manifest.json', 'repositories', 'index.json', 'oci-layout']);

/** Small files we keep in memory: top-level metadata and legacy `<hex>.json` configs. */
function isMetadata(name: string): boolean {
  return METADATA_NAMES.has(name) || (!name.includes('/') && name.endsWith('.json'));
}

/** Files the pipeline never needs: v1 per-layer metadata. */
function isIgnorable(name: string): boolean {
  return /(^|\/)(json|VERSION)$/.test(name) && name.includes('/');
}

export interface DockerSaveInputOptions {
  readonly path: string;
  readonly selector: ImageSelector;
  /** How the source is named in messages (the URI the user typed). */
  readonly label?: string;
}

export class DockerSaveInput implements ImageInput {
  readonly description: string;
  constructor(private readonly options: DockerSaveInputOptions) {
    this.description = options.label ?? `tar://${options.path}`;
  }

  elements(ctx: InputContext): AsyncIterable<ImageElement> {
    return readDockerSave(this.options, this.description, ctx);
  }
}

async function* readDockerSave(options: DockerSaveInputOptions, label: string, ctx: InputContext): AsyncGenerator<ImageElement, void, undefined> {
  const { effects, owner, signal } = ctx;
  const fail = (message: string) => inputError(`${label}: ${message}`);

  try {
    const st = await fs.stat(options.path);
    if (!st.isFile()) throw fail('not a regular file; give the path of a docker-save tarball');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') throw fail('no such file; check the path (docker save -o FILE makes one)');
    throw e;
  }

  const metadata = new Map<string, Uint8Array>();
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
  const answers = new Map<number, Promise<boolean>>();
  const wants = (d: LayerDescriptor): Promise<boolean> => {
    let answer = answers.get(d.index);
    if (!answer) {
      answer = ctx.wants(d);
      answers.set(d.index, answer);
    }
    return answer;
  };

  const release = async (s: Spooled) => effects.perform({ _tag: 'Release', file: s.file, owner });

  const readConfigBytes = async (path: string): Promise<Uint8Array | undefined> => {
    const inMemory = metadata.get(path);
    if (inMemory) return inMemory;
    const s = spooled.get(path);
    if (!s) return undefined;
    if (s.size > MAX_JSON_BYTES) throw fail(`config ${path} is ${s.size} bytes, over the ${MAX_JSON_BYTES}-byte JSON limit`);
    return readCapped(createReadStream(s.file.path), MAX_JSON_BYTES, `config ${path}`);
  };

  /** Build the plan once manifest.json and the config are both available. */
  const tryPlan = async (): Promise<ConfigElement | undefined> => {
    if (plan) return undefined;
    const manifestBytes = metadata.get('manifest.json');
    if (!manifestBytes) return undefined;
    if (!manifestEntry) {
      const decoded = decodeDockerSaveManifest(manifestBytes);
      if (E.isLeft(decoded)) throw fail(describeDecodeError(decoded.left));
      const chosen = selectImage(decoded.right, options.selector);
      if (E.isLeft(chosen)) throw fail(chosen.left);
      manifestEntry = chosen.right.entry;
    }
    const entry = manifestEntry;
    const configPath = normalizeArchivePath(entry.Config);
    if (E.isLeft(configPath)) throw fail(`manifest.json Config ${JSON.stringify(entry.Config)} ${configPath.left}; refusing a path outside the archive`);
    const resolvedConfig = resolveAliases(configPath.right);
    if (E.isLeft(resolvedConfig)) throw fail(`manifest.json Config: ${resolvedConfig.left}`);
    const raw = await readConfigBytes(resolvedConfig.right);
    if (!raw) return undefined;

    const configDigest = sha256Bytes(raw);
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

  /** Deliver every planned layer whose (resolved) file is spooled, asking the output first. */
  async function* deliverReady(): AsyncGenerator<LayerElement, void, undefined> {
    if (!plan) return;
    const byPath = new Map<string, PlannedLayer[]>();
    for (const layer of plan.layers) {
      if (layer.delivered) continue;
      const resolved = resolveAliases(layer.path);
      if (E.isLeft(resolved)) throw fail(`manifest.json Layers[${layer.descriptor.index}]: ${resolved.left}`);
      if (!spooled.has(resolved.right)) continue;
      const group = byPath.get(resolved.right) ?? [];
      group.push(layer);
      byPath.set(resolved.right, group);
    }
    for (const [path, group] of byPath) {
      const s = spooled.get(path) as Spooled;
      spooled.delete(path);
      let handedOff = false;
      try {
        for (const layer of group) verifyLayer(layer, path, s.result);
        for (const layer of group) {
          layer.delivered = true;
          if (handedOff) {
            yield { _tag: 'Layer', layer: layer.descriptor, payload: { _tag: 'Skipped', reason: 'duplicate' } };
          } else if (await wants(layer.descriptor)) {
            handedOff = true;
            yield { _tag: 'Layer', layer: layer.descriptor, payload: { _tag: 'Owned', file: s.file, size: s.result.contentSize } };
          } else {
            yield { _tag: 'Layer', layer: layer.descriptor, payload: { _tag: 'Skipped', reason: 'present' } };
          }
        }
      } finally {
        if (!handedOff) await release(s);
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
    if (!plan) return undefined;
    return plan.layers.filter((l) => {
      if (l.delivered) return false;
      const r = resolveAliases(l.path);
      return E.isRight(r) && r.right === name;
    });
  };

  const source = createReadStream(options.path);
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
        const normalized = normalizeArchivePath(header.name);
        if (E.isLeft(normalized)) {
          stream.resume();
          throw fail(`archive entry ${JSON.stringify(header.name)} ${normalized.left}; refusing an archive that reaches outside itself`);
        }
        const name = normalized.right;
        switch (header.type) {
          case 'symlink':
            aliases.set(name, resolveLinkTarget(name, header.linkname ?? ''));
            stream.resume();
            continue;
          case 'link': {
            const target = normalizeArchivePath(header.linkname ?? '');
            aliases.set(name, E.isLeft(target) ? E.left(`hard link ${name} -> ${header.linkname} ${target.left}`) : target);
            stream.resume();
            continue;
          }
          case 'file':
          case 'contiguous-file':
            break;
          default:
            stream.resume();
            continue;
        }
        if (name === 'manifest.json' && (header.size ?? 0) > MAX_JSON_BYTES) {
          stream.resume();
          throw fail(`manifest.json is ${header.size} bytes, over the ${MAX_JSON_BYTES}-byte limit for JSON documents`);
        }
        if (isMetadata(name) && (header.size ?? 0) <= MAX_JSON_BYTES) {
          metadata.set(name, await readCapped(stream, MAX_JSON_BYTES, `${label}: ${name}`));
        } else if (isIgnorable(name)) {
          stream.resume();
          continue;
        } else {
          const consumers = consumersOf(name);
          if (consumers !== undefined && consumers.length === 0) {
            stream.resume(); // not part of the chosen image
            continue;
          }
          if (consumers !== undefined && !(await anyWanted(consumers, wants))) {
            stream.resume();
            for (const layer of consumers) {
              layer.delivered = true;
              yield { _tag: 'Layer', layer: layer.descriptor, payload: { _tag: 'Skipped', reason: 'present' } };
            }
            continue;
          }
          const file = await effects.perform({ _tag: 'CreateTemp', owner, purpose: `tar-${sourceIdOf(name).slice(0, 16)}` });
          let result: SpoolResult;
          try {
            if (entryFailure || stream.destroyed) throw entryFailure ?? new Error('Unexpected end of data');
            result = await spoolToFile(stream, file.path, { compression: 'sniff', signal });
          } catch (e) {
            await effects.perform({ _tag: 'Release', file, owner });
            if (signal.aborted) throw new AbortError(signal.reason);
            throw fail(`cannot read ${name}: ${describeTarError(e)}`);
          }
          const previous = spooled.get(name);
          spooled.set(name, { file, result, size: result.contentSize });
          if (previous) await release(previous); // a later entry of the same name replaces it, as tar does
        }
        const configElement = await tryPlan();
        if (configElement) yield configElement;
        yield* deliverReady();
      }
    } catch (e) {
      if (signal.aborted) throw new AbortError(signal.reason);
      if ((e as { code?: string }).code === 'EINPUT' || (e as { code?: string }).code === 'EDIGEST') throw e;
      throw fail(`${describeTarError(e)}`);
    }

    if (!metadata.has('manifest.json')) {
      if (metadata.has('repositories')) {
        throw fail(
          'this is a pre-1.10 docker-save archive (only "repositories", no manifest.json), which is not supported; convert it with "docker load -i FILE && docker save -o NEW IMAGE" using Docker 1.10 or later',
        );
      }
      throw fail('no manifest.json in the archive; it is not a docker-save tarball (make one with "docker save -o FILE IMAGE")');
    }
    const late = await tryPlan();
    if (late) yield late;
    if (!plan) {
      throw fail(`the config ${manifestEntry?.Config ?? ''} named by manifest.json is not in the archive`);
    }
    yield* deliverReady();
    const missing = plan.layers.find((l) => !l.delivered);
    if (missing) {
      throw fail(`layer ${missing.descriptor.index} (${missing.path}) listed in manifest.json is not in the archive; the archive is incomplete`);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    source.destroy();
    extract.destroy();
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
  const m = /^blobs\/([^/]+)\/([^/]+)$/.exec(path);
  if (m) {
    const d = parseDigest(`${m[1]}:${m[2]}`);
    if (E.isLeft(d)) return E.left(describeDigestError(d.left, path));
    if (m[1] !== 'sha256') return E.left(`${m[1]} blobs are not supported in docker-save archives (only sha256)`);
    return d;
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
