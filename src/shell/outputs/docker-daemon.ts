/**
 * `docker://NAME[:TAG]` as a destination: the image loaded into a Docker Engine API daemon
 * (Docker, or Podman's service). A docker-save archive is built as `tar://` builds it
 * (layers in manifest order, while later ones still download) and streamed straight into
 * `POST /images/load`: no archive file, nothing buffered beyond the request's stream.
 *
 * The archive's `RepoTags` is the destination's `NAME:TAG`, so the daemon tags the image
 * with it when, and only when, the load succeeds (Python occystrap used the source's name).
 * The load's JSON progress is read to its end; an `errorDetail` is the run's error (a full
 * disk no longer fails silently, skopeo#940). After the load, the daemon's inspect of
 * `NAME:TAG` must name the config that was sent.
 *
 * @module
 */
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { type ConfigElement, type DataPayload, type LayerDescriptor, releaseElement, tarOf } from '../../core/element.js';
import { outputError } from '../../core/errors.js';
import { type CommittedImage, CopyOutput, type ImageDestination, type PutLayerResult } from '../../core/pipeline/copy-image.js';
import type { StageContext } from '../../core/pipeline/types.js';
import { dockerSaveManifestBytes, repositoriesBytes, savedConfigPath, savedLayerPath } from '../../core/plans/docker-save.js';
import type { EngineEndpoint } from '../daemon/endpoint.js';
import type { EngineClient, EngineResponse } from '../daemon/engine.js';
import { TarAppender } from './tar-appender.js';

export interface DockerDaemonOutputOptions {
  /** `NAME:TAG` the loaded image is tagged with. */
  readonly repoTag: string;
  readonly endpoint: EngineEndpoint;
  readonly label: string;
}

/** The load request's body: appended with back-pressure; a load that ended early fails the next write. */
class LoadStream extends TarAppender {
  readonly body = new PassThrough({ highWaterMark: 1 << 20 });
  private ended: { error?: unknown } | undefined;

  /** Called once the daemon answered (or the request failed): later writes fail with `failure`. */
  settle(failure: unknown): void {
    this.ended ??= { error: failure };
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.ended) throw this.ended.error ?? new Error('the daemon stopped reading the load');
    this.bytes += chunk.length;
    if (!this.body.write(chunk)) {
      await Promise.race([once(this.body, 'drain'), once(this.body, 'close')]);
      const ended = this.ended as { error?: unknown } | undefined; // set meanwhile, maybe
      if (ended) throw ended.error ?? new Error('the daemon stopped reading the load');
    }
  }
}

interface LoadRun {
  readonly client: EngineClient;
  readonly stream: LoadStream;
  /** The load request: its response, once the daemon has read the whole archive. */
  readonly response: Promise<EngineResponse>;
}

export class DockerDaemonDestination implements ImageDestination<string> {
  readonly description: string;
  readonly order = 'manifest' as const;
  readonly needs = { _tag: 'Tar' } as const;
  readonly concurrency = 1;
  private run: LoadRun | undefined;

  constructor(private readonly options: DockerDaemonOutputOptions) {
    this.description = options.label;
  }

  async begin(_config: ConfigElement, ctx: StageContext): Promise<void> {
    if (this.run) throw outputError(`${this.description}: one image per load`);
    const { EngineClient } = await import('../daemon/engine.js');
    const client = await EngineClient.connect(this.options.endpoint, 'destination', this.description, ctx.signal);
    const stream = new LoadStream();
    const response = client.request('POST', '/images/load?quiet=1', { body: stream.body, headers: { 'content-type': 'application/x-tar' }, signal: ctx.signal });
    // The daemon answers once it has read the archive; an answer (or failure) before the
    // archive ended means it stopped reading: the next write fails with what it said.
    response.then(
      (res) => stream.settle(res.status === 200 ? undefined : client.fail(`the daemon refused the load (HTTP ${res.status})`)),
      (e: unknown) => stream.settle(e),
    );
    this.run = { client, stream, response };
  }

  async putConfig(config: ConfigElement): Promise<void> {
    await this.current().stream.entry({ name: savedConfigPath(config.digest), type: 'file', size: config.raw.length }, config.raw);
  }

  async putLayer(layer: LayerDescriptor, payload: DataPayload, ctx: StageContext): Promise<PutLayerResult<string>> {
    const tar = tarOf(payload);
    try {
      if (!tar) throw outputError(`${this.description}: layer ${layer.index} arrived without its tar`);
      const name = savedLayerPath(layer.diffId);
      const added = await this.current().stream.layer(name, tar.file.path, tar.size);
      return added ? { stored: name, bytes: tar.size } : { stored: name, bytes: 0, kept: true };
    } catch (e) {
      throw this.explain(e);
    } finally {
      await releaseElement(ctx.effects, ctx.owner)({ _tag: 'Layer', layer, payload });
    }
  }

  async commit(image: CommittedImage<string>, ctx: StageContext): Promise<{ destination: string }> {
    const run = this.current();
    const layerPaths = image.layers.map((r) => {
      if (r._tag === 'Present') throw outputError(`${this.description}: layer ${r.layer.index} arrived without data`);
      return savedLayerPath(r.layer.diffId);
    });
    const plan = { configPath: savedConfigPath(image.config.digest), layerPaths, repoTags: [this.options.repoTag] };
    try {
      const manifest = dockerSaveManifestBytes([plan]);
      await run.stream.entry({ name: 'manifest.json', type: 'file', size: manifest.length }, manifest);
      const repositories = repositoriesBytes([plan]);
      if (repositories) await run.stream.entry({ name: 'repositories', type: 'file', size: repositories.length }, repositories);
      await run.stream.finish();
      run.stream.body.end();
    } catch (e) {
      throw this.explain(e);
    }
    const res = await run.response;
    await this.readLoadProgress(res);
    const inspect = await run.client.inspectImage(this.options.repoTag, ctx.signal);
    if (inspect.id !== image.config.digest) {
      throw outputError(`${this.description}: after the load, ${this.options.repoTag} is ${inspect.id} in the daemon, not the image sent (${image.config.digest}); another load raced this one`);
    }
    await run.client.close();
    this.run = undefined;
    return { destination: `${this.description} (${this.options.repoTag}, ${inspect.id})` };
  }

  async abort(): Promise<void> {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    // The request fails with its body: the daemon drops what it read, and tags nothing.
    run.stream.body.destroy(new Error('the run stopped'));
    await run.response.then((res) => res.body.resume()).catch(() => undefined);
    await run.client.close();
  }

  /** The load's answer: JSON messages, one per line; an `error`/`errorDetail` is the run's error. */
  private async readLoadProgress(res: EngineResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size <= 1 << 20) chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (res.status !== 200) {
      const { daemonMessage } = await import('../daemon/engine.js');
      throw outputError(`${this.description}: the load failed: ${daemonMessage(res.status, text)}`);
    }
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      let message: { error?: unknown; errorDetail?: { message?: unknown } };
      try {
        message = JSON.parse(line) as typeof message;
      } catch {
        continue; // not JSON progress: ignored, the inspect after the load decides
      }
      const error = typeof message.errorDetail?.message === 'string' ? message.errorDetail.message : typeof message.error === 'string' ? message.error : undefined;
      if (error !== undefined) throw outputError(`${this.description}: the daemon failed to load the image: ${error.split('\n')[0]}`);
    }
  }

  private explain(e: unknown): unknown {
    if ((e as { code?: string }).code === 'EOUTPUT' || (e as { code?: string }).code === 'EABORT') return e;
    return outputError(`${this.description}: sending the image to the daemon failed: ${(e as Error)?.message ?? String(e)}`, e);
  }

  private current(): LoadRun {
    if (!this.run) throw outputError(`${this.description}: no load under way`);
    return this.run;
  }
}

/** `docker://` as an output: the copy loop into a {@link DockerDaemonDestination}. */
export class DockerDaemonOutput extends CopyOutput<string> {
  constructor(options: DockerDaemonOutputOptions) {
    super(new DockerDaemonDestination(options));
  }
}
