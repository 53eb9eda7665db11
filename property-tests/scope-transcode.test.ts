/**
 * The scope's `Inflate`/`Compress` against close(): a signal handler calls close() and
 * exits; a transcode under way (a large layer being compressed) must not hold it up.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LayerCodecs, TranscodeResult } from '../src/shell/fs/transcode.js';
import { TempScope } from '../src/shell/scope.js';
import { invariantAfterClose, withDeadline } from './support/invariants.js';
import { MemoryFs } from './support/memory-fs.js';

/** Codecs that write half the file and then run until their signal stops them. */
function endlessCodecs(fs: MemoryFs, started: () => void): LayerCodecs {
  const endless = async (to: string, signal: AbortSignal | undefined): Promise<TranscodeResult> => {
    await fs.writeFile(to, 'half a layer');
    started();
    return new Promise((_, reject) => {
      signal?.addEventListener('abort', () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted')), { once: true });
    });
  };
  return { inflate: (_from, to, _c, signal) => endless(to, signal), compress: (_from, to, _c, signal) => endless(to, signal) };
}

for (const tag of ['Inflate', 'Compress'] as const) {
  test(`close() stops a ${tag} under way instead of waiting for it; the half-written file is released`, async () => {
    const fs = new MemoryFs();
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const scope = await TempScope.open({ parent: '/tmp', fs, codecs: endlessCodecs(fs, () => started()) });
    const source = await scope.perform({ _tag: 'CreateTemp', owner: 'output', purpose: 'source' });
    const transcoding =
      tag === 'Inflate'
        ? scope.perform({ _tag: 'Inflate', source, owner: 'output', compression: 'gzip', purpose: 'made' })
        : scope.perform({ _tag: 'Compress', source, owner: 'output', compression: 'gzip', purpose: 'made' });
    transcoding.catch(() => undefined);
    await running;
    const report = await withDeadline(scope.close(), 2000, `close() during a ${tag}`);
    await assert.rejects(transcoding);
    assert.deepEqual(invariantAfterClose(scope, fs, report), []);
    assert.equal(report.released, 1, 'close releases the source; the transcode released its own new file');
    assert.deepEqual(fs.filesUnder('/tmp'), []);
  });
}
