/**
 * The rules of `occystrap check` (src/core/check.ts) over hand-made facts, the report
 * formats, and the shell's one-pass layer scan (src/shell/check-layers.ts) over real
 * temp files.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import * as tarStream from 'tar-stream';
import {
  CheckRun,
  checkReportJson,
  configBlobChecks,
  duplicateFileChecks,
  entryChecks,
  formatCheckText,
  type LayerScan,
  layerChecks,
  type ManifestFacts,
  metadataChecks,
  rootfsPath,
  sourceFailure,
} from '../../src/core/check.js';
import type { Digest } from '../../src/core/digest.js';
import type { ConfigElement, LayerDescriptor } from '../../src/core/element.js';
import { digestError, inputError } from '../../src/core/errors.js';
import type { TarEntryInfo } from '../../src/core/filters/search.js';
import { scanLayer } from '../../src/shell/check-layers.js';

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

function configOf(opts: { diffIds?: number; history?: unknown[]; rootfsType?: string; extra?: Record<string, unknown>; layers?: Partial<LayerDescriptor>[] } = {}): ConfigElement {
  const n = opts.diffIds ?? 2;
  const diffIds = Array.from({ length: n }, (_, i) => d(i + 1));
  const json: Record<string, unknown> = {
    rootfs: { type: opts.rootfsType ?? 'layers', diff_ids: diffIds },
    ...(opts.history ? { history: opts.history } : {}),
    ...(opts.extra ?? {}),
  };
  const raw = new TextEncoder().encode(JSON.stringify(json));
  const layers: LayerDescriptor[] = (opts.layers ?? diffIds.map(() => ({}))).map((l, index) => ({
    index,
    sourceId: `s${index}`,
    diffId: diffIds[index] ?? d(100 + index),
    mediaType: OCI_LAYER,
    ...l,
  }));
  return {
    _tag: 'Config',
    image: { name: 'docker.io/library/app', tag: 'v1' },
    digest: `sha256:${createHash('sha256').update(raw).digest('hex')}` as Digest,
    raw,
    config: json as unknown as ConfigElement['config'],
    layers,
  };
}

const ids = (rs: readonly { check: string; severity: string }[]) => rs.map((r) => `${r.severity}:${r.check}`);

describe('metadataChecks', () => {
  test('nothing known: one metadata warning', () => {
    assert.deepEqual(ids(metadataChecks(undefined, undefined)), ['warning:metadata']);
  });

  test('a consistent config without a manifest (tar://): info only', () => {
    const rs = metadataChecks(undefined, configOf({ history: [{ created_by: 'a' }, { created_by: 'ENV', empty_layer: true }, { created_by: 'b' }] }));
    assert.deepEqual(ids(rs), ['info:rootfs-type', 'info:layer-count', 'info:history-count', 'info:oci-media-type']);
    assert.ok(rs.every((r) => r.severity === 'info'));
  });

  test('a registry manifest: schema, config descriptor, media type, zstd and large layers', () => {
    const manifest: ManifestFacts = {
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { digest: d(9), size: 100 },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', size: 10 },
        { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 2 * 1024 ** 3 },
      ],
    };
    const rs = metadataChecks(manifest, configOf());
    assert.deepEqual(ids(rs), [
      'info:schema-version',
      'info:rootfs-type',
      'info:layer-count',
      'info:config-descriptor',
      'info:history-count',
      'warning:zstd-compat',
      'info:docker-media-type',
      'warning:large-layer',
    ]);
    assert.match(rs.find((r) => r.check === 'large-layer')?.message ?? '', /Layer 1 is very large: 2\.0 GB compressed/);
    assert.match(rs.find((r) => r.check === 'zstd-compat')?.message ?? '', /^1 layer\(s\) use zstd/);
  });

  test('errors: schemaVersion, rootfs type, layer count, config descriptor, history count; ArgsEscaped warns', () => {
    const manifest: ManifestFacts = { schemaVersion: 1, layers: [{}, {}, {}] };
    const rs = metadataChecks(manifest, configOf({ rootfsType: 'flat', history: [{ created_by: 'only one' }], extra: { config: { ArgsEscaped: true } } }));
    assert.deepEqual(ids(rs), [
      'error:schema-version',
      'error:rootfs-type',
      'error:layer-count',
      'error:config-descriptor',
      'error:history-count',
      'warning:args-escaped',
    ]);
    assert.equal(rs[2]?.message, 'Manifest has 3 layers but config has 2 diff_ids');
    assert.equal(rs[4]?.message, 'History has 1 non-empty entries but image has 3 layers');
  });

  test('without a manifest, descriptors stand in for manifest layers (zstd by media type, declared sizes)', () => {
    const rs = metadataChecks(undefined, configOf({ layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', size: 5 }, { size: 1024 ** 3 + 1 }] }));
    assert.ok(ids(rs).includes('warning:zstd-compat'));
    assert.ok(ids(rs).includes('warning:large-layer'));
  });
});

describe('configBlobChecks', () => {
  const config = configOf();
  test('against a manifest descriptor', () => {
    assert.deepEqual(ids(configBlobChecks({ schemaVersion: 2, config: { digest: config.digest, size: config.raw.length }, layers: [] }, config, { digest: config.digest, size: config.raw.length })), [
      'info:config-digest',
      'info:config-size',
    ]);
    assert.deepEqual(ids(configBlobChecks({ schemaVersion: 2, config: { digest: d(7), size: 3 }, layers: [] }, config, { digest: config.digest, size: config.raw.length })), [
      'error:config-digest',
      'error:config-size',
    ]);
  });
  test('without a manifest: the measured digest against the source’s', () => {
    assert.deepEqual(ids(configBlobChecks(undefined, config, { digest: config.digest, size: 1 })), ['info:config-digest']);
    assert.deepEqual(ids(configBlobChecks(undefined, config, { digest: d(5), size: 1 })), ['error:config-digest']);
  });
});

describe('entryChecks', () => {
  const e = (p: Partial<TarEntryInfo> & { path: string }): TarEntryInfo => ({ kind: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: 0, ...p });
  const cases: [string, TarEntryInfo, string[]][] = [
    ['an ordinary file', e({ path: 'etc/hosts', size: 10 }), []],
    ['a whiteout', e({ path: 'etc/.wh.hostname' }), []],
    ['an opaque marker', e({ path: 'var/.wh..wh..opq' }), []],
    ['an empty whiteout target', e({ path: 'etc/.wh.' }), ['error:whiteout']],
    ['a whiteout of ..', e({ path: 'etc/.wh...' }), ['error:whiteout']],
    ['a whiteout with content', e({ path: 'etc/.wh.passwd', size: 3 }), ['warning:whiteout-size']],
    ['a whiteout that is a directory', e({ path: 'etc/.wh.x', kind: 'directory' }), ['warning:whiteout']],
    ['a negative mtime', e({ path: 'old', mtime: -1 }), ['error:tar-timestamp']],
    ['setuid and world-writable', e({ path: 'usr/bin/x', mode: 0o4777 }), ['warning:tar-permissions']],
    ['setgid and world-writable directory', e({ path: 'srv', kind: 'directory', mode: 0o2777 }), ['warning:tar-permissions']],
    ['setuid, not world-writable', e({ path: 'usr/bin/passwd', mode: 0o4755 }), []],
    ['world-writable, sticky only', e({ path: 'tmp', kind: 'directory', mode: 0o1777 }), []],
  ];
  for (const [what, entry, expected] of cases) {
    test(what, () => assert.deepEqual(ids(entryChecks(3, entry)), expected));
  }
  test('messages name the layer and the path', () => {
    assert.equal(entryChecks(3, e({ path: 'usr/bin/x', mode: 0o104777 }))[0]?.message, 'Layer 3: usr/bin/x has setuid/setgid with world-writable (mode=4777)');
    assert.equal(entryChecks(0, e({ path: 'a/.wh.' }))[0]?.message, 'Layer 0: empty whiteout target at a/.wh.');
  });
});

describe('layerChecks and duplicateFileChecks', () => {
  const scan = (index: number, files: string[], extra: Partial<LayerScan> = {}): LayerScan => ({
    index,
    expectedDiffId: d(index + 1),
    computedDiffId: d(index + 1),
    size: 1024,
    entryResults: [],
    regularFiles: files,
    ...extra,
  });
  test('diff_id verified or mismatched; tar-format', () => {
    assert.deepEqual(ids(layerChecks(scan(0, []))), ['info:diff-id']);
    const bad = layerChecks(scan(2, [], { computedDiffId: d(77), tarError: 'truncated' }));
    assert.deepEqual(ids(bad), ['error:diff-id', 'error:tar-format']);
    assert.equal(bad[0]?.message, `Layer 2 diff_id mismatch: expected ${d(3)}, got ${d(77)}`);
    assert.equal(bad[1]?.message, 'Layer 2 is not a valid tar: truncated');
  });
  test('files in several layers: info, the first 10, then "... and N more"', () => {
    const many = Array.from({ length: 13 }, (_, i) => `f${i}`);
    const rs = duplicateFileChecks([scan(1, [...many, 'only-1']), scan(0, [...many, 'f0']), scan(2, ['f0'])]);
    assert.equal(rs.length, 11);
    assert.ok(rs.every((r) => r.severity === 'info' && r.check === 'duplicate-file'));
    assert.equal(rs[0]?.message, 'File "f0" appears in layers 0, 1, 2');
    assert.equal(rs[10]?.message, '... and 3 more duplicate files');
  });
  test('rootfsPath strips ./ and /', () => {
    assert.equal(rootfsPath('./etc/hosts'), 'etc/hosts');
    assert.equal(rootfsPath('/./etc'), 'etc');
    assert.equal(rootfsPath('etc'), 'etc');
  });
});

describe('sourceFailure', () => {
  test('classified by the error', () => {
    assert.deepEqual(ids([sourceFailure(digestError('layer 2 (x) has diff_id sha256:a, but the config says sha256:b'))]), ['error:diff-id']);
    assert.deepEqual(ids([sourceFailure(digestError('config c.json has digest a, but its name says b'))]), ['error:config-digest']);
    assert.deepEqual(ids([sourceFailure(digestError('blob x has digest a'))]), ['error:blob-digest']);
    assert.deepEqual(ids([sourceFailure(inputError('the archive is truncated'))]), ['error:source']);
    assert.deepEqual(ids([sourceFailure('weird')]), ['error:source']);
  });
});

describe('CheckRun and the report formats', () => {
  test('full mode: metadata, config blob, layers by index whatever the arrival order, duplicates, failure', () => {
    const config = configOf({ diffIds: 3 });
    const run = new CheckRun('full');
    run.addConfig(config, { digest: config.digest, size: config.raw.length });
    const scan = (index: number, files: string[]): LayerScan => ({ index, expectedDiffId: d(index + 1), computedDiffId: d(index + 1), size: 1, entryResults: [], regularFiles: files });
    run.addLayer(scan(2, ['a']));
    run.addSkipped(config.layers[1] as LayerDescriptor, 'duplicate');
    run.addLayer(scan(0, ['a']));
    run.addFailure(inputError('boom'));
    const report = run.report();
    assert.deepEqual(ids(report.results), [
      'info:rootfs-type',
      'info:layer-count',
      'info:history-count',
      'info:oci-media-type',
      'info:config-digest',
      'info:diff-id',
      'info:diff-id',
      'info:diff-id',
      'info:duplicate-file',
      'error:source',
    ]);
    assert.deepEqual(
      report.results.filter((r) => r.check === 'diff-id').map((r) => r.message.slice(0, 7)),
      ['Layer 0', 'Layer 1', 'Layer 2'],
    );
    assert.equal(report.errors, 1);
    assert.equal(report.warnings, 0);
    assert.equal(report.image, 'docker.io/library/app');
    assert.equal(report.mode, 'full');
  });

  test('fast mode ignores layer facts', () => {
    const run = new CheckRun('fast');
    run.addConfig(configOf());
    assert.deepEqual(ids(run.report().results), ['info:rootfs-type', 'info:layer-count', 'info:history-count', 'info:oci-media-type']);
  });

  test('text: sections by severity, then the Check complete line', () => {
    const report = {
      image: 'a',
      tag: 'b',
      mode: 'full' as const,
      errors: 1,
      warnings: 1,
      results: [
        { severity: 'info' as const, check: 'diff-id', message: 'Layer 0 diff_id verified' },
        { severity: 'error' as const, check: 'tar-timestamp', message: 'Layer 0: negative timestamp on x (mtime=-1)' },
        { severity: 'warning' as const, check: 'tar-permissions', message: 'Layer 0: y has setuid/setgid with world-writable (mode=4777)' },
      ],
    };
    assert.equal(
      formatCheckText(report),
      [
        'Errors:',
        '  [tar-timestamp] Layer 0: negative timestamp on x (mtime=-1)',
        '',
        'Warnings:',
        '  [tar-permissions] Layer 0: y has setuid/setgid with world-writable (mode=4777)',
        '',
        'Info:',
        '  [diff-id] Layer 0 diff_id verified',
        '',
        'Check complete (full): 1 error(s), 1 warning(s)',
        '',
      ].join('\n'),
    );
    assert.equal(formatCheckText({ ...report, mode: 'fast', errors: 0, warnings: 0, results: [] }), 'Check complete (fast (metadata only)): 0 error(s), 0 warning(s)\n');
    assert.deepEqual(Object.keys(checkReportJson(report) as object), ['image', 'tag', 'mode', 'errors', 'warnings', 'results']);
  });
});

// ------------------------------------------------------------ scanLayer (shell)

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tarBytes(entries: { name: string; data?: string; mode?: number; type?: 'file' | 'directory'; pax?: Record<string, string> }[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name: e.name, type: e.type ?? 'file', mode: e.mode ?? 0o644, mtime: new Date(0), ...(e.pax ? { pax: e.pax } : {}) }, e.data ?? '', (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

describe('scanLayer', () => {
  async function scanBytes(bytes: Buffer, diffId?: Digest): Promise<LayerScan> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'occystrap-scan-'));
    dirs.push(dir);
    const file = path.join(dir, 'layer.tar');
    await writeFile(file, bytes);
    const real = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
    const layer: LayerDescriptor = { index: 4, sourceId: 'x', diffId: diffId ?? real, mediaType: OCI_LAYER };
    return scanLayer({ id: 1 as never, path: file }, layer, new AbortController().signal);
  }

  test('hashes every byte and collects findings and regular files', async () => {
    const bytes = await tarBytes([
      { name: 'etc/', type: 'directory' },
      { name: './etc/passwd', data: 'root:x:0:0' },
      { name: 'etc/.wh.shadow', data: 'oops' },
      { name: 'usr/bin/su', mode: 0o4777, data: 'ELF' },
      { name: 'ancient', pax: { mtime: '-10' } },
    ]);
    const scan = await scanBytes(bytes);
    assert.equal(scan.size, bytes.length);
    assert.equal(scan.computedDiffId, scan.expectedDiffId);
    assert.equal(scan.tarError, undefined);
    assert.deepEqual(ids(scan.entryResults), ['warning:whiteout-size', 'warning:tar-permissions', 'error:tar-timestamp']);
    assert.deepEqual(scan.regularFiles, ['etc/passwd', 'etc/.wh.shadow', 'usr/bin/su', 'ancient']);
  });

  test('a file that is not a tar is still hashed to its end', async () => {
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 17, 0x41);
    const scan = await scanBytes(bytes, d(1));
    assert.equal(scan.size, bytes.length);
    assert.equal(scan.computedDiffId, `sha256:${createHash('sha256').update(bytes).digest('hex')}`);
    assert.ok(scan.tarError);
    assert.deepEqual(ids(layerChecks(scan)), ['error:diff-id', 'error:tar-format']);
  });

  test('a truncated tar: tar-format error, full-length hash', async () => {
    const full = await tarBytes([{ name: 'big', data: 'z'.repeat(100_000) }]);
    const bytes = full.subarray(0, 50_000);
    const scan = await scanBytes(bytes);
    assert.equal(scan.size, 50_000);
    assert.equal(scan.computedDiffId, scan.expectedDiffId);
    assert.match(scan.tarError ?? '', /truncated/);
  });
});
