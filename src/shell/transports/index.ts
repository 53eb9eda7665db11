/**
 * The transport table: every scheme occystrap knows, one line per module. Adding a scheme
 * is one new module in this folder and one line here; endpoints, messages and help text
 * derive from the table (./derive.ts).
 *
 * @module
 */
import { dirTransport } from './dir.js';
import { dockerTransport } from './docker.js';
import { mountsTransport } from './mounts.js';
import { ociTransport } from './oci.js';
import { ocidirTransport } from './ocidir.js';
import { plannedTransports } from './planned.js';
import { registryTransport } from './registry.js';
import { tarTransport } from './tar.js';
import type { TransportTable } from './types.js';

export const TRANSPORTS: TransportTable = [
  tarTransport,
  dirTransport,
  registryTransport,
  ocidirTransport,
  ociTransport,
  mountsTransport,
  dockerTransport,
  ...plannedTransports,
];

export type { DestinationRole, ImageDescription, PlannedRole, SourceRole, Target, Transport, TransportSettings, TransportTable } from './types.js';
