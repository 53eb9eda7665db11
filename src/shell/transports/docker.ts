/**
 * `docker://NAME[:TAG][?socket=PATH]`: an image in a Docker Engine API daemon (Docker, or
 * `podman system service`), over its unix socket.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { usageError } from '../../core/errors.js';
import { checkImageReference } from '../../core/reference.js';
import { type EngineEndpoint, engineEndpoint } from '../daemon/endpoint.js';
import type { DockerDaemonInput } from '../inputs/docker-daemon.js';
import { checkOptions, stringOption } from './target-options.js';
import type { DestinationRole, SourceRole, Target, Transport, TransportSettings } from './types.js';

/** `NAME[:TAG]` or `NAME@DIGEST` from the URI body; a missing tag is `latest`, as docker says. */
export function daemonImageName(target: Target): string {
  const body = target.body;
  if (body === '') throw usageError(`${target.uri}: give the image, docker://NAME[:TAG]`);
  const slash = body.lastIndexOf('/');
  const colon = body.lastIndexOf(':');
  const named = body.includes('@') || colon > slash ? body : `${body}:latest`;
  const checked = checkImageReference(named);
  if (E.isLeft(checked)) throw usageError(`${target.uri}: ${checked.left}`);
  return named;
}

/** What both roles read from the URI: its options checked, the image name, the socket. */
function daemonTarget(target: Target, settings: TransportSettings, role: SourceRole<DockerDaemonInput> | DestinationRole): { image: string; endpoint: EngineEndpoint } {
  checkOptions(target, role);
  const image = daemonImageName(target);
  try {
    return { image, endpoint: engineEndpoint(stringOption(target, target.uri, 'socket'), settings.env ?? process.env) };
  } catch (e) {
    throw usageError(`${target.uri}: ${(e as Error).message}`);
  }
}

const source: SourceRole<DockerDaemonInput> = {
  usage: 'docker://NAME[:TAG][?socket=PATH]',
  summary: 'an image in a Docker or Podman daemon',
  options: ['socket'],
  async open(target, settings) {
    const { image, endpoint } = daemonTarget(target, settings, source);
    const { DockerDaemonInput } = await import('../inputs/docker-daemon.js');
    return new DockerDaemonInput({ image, endpoint, label: target.uri });
  },
};

const destination: DestinationRole = {
  usage: 'docker://NAME[:TAG][?socket=PATH]',
  summary: 'load into a Docker or Podman daemon, tagged NAME:TAG',
  options: ['socket'],
  async open(target, settings) {
    const { image: repoTag, endpoint } = daemonTarget(target, settings, destination);
    if (repoTag.includes('@')) throw usageError(`${target.uri}: a loaded image is tagged NAME:TAG; a digest cannot be a tag`);
    const { DockerDaemonOutput } = await import('../outputs/docker-daemon.js');
    return new DockerDaemonOutput({ repoTag, endpoint, label: target.uri });
  },
};

export const dockerTransport: Transport = { name: 'docker', aliases: [], what: 'a Docker Engine API daemon', source, destination };
