/**
 * One transport per URI scheme: what it is called, and how it opens as a source and/or a
 * destination. The table of them (./index.ts) is the only place a scheme is wired:
 * endpoints, "unknown scheme" and "not available yet" messages, and help text derive from it.
 *
 * Entries must stay light to load: a heavy module (undici, the registry client) is loaded
 * with a dynamic import() inside `open`, so start-up of runs that do not use it stays short.
 *
 * @module
 */
import type { ImageManifest } from '../../core/codecs/oci.js';
import type { ConfigElement } from '../../core/element.js';
import type { ImageInput, ImageOutput } from '../../core/pipeline/types.js';
import type { ParsedUri } from '../../core/uri.js';
import type { GlobalSettings } from '../cli/options.js';

/** A URI as a transport sees it: parsed (aliases resolved), and as the user wrote it. */
export interface Target extends ParsedUri {
  readonly uri: string;
}

/**
 * Everything the user configured for the run: the CLI passes its global settings whole,
 * so a transport that needs a new setting reads it here without another signature change.
 * Library callers may give any part; transports use defaults for the rest.
 */
export type TransportSettings = Partial<GlobalSettings> & {
  readonly env?: NodeJS.ProcessEnv;
  /** registry:// destinations: put the manifest by its own digest, not under the URI's tag (one image of an index). */
  readonly pushUntagged?: boolean;
};

/** An image's manifest and config, read without its layers (for `info` and `check`). */
export interface ImageDescription {
  readonly config: ConfigElement;
  /** Also usable as check's ManifestFacts. */
  readonly manifest: {
    readonly digest: string;
    readonly schemaVersion: unknown;
    readonly mediaType: string;
    readonly config: { readonly digest: string; readonly size: number };
    readonly layers: readonly { readonly mediaType: string; readonly size: number; readonly digest: string }[];
  };
}

/** The description of an image whose manifest was read and verified (registry, OCI layout). */
export function describedImage(config: ConfigElement, manifest: ImageManifest, digest: string, mediaType: string): ImageDescription {
  return {
    config,
    manifest: {
      digest,
      schemaVersion: manifest.schemaVersion,
      mediaType,
      config: { digest: manifest.config.digest, size: manifest.config.size },
      layers: manifest.layers.map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest })),
    },
  };
}

/** What help shows for a role. */
export interface RoleHelp {
  /** The URI form, e.g. `tar://FILE[?index=N|?tag=NAME:TAG]`. No spaces, at most 70 characters. */
  readonly usage: string;
  /** One line, e.g. "a docker-save tarball". */
  readonly summary: string;
  /** The URI option names the role accepts (without `?`); others are refused. */
  readonly options: readonly string[];
}

export interface SourceRole<I extends ImageInput = ImageInput> extends RoleHelp {
  /** Build the input; a bad URI or a missing local file is a usage error. */
  open(target: Target, settings: TransportSettings): Promise<I>;
  /** The manifest and config without the layers, when the source can give them so. */
  describe?(input: I, signal?: AbortSignal): Promise<ImageDescription>;
}

export interface DestinationRole extends RoleHelp {
  /** Build the output (a module of its own may be loaded here with import()). */
  open(target: Target, settings: TransportSettings): ImageOutput | Promise<ImageOutput>;
  /** The directory the destination writes in, resolved (to attribute file errors to it). */
  area?(target: Target): string | undefined;
}

/** A role that does not exist yet: the one-line message says so and what to use instead. */
export interface PlannedRole {
  readonly planned: string;
}

export interface Transport {
  /** The scheme, lowercase, without `://`. */
  readonly name: string;
  /** A few words for messages, e.g. "an OCI runtime bundle". */
  readonly what?: string;
  /** Other spellings of the scheme (`file` for `tar`). */
  readonly aliases: readonly string[];
  /** Absent: the scheme is never a source. */
  readonly source?: SourceRole<any> | PlannedRole;
  /** Absent: the scheme is never a destination. */
  readonly destination?: DestinationRole | PlannedRole;
}

export type TransportTable = readonly Transport[];

export function isPlanned(role: object): role is PlannedRole {
  return Object.hasOwn(role, 'planned');
}
