/**
 * `docker://NAME[:TAG]` as a source: the image from a Docker Engine API daemon (Docker,
 * or Podman's compatible service), as Python occystrap reads it: inspect first, then
 * stream `GET /images/{name}/get` straight through the docker-save reader (no copy of the
 * whole archive; each layer is spooled or streamed into the output as the archive
 * passes). The config the archive carries must be the image the inspect named (the
 * reader checks it against `expected`).
 *
 * @module
 */
import { type Digest, isDigest } from '../../core/digest.js';
import { inputError } from '../../core/errors.js';
import { parseRepoTag } from '../../core/plans/docker-save.js';
import type { ImageElement } from '../../core/element.js';
import type { ImageInput, InputContext } from '../../core/pipeline/types.js';
import type { EngineEndpoint } from '../daemon/endpoint.js';
import type { EngineClient, ImageInspect } from '../daemon/engine.js';
import { DockerSaveInput } from './docker-save.js';

export interface DockerDaemonInputOptions {
  /** The image as the daemon knows it: `NAME:TAG`, `NAME@DIGEST` or an id. */
  readonly image: string;
  readonly endpoint: EngineEndpoint;
  /** How the source is named in messages (the URI the user typed). */
  readonly label: string;
}

export class DockerDaemonInput implements ImageInput {
  readonly description: string;

  constructor(private readonly options: DockerDaemonInputOptions) {
    this.description = options.label;
  }

  /**
   * The image's config, then its layers.
   *
   * - Errors: the daemon's (no socket, image not found, an error while exporting) as one
   *   `EINPUT` line naming the socket; the archive's as `tar://` reports them; a config
   *   whose digest is not the inspected image's `Id` is an `EDIGEST` error.
   * - Cancellation: `ctx.signal` aborts the export; the connection is closed.
   * - Ownership: as the docker-save reader's (each delivered layer's temp file is handed over).
   */
  async *elements(ctx: InputContext): AsyncGenerator<ImageElement, void, undefined> {
    const { EngineClient } = await import('../daemon/engine.js');
    const client: EngineClient = await EngineClient.connect(this.options.endpoint, 'source', this.description, ctx.signal);
    let inspect: ImageInspect;
    try {
      inspect = await client.inspectImage(this.options.image, ctx.signal);
    } catch (e) {
      await client.close();
      throw e;
    }
    if (!isDigest(inspect.id) || !inspect.id.startsWith('sha256:') || !inspect.diffIds.every((d) => isDigest(d) && d.startsWith('sha256:'))) {
      await client.close();
      throw inputError(`${this.description}: the daemon's inspect of ${this.options.image} gives an Id or RootFS.Layers that are not sha256 digests; refusing it`);
    }
    const reader = new DockerSaveInput({
      stream: {
        open: (signal) => client.exportImage(this.options.image, signal),
        close: () => client.close(),
        expected: { configDigest: inspect.id as Digest, diffIds: inspect.diffIds as Digest[], image: parseRepoTag(this.options.image) },
      },
      selector: { _tag: 'First' },
      label: this.description,
    });
    // The reader refuses a config whose digest is not `expected.configDigest` (EDIGEST).
    yield* reader.elements(ctx);
  }
}
