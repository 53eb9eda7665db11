/**
 * From URIs to inputs and outputs, through the transport table (./transports): the scheme
 * (or its alias) picks the entry, the entry's role opens it.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { usageError } from '../core/errors.js';
import type { ImageInput, ImageOutput } from '../core/pipeline/types.js';
import { parseUri } from '../core/uri.js';
import { aliasMap, type RoleName, roleOf, unavailableMessage } from './transports/derive.js';
import { TRANSPORTS } from './transports/index.js';
import { type DestinationRole, type ImageDescription, isPlanned, type SourceRole, type Target, type TransportSettings, type TransportTable } from './transports/types.js';

const aliasesOf = new WeakMap<TransportTable, Readonly<Record<string, string>>>();

function parseTarget(table: TransportTable, role: RoleName, uri: string): Target {
  let aliases = aliasesOf.get(table);
  if (!aliases) aliasesOf.set(table, (aliases = aliasMap(table)));
  const parsed = parseUri(uri, aliases);
  if (E.isLeft(parsed)) throw usageError(`${role}: ${parsed.left}`);
  return { ...parsed.right, uri };
}

function find(table: TransportTable, role: 'source', uri: string): { target: Target; role: SourceRole };
function find(table: TransportTable, role: 'destination', uri: string): { target: Target; role: DestinationRole };
function find(table: TransportTable, roleName: RoleName, uri: string): { target: Target; role: SourceRole | DestinationRole } {
  const target = parseTarget(table, roleName, uri);
  const transport = table.find((t) => t.name === target.scheme);
  const role = transport && roleOf(transport, roleName);
  if (!role || isPlanned(role)) throw usageError(unavailableMessage(table, roleName, target.scheme, uri) ?? `${uri}: not a ${roleName}`);
  return { target, role };
}

/** An opened source, with the entry's way to read its manifest and config without layers. */
export interface OpenedSource {
  readonly input: ImageInput;
  /** Present for sources that have a manifest to read on its own (registry://). */
  readonly describe?: (signal?: AbortSignal) => Promise<ImageDescription>;
}

/** Open a source URI; checks that a local file exists (exit 2 when not). */
export async function openSource(uri: string, settings: TransportSettings = {}, table: TransportTable = TRANSPORTS): Promise<OpenedSource> {
  const { target, role } = find(table, 'source', uri);
  const input = await role.open(target, settings);
  const describe = role.describe?.bind(role);
  return describe ? { input, describe: (signal) => describe(input, signal) } : { input };
}

/** Build the input for a source URI; checks that a local file exists (exit 2 when not). */
export async function openInput(uri: string, settings: TransportSettings = {}): Promise<ImageInput> {
  return (await openSource(uri, settings)).input;
}

export async function openOutput(uri: string, settings: TransportSettings = {}, table: TransportTable = TRANSPORTS): Promise<ImageOutput> {
  const { target, role } = find(table, 'destination', uri);
  return role.open(target, settings);
}

/**
 * The directory a destination writes in (a dir:// root, the directory of a tar:// file),
 * resolved; undefined for a URI that is not a file destination.
 */
export function destinationArea(uri: string, table: TransportTable = TRANSPORTS): string | undefined {
  try {
    const { target, role } = find(table, 'destination', uri);
    return role.area?.(target);
  } catch {
    return undefined;
  }
}
