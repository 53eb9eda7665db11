/**
 * The docker:// destination (src/shell/outputs/docker-daemon.ts) on the real copy loop,
 * TempScope and file system, loading into a loopback daemon of the test's own over a unix
 * socket, which fails the load in random ways: an errorDetail after reading it all, a
 * connection dropped after some bytes, an HTTP 500 before reading anything, an inspect
 * that names another image; and aborts at a random layer.
 *
 * Properties: every temp file ends released exactly once; a run that succeeds sent one
 * docker-loadable archive whose manifest.json tags the destination name and lists every
 * layer in order, each entry's bytes the layer's; a run that fails or is aborted raises
 * an explained error and never asks the daemon about the image after a failed load.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as fc from 'fast-check';
import * as tarStream from 'tar-stream';
import type { Digest } from '../src/core/digest.js';
import type { ConfigElement, ImageElement, LayerDescriptor } from '../src/core/element.js';
import { OccystrapError } from '../src/core/errors.js';
import { runPipeline } from '../src/core/pipeline/compose.js';
import type { ImageInput, InputContext } from '../src/core/pipeline/types.js';
import { DockerDaemonOutput } from '../src/shell/outputs/docker-daemon.js';
import { TempScope } from '../src/shell/scope.js';

const root = mkdtempSync(path.join(tmpdir(), 'occystrap-load-prop-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

type LoadFault = 'none' | 'error-detail' | 'drop' | 'early-500' | 'wrong-id';
const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

const specArb = fc.record({
  layers: fc.array(fc.uint8Array({ minLength: 1, maxLength: 40_000 }), { minLength: 1, maxLength: 4 }),
  fault: fc.constantFrom<LoadFault>('none', 'none', 'none', 'error-detail', 'drop', 'early-500', 'wrong-id'),
  dropAfter: fc.integer({ min: 1, max: 60_000 }),
  abortAt: fc.option(fc.nat({ max: 4 }), { nil: undefined }),
});

interface Received {
  requests: string[];
  entries: Map<string, Buffer>;
  /** The connection was dropped (`drop`, with an archive longer than `dropAfter`). */
  dropped: boolean;
}

/** A daemon that loads as `fault` says; the archive it read, parsed, when it read one whole. */
async function fakeDaemon(fault: LoadFault, dropAfter: number, configDigest: () => string): Promise<{ socket: string; received: Received; close: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(root, 'd-'));
  const socket = path.join(dir, 'd.sock');
  const received: Received = { requests: [], entries: new Map(), dropped: false };
  const server = createServer((req, res) => {
    received.requests.push(`${req.method} ${req.url}`);
    if (req.url === '/_ping') {
      res.writeHead(200, { 'Api-Version': '1.41' });
      res.end('OK');
      return;
    }
    if (req.method === 'POST' && (req.url ?? '').startsWith('/v1.41/images/load')) {
      if (fault === 'early-500') {
        res.writeHead(500, { 'Content-Type': 'application/json', Connection: 'close' });
        res.end(JSON.stringify({ message: 'the daemon is shutting down' }));
        req.resume();
        return;
      }
      const extract = tarStream.extract();
      extract.on('entry', (header, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: unknown) => chunks.push(c as Buffer));
        stream.on('end', () => {
          received.entries.set(header.name, Buffer.concat(chunks));
          next();
        });
      });
      extract.on('error', () => undefined);
      let read = 0;
      req.on('data', (c: Buffer) => {
        read += c.length;
        if (fault === 'drop' && read > dropAfter && !received.dropped) {
          received.dropped = true;
          req.socket.destroy();
        }
      });
      req.pipe(extract);
      req.on('end', () => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const last = fault === 'error-detail' ? { errorDetail: { message: 'no space left on device' }, error: 'no space left on device' } : { stream: 'Loaded image: prop:v1\n' };
        res.end(`${JSON.stringify({ stream: 'Loading layer' })}\n${JSON.stringify(last)}\n`);
      });
      return;
    }
    if (req.method === 'GET' && /^\/v1\.41\/images\/[^/]+\/json$/.test(req.url ?? '')) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ Id: fault === 'wrong-id' ? `sha256:${'c'.repeat(64)}` : configDigest(), RepoTags: ['prop:v1'], RootFS: { Layers: [] } }));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { socket, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Config, then each layer as a temp file of its own; the signal aborts at `abortAt`. */
function layersInput(layers: readonly Uint8Array[], abortAt: number | undefined, abort: AbortController): { input: ImageInput; config: ConfigElement } {
  const descriptors: LayerDescriptor[] = layers.map((l, index) => ({ index, sourceId: `l${index}`, diffId: sha(l), mediaType: 'application/vnd.oci.image.layer.v1.tar' }));
  const parsed = { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: descriptors.map((d) => d.diffId) } };
  const raw = new TextEncoder().encode(JSON.stringify(parsed));
  const config = { _tag: 'Config', image: { name: 'src', tag: '1' }, digest: sha(raw), raw, config: parsed, layers: descriptors } as unknown as ConfigElement;
  const input: ImageInput = {
    description: 'layers',
    async *elements(ctx: InputContext): AsyncGenerator<ImageElement> {
      yield config;
      const seen = new Set<string>();
      for (const layer of descriptors) {
        if (abortAt === layer.index) abort.abort(new Error('stopped by the test'));
        if (seen.has(layer.diffId)) {
          yield { _tag: 'Layer', layer, payload: { _tag: 'Skipped', reason: 'duplicate' } };
          continue;
        }
        seen.add(layer.diffId);
        const file = await ctx.effects.perform({ _tag: 'CreateTemp', owner: ctx.owner, purpose: `layer-${layer.index}` });
        await writeFile(file.path, layers[layer.index] as Uint8Array);
        yield { _tag: 'Layer', layer, payload: { _tag: 'Tar', tar: { file, size: (layers[layer.index] as Uint8Array).length } } };
      }
    },
  };
  return { input, config };
}

test('docker:// destination: every temp file released once; a load succeeds whole, or fails explained with nothing asked after it', async () => {
  const outcomes = { ok: 0, failed: 0, aborted: 0 };
  await fc.assert(
    fc.asyncProperty(specArb, async (spec) => {
      const abort = new AbortController();
      const { input, config } = layersInput(spec.layers, spec.abortAt, abort);
      const daemon = await fakeDaemon(spec.fault, spec.dropAfter, () => config.digest);
      const temp = mkdtempSync(path.join(root, 't-'));
      const scope = await TempScope.open({ parent: temp });
      let error: unknown;
      try {
        await runPipeline({ input, output: new DockerDaemonOutput({ repoTag: 'prop:v1', endpoint: { socket: daemon.socket, from: '?socket=' }, label: 'docker://prop:v1' }), effects: scope, signal: abort.signal });
      } catch (e) {
        error = e;
      }
      await daemon.close();
      const live = scope.ledger.all().filter((e) => e.state._tag === 'Live' || e.state._tag === 'Moving');
      const report = await scope.close();
      assert.deepEqual(live.map((e) => e.id), [], 'every temp file was released by the time the run returned');
      assert.equal(report.released, 0, 'close() had nothing left to release');
      assert.deepEqual(readdirSync(temp), []);
      rmSync(temp, { recursive: true, force: true });
      if (error === undefined) {
        assert.ok(spec.fault === 'none' || (spec.fault === 'drop' && !daemon.received.dropped), `a ${spec.fault} load must fail`);
        outcomes.ok++;
        const manifest = JSON.parse((daemon.received.entries.get('manifest.json') as Buffer).toString('utf8')) as { Config: string; RepoTags: string[]; Layers: string[] }[];
        assert.deepEqual(manifest[0]?.RepoTags, ['prop:v1']);
        assert.equal(manifest[0]?.Config, `${config.digest.slice(7)}.json`);
        manifest[0]?.Layers.forEach((name, i) => {
          const bytes = daemon.received.entries.get(name);
          assert.ok(bytes, `entry ${name}`);
          assert.equal(sha(bytes), config.layers[i]?.diffId, `layer ${i}`);
        });
        return;
      }
      assert.ok(OccystrapError.is(error), `an explained error: ${String(error)}`);
      if (abort.signal.aborted) outcomes.aborted++;
      else outcomes.failed++;
      if (spec.fault !== 'wrong-id') {
        assert.ok(!daemon.received.requests.some((q) => q.endsWith('/json')), `nothing asked after a failed load: ${daemon.received.requests.join(', ')}`);
      }
    }),
    { numRuns: 200 },
  );
  assert.ok(outcomes.ok > 20 && outcomes.failed > 20 && outcomes.aborted > 5, JSON.stringify(outcomes));
});
