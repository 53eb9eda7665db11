// Builds small docker-save archives inside a test: layers, a config, manifest.json and
// any extra entries (links, duplicates, junk), in the order the test gives.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as tarStream from 'tar-stream';

export interface ArchiveEntry {
  readonly name: string;
  readonly type?: 'file' | 'symlink' | 'link' | 'directory';
  readonly data?: Buffer;
  readonly linkname?: string;
}

export const sha256Hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A tar (as bytes) of the given entries, with the end marker tar-stream writes. */
export async function tarBytes(entries: readonly ArchiveEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = { name: e.name, type, mode: type === 'directory' ? 0o755 : 0o644, mtime: new Date(0), uid: 0, gid: 0, ...(e.linkname !== undefined ? { linkname: e.linkname } : {}) };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (type === 'file') pack.entry({ ...header, size: (e.data ?? Buffer.alloc(0)).length }, e.data ?? Buffer.alloc(0), cb);
      else pack.entry({ ...header, size: 0 }, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export interface TestImage {
  /** Layer tars, in manifest order. */
  readonly layers: readonly Buffer[];
  readonly diffIds: readonly string[];
  readonly config: Buffer;
  readonly configDigest: string;
  readonly configName: string;
}

/** An image of `count` small layers, each a tar of one file, and its config. */
export async function makeImage(count: number, seed = 'x'): Promise<TestImage> {
  const layers: Buffer[] = [];
  for (let i = 0; i < count; i++) layers.push(await tarBytes([{ name: `file-${seed}-${i}.txt`, data: Buffer.from(`layer ${i} of ${seed}\n`) }]));
  const diffIds = layers.map((l) => `sha256:${sha256Hex(l)}`);
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/true'] }, rootfs: { type: 'layers', diff_ids: diffIds }, history: diffIds.map((_, i) => ({ created_by: `layer ${i}` })) }),
  );
  const hex = sha256Hex(config);
  return { layers, diffIds, config, configDigest: `sha256:${hex}`, configName: `${hex}.json` };
}

export function manifestBytes(entries: readonly { Config: string; Layers: readonly string[]; RepoTags?: readonly string[] | null }[]): Buffer {
  return Buffer.from(JSON.stringify(entries));
}

export async function writeArchive(file: string, entries: readonly ArchiveEntry[]): Promise<Buffer> {
  const bytes = await tarBytes(entries);
  writeFileSync(file, bytes);
  return bytes;
}

/** Write a docker-save archive of one image (`repoTag`) whose one layer is the tar `layer`. */
export async function writeOneLayerImage(file: string, layer: Buffer, repoTag: string): Promise<void> {
  const diffId = `sha256:${sha256Hex(layer)}`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffId] }, history: [{ created_by: 'x' }] }));
  const configName = `${sha256Hex(config)}.json`;
  await writeArchive(file, [
    { name: configName, data: config },
    { name: 'layer/layer.tar', data: layer },
    { name: 'manifest.json', data: manifestBytes([{ Config: configName, Layers: ['layer/layer.tar'], RepoTags: [repoTag] }]) },
  ]);
}
