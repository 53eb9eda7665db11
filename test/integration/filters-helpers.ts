// Helpers for the content-filter integration tests (filters-*.test.ts): reading what the
// CLI wrote (docker-save archives and dir:// stores) with tools other than our own code.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as tarStream from 'tar-stream';
import { fixture, fixturePath } from './fixtures.js';

export const FIXTURE = 'filters-sample.tar';
export const tarEnv = { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8' };
export const isRoot = process.getuid?.() === 0;

export interface FilterFacts {
  repoTag: string;
  bigId: number;
  capability: { path: string; caps: string } | null;
  layer0: {
    capability: string;
    bigId: string;
    gone: string;
    kept: string;
    hardlinkTarget: string;
    hardlink: string;
    symlink: string;
    longPath: string;
    veryLongPath: string;
    longBasename: string;
    longLink: string;
    nonAscii: string;
    exclude: Record<'pyc' | 'pycSibling' | 'gitHead' | 'gitConfig' | 'gitDir' | 'cacheFile' | 'readme', string>;
    mtimes: Record<string, string>;
  };
  layer1: Record<'whiteout' | 'opaque' | 'gnuLongName' | 'gnuLongLink' | 'gnuBigId' | 'nonAscii', string>;
  repeated: { index: number; sameAs: number };
  empty: { index: number };
}

export function filterFacts(): FilterFacts {
  return fixture(FIXTURE)['filterFacts'] as FilterFacts;
}

export function fixtureFile(): string {
  return fixturePath(FIXTURE);
}

export const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Every member of a (small) tar file, by name. */
export async function tarMembers(bytes: Uint8Array): Promise<Map<string, { header: tarStream.Header; data: Buffer }>> {
  const extract = tarStream.extract();
  const out = new Map<string, { header: tarStream.Header; data: Buffer }>();
  const done = (async () => {
    for await (const e of extract) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      out.set(e.header.name, { header: e.header, data: Buffer.concat(chunks) });
    }
  })();
  extract.end(Buffer.from(bytes));
  await done;
  return out;
}

export interface SavedImage {
  readonly config: { rootfs: { diff_ids: string[] }; history?: unknown[]; [k: string]: unknown };
  readonly configBytes: Buffer;
  readonly configName: string;
  readonly repoTags: string[];
  /** Layer tars in manifest order. */
  readonly layers: Buffer[];
  readonly layerNames: string[];
}

/** The single image of a docker-save archive. */
export async function readSaved(file: string): Promise<SavedImage> {
  const members = await tarMembers(readFileSync(file));
  const manifest = JSON.parse((members.get('manifest.json')?.data as Buffer).toString('utf8')) as { Config: string; RepoTags: string[]; Layers: string[] }[];
  if (manifest.length !== 1) throw new Error(`${file}: ${manifest.length} images`);
  const m = manifest[0] as { Config: string; RepoTags: string[]; Layers: string[] };
  const resolve = (name: string): Buffer => {
    const e = members.get(name);
    if (!e) throw new Error(`${file}: no member ${name}`);
    if (e.header.type === 'symlink') return resolve(path.posix.normalize(path.posix.join(path.posix.dirname(name), e.header.linkname ?? '')));
    return e.data;
  };
  const configBytes = resolve(m.Config);
  return {
    config: JSON.parse(configBytes.toString('utf8')) as SavedImage['config'],
    configBytes,
    configName: m.Config,
    repoTags: m.RepoTags,
    layers: m.Layers.map(resolve),
    layerNames: m.Layers,
  };
}

/** `tar --xattrs -tvv --full-time` of a layer (GNU tar, numeric owners, literal names). */
export function gnuListing(layer: Uint8Array, scratch: string): string[] {
  const file = path.join(scratch, `listing-${createHash('sha256').update(layer).digest('hex').slice(0, 12)}.tar`);
  writeFileSync(file, layer);
  return execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--full-time', '--quoting-style=literal', '-tvvf', file], { env: tarEnv, encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
}

export interface ListedEntry {
  readonly mode: string;
  readonly owner: string;
  readonly date: string;
  readonly name: string;
  /** `x: N key` lines GNU tar prints under the entry (xattrs). */
  readonly xattrs: string[];
}

/** Parse `gnuListing` lines: mode, owner, size, date, time, name (links keep their arrow). */
export function parseListing(lines: readonly string[]): ListedEntry[] {
  const out: { mode: string; owner: string; date: string; name: string; xattrs: string[] }[] = [];
  for (const line of lines) {
    const x = /^\s+x:\s+\d+\s+(.*)$/.exec(line);
    if (x) {
      out.at(-1)?.xattrs.push(x[1] as string);
      continue;
    }
    const m = /^(\S+)\s+(\S+)\s+\S+\s+(\S+ \S+)\s(.*)$/.exec(line);
    if (!m) throw new Error(`cannot parse tar listing line ${JSON.stringify(line)}`);
    const name = (m[4] as string).replace(/ (->|link to) .*$/, '');
    out.push({ mode: m[1] as string, owner: m[2] as string, date: m[3] as string, name, xattrs: [] });
  }
  return out;
}

/** Names in a layer, as tar-stream reads them (directory names without their trailing slash). */
export async function layerNames(layer: Uint8Array): Promise<string[]> {
  return [...(await tarMembers(layer)).keys()].map((n) => n.replace(/\/$/, ''));
}
