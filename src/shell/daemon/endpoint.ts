/**
 * Which unix socket a Docker Engine API daemon listens on: light to load (no undici), for
 * the transport table.
 *
 * @module
 */
import { usageError } from '../../core/errors.js';

export const DEFAULT_SOCKET = '/var/run/docker.sock';

export interface EngineEndpoint {
  readonly socket: string;
  /** Where the socket came from, for messages. */
  readonly from: '?socket=' | 'DOCKER_HOST' | 'the default';
}

/**
 * The socket to use: `option` (`?socket=`), else `DOCKER_HOST` (only `unix://` is
 * supported), else {@link DEFAULT_SOCKET}. A `DOCKER_HOST` of another kind is a usage error.
 */
export function engineEndpoint(option: string | undefined, env: NodeJS.ProcessEnv): EngineEndpoint {
  if (option !== undefined) {
    if (option === '') throw usageError('?socket= needs a path, e.g. ?socket=/run/podman/podman.sock');
    return { socket: option, from: '?socket=' };
  }
  const host = env['DOCKER_HOST'];
  if (host !== undefined && host !== '') {
    if (!host.startsWith('unix://')) throw usageError(`DOCKER_HOST=${host}: only unix:// sockets are supported; give unix:///path/to/docker.sock, or ?socket=PATH`);
    const socket = host.slice('unix://'.length);
    if (socket === '') throw usageError(`DOCKER_HOST=${host}: no socket path after unix://`);
    return { socket, from: 'DOCKER_HOST' };
  }
  return { socket: DEFAULT_SOCKET, from: 'the default' };
}

