// The header walk (src/shell/inputs/tar-index.ts) and what the docker-save input does
// with it: manifest.json and the config at the end of the archive are read first, so the
// config and each layer are delivered while later layers are still being read; the walk
// gives up on what it does not handle plainly, and the sequential read still has the last
// word.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import type { ImageElement } from '../../src/core/element.js';
import type { OwnershipEffect } from '../../src/core/ownership.js';
import { encodeGlobalHeader } from '../../src/core/tar/header.js';
import { DockerSaveInput } from '../../src/shell/inputs/docker-save.js';
import { indexTarArchive, type Location } from '../../src/shell/inputs/tar-index.js';
import { TempScope } from '../../src/shell/scope.js';
import { gnuTar } from '../support/tar.js';
import { type ArchiveEntry, makeImage, manifestBytes, tarBytes, writeArchive } from './archive-builder.js';

const root = mkdtempSync(path.join(tmpdir(), 'occystrap-early-'));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const scratch = (name: string) => path.join(root, `${counter++}-${name}`);

async function indexOf(bytes: Uint8Array): Promise<Map<string, Location> | undefined> {
  const file = scratch('a.tar');
  writeFileSync(file, bytes);
  const handle = await open(file, 'r');
  try {
    return await indexTarArchive(handle);
  } finally {
    await handle.close();
  }
}

const contentAt = (bytes: Uint8Array, at: Location) => Buffer.from(bytes.subarray(at.offset, at.offset + at.size)).toString();

test('the walk finds every regular file where its data is: short, ustar-prefixed and PAX names; links and directories are not files', async () => {
  const long = `${'d'.repeat(120)}/${'n'.repeat(90)}.txt`; // over 100 bytes: a prefix
  const longer = `${'x'.repeat(200)}.txt`; // no prefix split: a PAX path
  const entries: ArchiveEntry[] = [
    { name: 'dir', type: 'directory' },
    { name: 'a.json', data: Buffer.from('first') },
    { name: long, data: Buffer.from('prefixed') },
    { name: longer, data: Buffer.from('pax named'.repeat(100)) },
    { name: 'link', type: 'symlink', linkname: 'a.json' },
    { name: 'manifest.json', data: Buffer.from('[]') },
  ];
  const bytes = await tarBytes(entries);
  const index = await indexOf(bytes);
  assert.ok(index);
  assert.deepEqual([...index.keys()].sort(), ['a.json', long, longer, 'manifest.json'].sort());
  assert.equal(contentAt(bytes, index.get('a.json')!), 'first');
  assert.equal(contentAt(bytes, index.get(long)!), 'prefixed');
  assert.equal(contentAt(bytes, index.get(longer)!), 'pax named'.repeat(100));
  assert.equal(contentAt(bytes, index.get('manifest.json')!), '[]');
});

test("the walk reads GNU tar's own long names ('L' entries)", async () => {
  const dir = scratch('gnu');
  const name = 'y'.repeat(150);
  mkdirSync(path.join(dir, 'tree'), { recursive: true });
  writeFileSync(path.join(dir, 'tree', name), 'gnu long');
  const bytes = gnuTar(dir, 'gnu');
  const index = await indexOf(bytes);
  assert.equal(contentAt(bytes, index!.get(`tree/${name}`)!), 'gnu long');
});

test('the walk leaves out a name two entries carry, and gives up on a global header, a bad checksum or a missing end', async () => {
  const dup = await indexOf(await tarBytes([{ name: 'c.json', data: Buffer.from('1') }, { name: 'c.json', data: Buffer.from('2') }, { name: 'other', data: Buffer.from('3') }]));
  assert.deepEqual([...dup!.keys()], ['other']);
  const plain = await tarBytes([{ name: 'manifest.json', data: Buffer.from('[]') }]);
  const global = Buffer.concat([Buffer.from(encodeGlobalHeader([['comment', 'x']])), plain]);
  assert.equal(await indexOf(global), undefined);
  const badSum = Buffer.from(plain);
  badSum[0] = 'M'.charCodeAt(0) + 1;
  assert.equal(await indexOf(badSum), undefined);
  assert.equal(await indexOf(plain.subarray(0, 512 + 512)), undefined);
});

test('a docker-save archive with manifest.json last: the config comes first, and each layer before the next one is read', async () => {
  const image = await makeImage(3, 'early');
  const file = scratch('early.tar');
  await writeArchive(file, [
    { name: image.configName, data: image.config },
    ...image.layers.map((data, i) => ({ name: `l${i}/layer.tar`, data })),
    { name: 'manifest.json', data: manifestBytes([{ Config: image.configName, RepoTags: ['early:1'], Layers: image.layers.map((_, i) => `l${i}/layer.tar`) }]) },
  ]);
  const log: string[] = [];
  const temp = scratch('scope');
  mkdirSync(temp);
  const scope = await TempScope.open({ parent: temp });
  const effects = {
    perform: <E extends OwnershipEffect>(effect: E) => {
      if (effect._tag === 'CreateTemp') log.push(`spool ${effect.purpose}`);
      return scope.perform(effect);
    },
  };
  const input = new DockerSaveInput({ path: file, selector: { _tag: 'First' } });
  const ctx = { effects, owner: 'input', signal: new AbortController().signal, wants: async () => ({ tar: true, blob: false }), parallelism: 1 };
  const elements: ImageElement[] = [];
  for await (const element of input.elements(ctx)) {
    elements.push(element);
    log.push(element._tag === 'Config' ? 'config' : `layer ${element.layer.index}`);
    if (element._tag === 'Layer') for (const f of element.payload._tag === 'Tar' ? [element.payload.tar.file] : []) await scope.perform({ _tag: 'Release', file: f, owner: 'input' });
  }
  await scope.close();
  assert.deepEqual(log, ['config', 'spool tar-l0', 'layer 0', 'spool tar-l1', 'layer 1', 'spool tar-l2', 'layer 2']);
});
