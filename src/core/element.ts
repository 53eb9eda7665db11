/**
 * The elements that flow through a pipeline, and the rule of their order:
 *
 * 1. One {@link ConfigElement} first: the source's config, naming every layer.
 * 2. The layers, each once, in any order (each carries its manifest index).
 * 3. When the first config was `provisional` (a content filter is rewriting the layers,
 *    or the source reads the config's bytes only after some layers: a daemon's export),
 *    exactly one more config after the last layer: the final one, whose `layers` are the
 *    descriptors the layers now carry. Nothing follows it.
 *
 * A layer carries its data in one or both forms: the blob as the source stores it
 * (compressed or not: digest, size and media type verified) and/or the uncompressed tar
 * (whose sha256 is the diff_id, verified when it was made). Each form is an owned temp
 * file under the ownership rules of ownership.ts.
 *
 * @module
 */
import type { Digest } from './digest.js';
import type { ImageConfig } from './codecs/oci.js';
import type { Compression } from './media-types.js';
import type { Effects, TempFile } from './ownership.js';
import { InternalError } from './errors.js';

/** The image a pipeline carries: repository name and tag (or `@digest` reference). */
export interface ImageName {
  /** Repository, e.g. `library/busybox` or `127.0.0.1:5000/team/app`; `unknown` when the source has none. */
  readonly name: string;
  /** Tag, e.g. `latest`; `unknown` when the source has none. */
  readonly tag: string;
  /** Set when the image was addressed by manifest digest. */
  readonly digest?: Digest;
  /** The registry host `name` starts with (`127.0.0.1:5000`), for registry sources. */
  readonly registry?: string;
}

/**
 * The repository path without the registry host (`team/app` for
 * `127.0.0.1:5000/team/app`): the image name occystrap prints in `info` and search reports.
 */
export function repositoryPath(image: ImageName): string {
  const prefix = image.registry === undefined ? undefined : `${image.registry}/`;
  return prefix !== undefined && image.name.startsWith(prefix) ? image.name.slice(prefix.length) : image.name;
}

/** A blob as a source or destination stores it: content digest, byte size, media type. */
export interface BlobDescriptor {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
  /**
   * Where the blob lives, when a registry source serves it: a push to another repository
   * of the same registry can mount it from there instead of uploading it.
   */
  readonly from?: { readonly registry: string; readonly repository: string };
}

/** What the input knows about a layer before fetching it. */
export interface LayerDescriptor {
  /** Position in the manifest (0 = base layer). */
  readonly index: number;
  /**
   * The input's name for the layer, as occystrap names it: compressed digest hex
   * (registry, OCI layout), docker-save v1 directory id or blob hex; after a rewrite, the
   * new diff_id hex.
   */
  readonly sourceId: string;
  /** The uncompressed layer digest from the config's `rootfs.diff_ids`; inputs verify it. */
  readonly diffId: Digest;
  /** Media type as declared by the source (may name a compression). */
  readonly mediaType: string;
  /** Compressed size when the source declares it (the same as `blob.size` when there is a blob). */
  readonly size?: number;
  /**
   * The source's blob for this layer (registry, OCI layout), when it has one that can be
   * passed through untouched. Absent for docker-save layers and after a rewrite.
   */
  readonly blob?: BlobDescriptor;
}

export interface ConfigElement {
  readonly _tag: 'Config';
  readonly image: ImageName;
  /** sha256 of {@link raw}: the image id. */
  readonly digest: Digest;
  /** The exact bytes read and verified; outputs write these, never a re-serialisation. */
  readonly raw: Uint8Array;
  readonly config: ImageConfig;
  /** Every layer of the manifest, in manifest order. */
  readonly layers: readonly LayerDescriptor[];
  /**
   * True on the first config when the final config follows the last layer: a filter will
   * change the layers, or the source has only the layer list so far (its `raw` is then a
   * stand-in holding just `rootfs`; nothing writes it). Absent or false: this is the
   * image's config, and no other follows.
   */
  readonly provisional?: boolean;
  /**
   * True on a provisional config made from the source's layer list alone: its `raw` and
   * `digest` are not the image's (a stand-in holding just `rootfs`); nothing may write them.
   */
  readonly standIn?: boolean;
  /**
   * The source's manifest as it served it (registry sources). A destination that pushes
   * manifests may put these very bytes, keeping the digest, when the config and every
   * layer blob it pushes are the source's; a filter that changes the config drops it.
   */
  readonly sourceManifest?: {
    readonly mediaType: string;
    readonly raw: Uint8Array;
    /** The registry and repository serving it (and so this config's blob). */
    readonly from?: { readonly registry: string; readonly repository: string };
  };
}

/** Why a layer arrives without data. */
export type SkipReason =
  /** The output said it already has the layer. */
  | 'present'
  /** The same diff_id appeared earlier in this image; its data went with that element. */
  | 'duplicate';

/** The uncompressed layer tar in a temp file; its sha256 is the layer's diff_id (verified). */
export interface TarFile {
  readonly file: TempFile;
  readonly size: number;
}

/** The layer's blob as stored by its source (or made by a stage), in a temp file; digest and size verified. */
export interface BlobFile {
  readonly file: TempFile;
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
  readonly compression: Compression;
  /**
   * The {@link BlobStream} (its id) that was given every byte of this blob as it arrived,
   * and told `end` once the digest was verified. The file is complete either way.
   */
  readonly streamed?: number;
}

/**
 * A stream a destination offers for a layer's blob bytes as the input receives them
 * (the registry destination sends them on in an upload while the download runs), through
 * {@link LayerForms.stream}. It owns no file: the input still writes, verifies and
 * delivers the blob file, marked {@link BlobFile.streamed}; the destination may then keep
 * the copy the stream made instead of sending the file again.
 */
export interface BlobStreamOffer {
  /**
   * Open the stream for the blob's bytes, at once: work it needs first (an upload session)
   * runs while the first bytes are taken.
   *
   * - Errors: never throws; trouble of the destination's own shows later, as a copy that
   *   did not succeed (the file is sent instead).
   * - Cancellation: `signal` (the fetch's) stops the copy until `end` is called.
   */
  open(signal: AbortSignal): BlobStream;
}

/** An open {@link BlobStreamOffer}: given the blob's bytes in order, then `end` or `abort`, once. */
export interface BlobStream {
  /** The destination's id of this stream, checked against {@link BlobFile.streamed}. */
  readonly id: number;
  /**
   * The next bytes. Resolves when the stream can take more (its back-pressure slows the
   * fetch); never rejects: a destination whose copy failed drops what follows and sends
   * the file instead.
   */
  write(chunk: Uint8Array): Promise<void>;
  /** Every byte was given and the blob's digest verified: the destination may finish its copy. */
  end(): void;
  /** The bytes given are not the blob (the fetch failed or stopped): the copy is dropped. */
  abort(reason: Error): void;
}

/**
 * A place a stage downstream offers for a layer's tar: the next bytes of a file that stage
 * owns (`tar://` offers the next-due large layer the end of its archive, so the layer is
 * written once instead of spooled and copied). Offered through {@link LayerForms.place}.
 */
export interface TarPlacement {
  /**
   * Wait for the layer's turn and take the place; `undefined` means there is none (make a
   * temp file as usual). The taker must write the tar from `offset` on and deliver the
   * layer as a `Placed` payload; a place taken and never delivered fails the run.
   *
   * - Errors: rejects with an AbortError when `signal` aborts while waiting.
   */
  claim(signal: AbortSignal): Promise<PlacedTarget | undefined>;
  /** The same destination's place for a tar whose layer is known only once it is read (see {@link UnnamedTarPlacement}). */
  readonly unnamed?: UnnamedTarPlacement;
}

/**
 * A destination's end offered to the next tar of a source that learns which layer an
 * entry is only by hashing it (a daemon's export, sorted by an id of its own, not by
 * manifest position): the tar is written there as it is read, then named by its diff_id,
 * or dropped. One such tar at a time; the destination's other writes wait meanwhile.
 */
export interface UnnamedTarPlacement {
  /**
   * Take the end for the next tar, stored in `storedSize` bytes (compressed, maybe);
   * `undefined` means there is none (spool it). Waits while something else fills the end.
   *
   * - Errors: rejects with an AbortError when `signal` aborts while waiting, or the
   *   destination stopped.
   * - Ownership: the target is the destination's; the taker must end it with `name` or
   *   `drop`, once.
   */
  claim(storedSize: number, signal: AbortSignal): Promise<UnnamedTarget | undefined>;
}

/** An {@link UnnamedTarPlacement} taken: write the tar from `offset` on, then `name` or `drop` it. */
export interface UnnamedTarget extends PlacedTarget {
  /**
   * The tar is whole: `size` bytes whose sha256 is `diffId` (verified). It becomes that
   * layer's entry, to be delivered `Placed` with this target (a named target never
   * delivered fails the run); the end is free again.
   *
   * - Errors: rejects when the destination holds that diff_id already (deliver the layer
   *   once) or its write fails.
   */
  name(diffId: Digest, size: number): Promise<void>;
  /** The bytes are no layer of the image, or the read failed: they are removed, the end is free again. Never rejects. */
  drop(): Promise<void>;
}

/** A place taken: the tar goes into `file` (the offerer's; never release it) from `offset` on. */
export interface PlacedTarget {
  readonly file: TempFile;
  readonly offset: number;
  /** The offerer's id of this claim, checked when the layer arrives. */
  readonly claim: number;
}

/** A tar written into a {@link PlacedTarget}: `size` bytes from its offset; the sha256 is the diff_id (verified). */
export interface PlacedTar {
  readonly target: PlacedTarget;
  readonly size: number;
}

/**
 * A destination's offer to take a layer's tar as the input reads it, instead of a temp file
 * (the extracting outputs apply each entry as it arrives). Offered through
 * {@link LayerForms.consume}.
 */
export interface TarConsumerOffer {
  /**
   * Wait for the layer's turn and take the consumer; `undefined` means there is none (make a
   * temp file as usual). The caller must be able to deliver every earlier layer without
   * this one's progress (already delivered, or fetched at the same time): the wait is for
   * them. The taker gives the consumer the tar's bytes, then `end` once they hash to the
   * diff_id (or `abort`), and delivers the layer as a `Consumed` payload; a consumer taken
   * and never delivered fails the run.
   *
   * - Errors: rejects with an AbortError when `signal` aborts while waiting.
   */
  claim(signal: AbortSignal): Promise<TarConsumer | undefined>;
}

/**
 * A claimed {@link TarConsumerOffer}: given the layer's tar in order, then `end` or
 * `abort`, once. It owns no file; the bytes it applies come before their digest is known,
 * so a destination using it keeps its work private until the run commits.
 */
export interface TarConsumer {
  /** The destination's id of this consumer, checked when the layer arrives `Consumed`. */
  readonly id: number;
  /**
   * The next bytes. Resolves when the consumer can take more (its back-pressure slows the
   * read); never rejects: a consumer whose work failed drops what follows, and the
   * destination reports the failure when the layer arrives.
   */
  write(chunk: Uint8Array): Promise<void>;
  /** Every byte was given and the tar's digest is the diff_id. */
  end(): void;
  /** The bytes given are not the layer (the read failed, stopped, or hashed wrong). */
  abort(reason: Error): void;
}

/** A tar given to a {@link TarConsumer} whole: `size` bytes whose sha256 is the diff_id (verified). */
export interface ConsumedTar {
  readonly consumer: number;
  readonly size: number;
}

export type LayerPayload =
  /** Only the uncompressed tar. */
  | { readonly _tag: 'Tar'; readonly tar: TarFile }
  /** Only the blob: decompress it (an `Inflate` effect) where a stage needs the tar. */
  | { readonly _tag: 'Blob'; readonly blob: BlobFile }
  /** Both forms, each its own file. */
  | { readonly _tag: 'Both'; readonly tar: TarFile; readonly blob: BlobFile }
  /** The tar was written into the place downstream offered (no file of its own), and maybe the blob too. */
  | { readonly _tag: 'Placed'; readonly placed: PlacedTar; readonly blob?: BlobFile }
  /** The tar was given to the consumer downstream offered as it was read: no file at all. */
  | { readonly _tag: 'Consumed'; readonly consumed: ConsumedTar }
  | { readonly _tag: 'Skipped'; readonly reason: SkipReason };

/** A payload that carries data. */
export type DataPayload = Exclude<LayerPayload, { readonly _tag: 'Skipped' }>;

/** The payload holding `tar` and/or `blob` (at least one). */
export function dataPayload(tar: TarFile | undefined, blob: BlobFile | undefined): DataPayload {
  if (tar && blob) return { _tag: 'Both', tar, blob };
  if (tar) return { _tag: 'Tar', tar };
  if (blob) return { _tag: 'Blob', blob };
  throw new InternalError('dataPayload: a layer payload needs a tar or a blob');
}

/** The tar form of a payload, if it has one. */
export function tarOf(p: LayerPayload): TarFile | undefined {
  return p._tag === 'Tar' || p._tag === 'Both' ? p.tar : undefined;
}

/** The blob form of a payload, if it has one. */
export function blobOf(p: LayerPayload): BlobFile | undefined {
  return p._tag === 'Blob' || p._tag === 'Both' || p._tag === 'Placed' ? p.blob : undefined;
}

/** Which forms of a layer a stage asks for; neither means "skip it, I have it". */
export interface LayerForms {
  readonly tar: boolean;
  readonly blob: boolean;
  /** With `tar`: where the one stage that asked would like the tar written (see {@link TarPlacement}). */
  readonly place?: TarPlacement;
  /** With `blob`: where the one stage that asked would like the blob's bytes sent as they arrive (see {@link BlobStreamOffer}). */
  readonly stream?: BlobStreamOffer;
  /** With `tar`: the one stage that asked would take the tar's bytes as they are read (see {@link TarConsumerOffer}). */
  readonly consume?: TarConsumerOffer;
}

export const Forms = {
  none: { tar: false, blob: false },
  tar: { tar: true, blob: false },
  blob: { tar: false, blob: true },
  both: { tar: true, blob: true },
} as const satisfies Record<string, LayerForms>;

/** Every form either side asks for. */
export function unionForms(a: LayerForms, b: LayerForms): LayerForms {
  // No `place`, `stream` or `consume`: with two stages asking, each form must be a file both can read.
  return { tar: a.tar || b.tar, blob: a.blob || b.blob };
}

export function wantsAny(f: LayerForms): boolean {
  return f.tar || f.blob;
}

export interface LayerElement {
  readonly _tag: 'Layer';
  readonly layer: LayerDescriptor;
  readonly payload: LayerPayload;
}

export type ImageElement = ConfigElement | LayerElement;

export function isConfig(e: ImageElement): e is ConfigElement {
  return e._tag === 'Config';
}

export function isLayer(e: ImageElement): e is LayerElement {
  return e._tag === 'Layer';
}

/** The temp files an element carries (zero, one or two). */
export function ownedFiles(e: ImageElement): TempFile[] {
  if (e._tag !== 'Layer') return [];
  const files: TempFile[] = [];
  const tar = tarOf(e.payload);
  const blob = blobOf(e.payload);
  if (tar) files.push(tar.file);
  if (blob) files.push(blob.file);
  return files;
}

/** Bytes of layer data a payload carries (the tar's size when it has one, else the blob's). */
export function payloadBytes(p: LayerPayload): number {
  if (p._tag === 'Placed') return p.placed.size;
  if (p._tag === 'Consumed') return p.consumed.size;
  return tarOf(p)?.size ?? blobOf(p)?.size ?? 0;
}

/**
 * A disposer that releases the files an element carries, as `owner`. Combinators call
 * it for every element they took but will never deliver.
 */
export function releaseElement(effects: Effects, owner: string): (e: ImageElement) => Promise<void> {
  return async (e) => {
    for (const file of ownedFiles(e)) await effects.perform({ _tag: 'Release', file, owner });
  };
}

/** `name:tag` as a docker RepoTag, or undefined when the source had no name. */
export function repoTag(image: ImageName): string | undefined {
  if (image.name === 'unknown' && image.tag === 'unknown') return undefined;
  // Addressed by digest only: a RepoTag cannot name a digest, so the image stays untagged.
  if (image.digest !== undefined && image.tag === image.digest) return undefined;
  return `${image.name}:${image.tag}`;
}
