// The fixture images the registry tests push, and the setup they share: a real
// docker-registry holding the `sample` fixture image (and, if asked, its Docker-media-type
// push), a fault proxy in front of it (rules and request logs cleared before each test).
import { after, before, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupTmpDirs, fixture, type ImageFacts, type LayerFacts } from '../integration/fixtures.js';
import {
  pushImage,
  startFaultProxy,
  startRegistry,
  type Credentials,
  type FaultProxy,
  type PushedImage,
  type PushOptions,
  type Registry,
  type RegistryOptions,
} from '../registry/harness.js';

/** A push of the fixture OCI layout's image `image` (`sample`, `other`...) as `target`, in `format` (default oci). */
export type Push = readonly [image: string, target: string, format?: PushOptions['format']];

/**
 * Starts a registry (`options`) and pushes `pushes` into it in order (with `creds`, for a
 * registry with auth); returns the registry and what each push stored. A failed push stops
 * the registry again before the error is passed on.
 */
export async function registryWith<const P extends readonly Push[]>(
  pushes: P,
  options: RegistryOptions = {},
  creds?: Credentials,
): Promise<{ registry: Registry; pushed: { -readonly [K in keyof P]: PushedImage } }> {
  const registry = await startRegistry(options);
  try {
    const pushed: PushedImage[] = [];
    for (const [image, target, format] of pushes) pushed.push(await pushImage(registry, image, target, creds, { format: format ?? 'oci' }));
    return { registry, pushed: pushed as { -readonly [K in keyof P]: PushedImage } };
  } catch (error) {
    await registry.stop();
    throw error;
  }
}

export interface FaultSuite {
  /** The fault proxy in front of the registry (set once the suite's `before` ran). */
  readonly proxy: FaultProxy;
  readonly registry: Registry;
  /** The sample pushed with OCI media types as `sample:v1` (direct, not through the proxy). */
  readonly oci: PushedImage;
  /** The sample pushed with Docker media types (only with the `docker` option). */
  readonly docker: PushedImage;
  /** `HOST:PORT/sample:v1` through the proxy. */
  ref(): string;
  /** What a dir:// store of the sample pulled through the proxy must hold. */
  expectedStore(): { configDigest: string; diffIds: readonly string[]; repoTag: string };
}

/**
 * Install the suite's hooks in the calling test file (or describe) and return its handles.
 * `docker`: also push the sample with Docker media types, as this target (e.g.
 * `sample-docker:v1`). `registry` and `creds`: a registry with auth, and the credentials
 * to push with.
 */
export function sampleBehindFaultProxy(options: { docker?: string; registry?: RegistryOptions; creds?: Credentials } = {}): FaultSuite {
  let registry: Registry | undefined;
  let proxy: FaultProxy | undefined;
  let oci: PushedImage | undefined;
  let docker: PushedImage | undefined;
  before(async () => {
    const pushes: Push[] = [['sample', 'sample:v1']];
    if (options.docker !== undefined) pushes.push(['sample', options.docker, 'v2s2']);
    ({ registry, pushed: [oci, docker] } = await registryWith(pushes, options.registry, options.creds));
    proxy = await startFaultProxy(registry.url);
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    await cleanupTmpDirs();
  });
  beforeEach(() => {
    const p = suite.proxy;
    p.setRules([]);
    p.requests.length = 0;
    p.objectStore.requests.length = 0;
  });
  const suite: FaultSuite = {
    get proxy() {
      assert.ok(proxy, 'the fault proxy is not started yet');
      return proxy;
    },
    get registry() {
      assert.ok(registry, 'the registry is not started yet');
      return registry;
    },
    get oci() {
      assert.ok(oci, 'the sample is not pushed yet');
      return oci;
    },
    get docker() {
      assert.ok(docker, 'no Docker-media-type push: pass the docker option');
      return docker;
    },
    ref: () => `${suite.proxy.host}/sample:v1`,
    expectedStore: () => ({ configDigest: sample().configDigest as string, diffIds: sample().diffIds, repoTag: suite.ref() }),
  };
  return suite;
}

/** The facts of the fixture OCI layout's image `ref` (`sample`, `other`...). */
export function ociImage(ref: string): ImageFacts {
  const img = fixture('oci').images.find((i) => i.ref === ref);
  assert.ok(img, `fixtures.json has the oci "${ref}" image`);
  return img;
}

/** The `sample` image's facts from the fixture index. */
export function sample(): ImageFacts {
  return ociImage('sample');
}

/** The sample's largest layer. */
export function bigLayer(): LayerFacts {
  const big = [...(sample().layers ?? [])].sort((a, b) => b.size - a.size)[0];
  assert.ok(big);
  return big;
}
