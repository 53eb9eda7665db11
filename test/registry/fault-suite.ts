// The setup the registry fault tests share: a real docker-registry holding the
// `sample` fixture image, a fault proxy in front of it (rules and request logs
// cleared before each test), and facts about that image.
import { after, before, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupTmpDirs, fixture, type ImageFacts, type LayerFacts } from '../integration/fixtures.js';
import { pushImage, startFaultProxy, startRegistry, type FaultProxy, type Registry } from './harness.js';

export interface FaultSuite {
  /** The fault proxy in front of the registry (set once the suite's `before` ran). */
  readonly proxy: FaultProxy;
  readonly registry: Registry;
  /** `HOST:PORT/sample:v1` through the proxy. */
  ref(): string;
  /** What a dir:// store of the sample pulled through the proxy must hold. */
  expectedStore(): { configDigest: string; diffIds: readonly string[]; repoTag: string };
}

/** Install the suite's hooks in the calling test file and return its handles. */
export function sampleBehindFaultProxy(): FaultSuite {
  let registry: Registry | undefined;
  let proxy: FaultProxy | undefined;
  before(async () => {
    registry = await startRegistry();
    await pushImage(registry, 'sample', 'sample:v1');
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
    ref: () => `${suite.proxy.host}/sample:v1`,
    expectedStore: () => ({ configDigest: sample().configDigest as string, diffIds: sample().diffIds, repoTag: suite.ref() }),
  };
  return suite;
}

/** The `sample` image's facts from the fixture index. */
export function sample(): ImageFacts {
  const img = fixture('oci').images.find((i) => i.ref === 'sample');
  assert.ok(img);
  return img;
}

/** The sample's largest layer. */
export function bigLayer(): LayerFacts {
  const big = [...(sample().layers ?? [])].sort((a, b) => b.size - a.size)[0];
  assert.ok(big);
  return big;
}
