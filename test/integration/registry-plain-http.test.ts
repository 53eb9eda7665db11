// A plain-HTTP registry reached over TLS (no --insecure) is named for what it is, in the
// caller's words, without OpenSSL's text: the CLI's options for the CLI, the settings
// field for a library caller.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { errorLines, occystrap } from './cli-helpers.js';
import type { Registry } from '../registry/harness.js';
import { registryWith } from '../support/sample-registry.js';
import { openInput } from '../../src/shell/endpoints.js';

let registry: Registry;

before(async () => {
  ({ registry } = await registryWith([['sample', 'sample:v1']]));
});

after(async () => {
  await registry?.stop();
});

test('CLI: one line that says the registry answered plain HTTP and names --insecure', async () => {
  const uri = `registry://${registry.host}/sample:v1`;
  const fact = `${uri}: ${registry.host} answered plain HTTP to a TLS request: it is a plain-HTTP registry; to use it, add --insecure or ?insecure=true`;
  const info = await occystrap(['info', uri]);
  assert.equal(info.code, 1, info.stderr);
  assert.deepEqual(errorLines(info.stderr), [`occystrap: error: ${fact}`]);
  assert.doesNotMatch(info.stderr, /SSL|openssl|ssl3/i);
  // check reports a source it cannot read as an error result in its report.
  const check = await occystrap(['check', '--fast', uri]);
  assert.equal(check.code, 1, check.stderr);
  assert.ok(check.stdout.split('\n').includes(`  [source] ${fact}`), check.stdout);
  assert.doesNotMatch(check.stdout + check.stderr, /SSL|openssl|ssl3/i);
});

test('library: the same fact in API words (insecure: true), and the hint works', async () => {
  type Describable = { describe(): Promise<{ config: { digest: string } }>; close?(): Promise<void> };
  const input = (await openInput(`registry://${registry.host}/sample:v1`, { env: {} })) as unknown as Describable;
  try {
    await assert.rejects(input.describe(), (e: Error) => {
      assert.equal(e.message, `registry://${registry.host}/sample:v1: ${registry.host} answered plain HTTP to a TLS request: it is a plain-HTTP registry; to use it, pass insecure: true in the settings, or ?insecure=true in the URI`);
      return true;
    });
  } finally {
    await input.close?.();
  }
  const fixed = (await openInput(`registry://${registry.host}/sample:v1`, { env: {}, insecure: true })) as unknown as Describable;
  try {
    assert.match((await fixed.describe()).config.digest, /^sha256:[0-9a-f]{64}$/);
  } finally {
    await fixed.close?.();
  }
});
