// Helpers for integration tests that use the fixtures built by
// test/fixtures/build.sh (see fixtures.json in the fixture directory).
//
// Importing this module has no side effects beyond registering a
// process-exit safety net for temporary directories.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

// ------------------------------------------------------------------ paths

/**
 * Repository root. Walks up from this file to the nearest package.json named
 * "occystrap", so it works both compiled (dist/test/integration/fixtures.js,
 * three levels down) and from source (test/integration/fixtures.ts).
 */
export const repoRoot: string = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));

function findRepoRoot(start: string): string {
  let dir = start;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        const parsed: unknown = JSON.parse(readFileSync(pkg, 'utf8'));
        if (typeof parsed === 'object' && parsed !== null && (parsed as { name?: unknown }).name === 'occystrap') {
          return dir;
        }
      } catch {
        // not our package.json; keep walking
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  // Fallback: compiled layout dist/test/integration/<file>.js
  return path.resolve(start, '..', '..', '..');
}

/** Fixture directory: $OCCYSTRAP_FIXTURES, else <repo>/.fixtures. */
export function fixturesDir(): string {
  const env = process.env['OCCYSTRAP_FIXTURES'];
  return path.resolve(env !== undefined && env !== '' ? env : path.join(repoRoot, '.fixtures'));
}

/** Absolute path of one fixture file (e.g. "skopeo-legacy.tar" or "oci"). */
export function fixturePath(name: string): string {
  return path.join(fixturesDir(), name);
}

/** test/fixtures/podman.sh: podman with a private, isolated store. */
export const podmanScript: string = path.join(repoRoot, 'test', 'fixtures', 'podman.sh');

// ---------------------------------------------------------- fixtures.json

export type FixtureFormat =
  /** Docker 1.10..24 / skopeo / podman docker-save (manifest.json + <cfg>.json + layer tars) */
  | 'docker-archive'
  /** Docker 25+ docker-save: OCI image layout (blobs/sha256/...) plus manifest.json */
  | 'docker-archive-oci'
  /** pre-Docker-1.10: repositories + <id>/json + <id>/layer.tar, no manifest.json */
  | 'docker-archive-v1'
  /** OCI image layout directory */
  | 'oci-layout'
  /** not an archive at all */
  | 'invalid';

export type FixtureDefect =
  | 'truncated'
  | 'missing-layer'
  | 'path-traversal-config'
  | 'path-traversal-layer'
  | 'digest-mismatch'
  | 'digest-syntax'
  | 'diffid-mismatch'
  | 'no-manifest-json'
  | 'not-a-tar';

export type LayerCompression = 'gzip' | 'zstd' | 'none';

export interface LayerFacts {
  /** Path of the layer inside the archive (or blobs/sha256/<hex> in an OCI layout). */
  path: string;
  /** sha256 of the stored (possibly compressed) bytes. */
  digest: string;
  size: number;
  compression: LayerCompression;
  /** docker-archive only: whether the manifest path is a symlink entry. */
  storedAs?: 'file' | 'symlink';
  /** oci-layout only. */
  mediaType?: string;
}

export interface ImageFacts {
  /** RepoTags exactly as written in manifest.json ([] for an OCI layout). */
  repoTags: string[];
  /** Number of entries in the manifest's Layers (duplicates counted). */
  layerCount: number;
  /** rootfs.diff_ids from the image config, "sha256:<hex>". */
  diffIds: string[];
  /** "sha256:<hex>" of the config bytes; null when the format has no config. */
  configDigest: string | null;
  configPath?: string;
  layers?: LayerFacts[];
  /** oci-layout only: org.opencontainers.image.ref.name */
  ref?: string;
  manifestDigest?: string;
}

export interface FixtureEntry {
  file: string;
  format: FixtureFormat;
  producer: string;
  /** false for the deliberately broken inputs (and the pre-1.10 layout). */
  valid: boolean;
  defect: FixtureDefect | null;
  description: string;
  /** Size and sha256 (hex) of the file; absent for the oci directory. */
  size?: number;
  sha256?: string;
  /** Facts of the first image (shortcuts for images[0]). For invalid
   *  fixtures these describe the image the archive would have carried. */
  repoTags: string[];
  layerCount: number;
  diffIds: string[];
  configDigest: string | null;
  images: ImageFacts[];
  /** Index of manifest.json among the tar entries (valid archives). */
  manifestJsonIndex?: number;
  entryCount?: number;
  hasOciLayout?: boolean;
  /** Fixture-specific extras (badPath, truncatedAt, multiFrameLayerIndex, ...). */
  [extra: string]: unknown;
}

export interface TarEntryFacts {
  name: string;
  type: string;
  mode: number;
  size: number;
  linkname?: string;
  /** hex sha256 of non-empty regular files */
  sha256?: string;
}

export interface SampleFacts {
  repoTag: string;
  layerCount: number;
  diffIds: string[];
  configDigest: string;
  repeatedDiffIds: string[];
  notable: {
    bigFile: { path: string; size: number; sha256: string };
    symlink: { path: string; target: string };
    hardlink: { path: string; target: string };
    nonAsciiName: string;
    longPath: string;
    whiteout: string;
  };
  config: Record<string, unknown>;
  /** Entries of each layer tar, in manifest order. */
  layers: TarEntryFacts[][];
}

export interface FixtureIndex {
  version: 1;
  note: string;
  tools: Record<string, string>;
  sample: SampleFacts;
  other: { repoTag: string; layerCount: number; diffIds: string[]; configDigest: string };
  fixtures: Record<string, FixtureEntry>;
}

let cachedIndex: { dir: string; index: FixtureIndex } | undefined;

/** Parsed <fixtures>/fixtures.json (cached per fixture directory). */
export function fixtureIndex(): FixtureIndex {
  const dir = fixturesDir();
  if (cachedIndex?.dir === dir) return cachedIndex.index;
  const file = path.join(dir, 'fixtures.json');
  if (!existsSync(file)) {
    throw new Error(`${file} not found: build the fixtures first with 'bash test/fixtures/build.sh'`);
  }
  const index = JSON.parse(readFileSync(file, 'utf8')) as FixtureIndex;
  if (index.version !== 1) throw new Error(`${file}: unsupported version ${String(index.version)}`);
  cachedIndex = { dir, index };
  return index;
}

/** One fixture's facts by file name; throws for unknown names. */
export function fixture(name: string): FixtureEntry {
  const entry = fixtureIndex().fixtures[name];
  if (entry === undefined) throw new Error(`unknown fixture ${name}`);
  return entry;
}

/** The valid docker-save archives of sample:v1, one per producer and layout. */
export const SAMPLE_ARCHIVES: readonly string[] = [
  'skopeo-legacy.tar',
  'podman-legacy.tar',
  'docker-classic.tar',
  'docker25-gzip.tar',
  'docker25-zstd.tar',
  'docker25-plain.tar',
  'docker25-manifest-first.tar',
];

/** Every valid docker-save archive build.sh makes from the OCI layout: the sample's, and the two-image one. */
export const VALID_ARCHIVES: readonly string[] = [...SAMPLE_ARCHIVES, 'podman-multi.tar'];

/** The broken inputs (each with exactly one defect), in the order the tests run them. */
export const BAD_ARCHIVES: readonly string[] = [
  'bad-truncated.tar',
  'bad-missing-layer.tar',
  'bad-dotdot-config.tar',
  'bad-dotdot-layer.tar',
  'bad-digest-mismatch.tar',
  'bad-digest-syntax.tar',
  'bad-digest-uppercase.tar',
  'bad-digest-short.tar',
  'bad-diffid-mismatch.tar',
  'legacy-repositories-only.tar',
  'bad-not-a-tar.tar',
];

// -------------------------------------------------------------- processes

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Uint8Array;
  timeoutMs?: number;
}

/**
 * Runs a command and collects its output. Never rejects for a non-zero exit
 * (check `code`); a command that cannot be started yields code 127.
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, [...args], {
      cwd: opts.cwd ?? repoRoot,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 120_000,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    let settled = false;
    const finish = (code: number, extra = ''): void => {
      if (settled) return;
      settled = true;
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + extra,
      });
    };
    child.on('error', (e) => finish(127, `${cmd}: ${e.message}\n`));
    child.on('close', (code, signal) => finish(code ?? (signal !== null ? 128 : 1), signal !== null ? `killed by ${signal}\n` : ''));
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input);
  });
}

/** podman through test/fixtures/podman.sh (private vfs store under the fixture dir). */
export function podman(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const env = { ...(opts.env ?? process.env), OCCYSTRAP_FIXTURES: fixturesDir() };
  return run('bash', [podmanScript, ...args], { ...opts, env });
}

export interface PodmanLoaded {
  /** The first image `podman load` named. */
  readonly ref: string;
  /** Its id and RootFS layers, as `podman image inspect` reports them. */
  readonly id: string;
  readonly layers: string[];
}

/**
 * `podman load -i archive` into a fresh private store and `podman image inspect` of the
 * first image it names, then `podman rmi` of that image and the store removed; asserts
 * that load, inspect and rmi succeed.
 */
export async function podmanLoadAndInspect(archive: string, opts: { timeoutMs?: number } = {}): Promise<PodmanLoaded> {
  const state = await tmpDir('podman-state');
  const env = { ...process.env, OCCYSTRAP_PODMAN_STATE: state };
  try {
    const load = await podman(['load', '-i', archive], { env, ...opts });
    assert.equal(load.code, 0, load.stderr);
    const m = /Loaded image(?:\(s\))?: (\S+)/.exec(load.stdout);
    assert.ok(m, `podman load names the image: ${load.stdout}`);
    const ref = (m[1] as string).split(',')[0] as string;
    try {
      const inspect = await podman(['image', 'inspect', '--format', '{{.Id}} {{json .RootFS.Layers}}', ref], { env });
      assert.equal(inspect.code, 0, inspect.stderr);
      const [id, layersJson] = inspect.stdout.trim().split(' ', 2) as [string, string];
      return { ref, id, layers: JSON.parse(layersJson) as string[] };
    } finally {
      const rmi = await podman(['rmi', ref], { env });
      assert.equal(rmi.code, 0, rmi.stderr);
    }
  } finally {
    await cleanupTmpDirs(state);
  }
}

/**
 * skopeo with `--insecure-policy` (everything the tests copy is local), so no
 * /etc/containers/policy.json is needed.
 */
export function skopeo(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run('skopeo', ['--insecure-policy', ...args], opts);
}

// ----------------------------------------------------------------- hashing

/** Streams a file through sha256; returns "sha256:<hex>" (diff_id style). */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return `sha256:${hash.digest('hex')}`;
}

// ------------------------------------------------------------ temp dirs

const tmpDirs = new Set<string>();

/** Creates a fresh directory under os.tmpdir(); removed by cleanupTmpDirs(). */
export async function tmpDir(prefix: string): Promise<string> {
  const safe = prefix.replace(/[^A-Za-z0-9._-]/g, '-');
  const dir = await mkdtemp(path.join(os.tmpdir(), `occystrap-${safe}-`));
  tmpDirs.add(dir);
  return dir;
}

/** Removes one directory made by tmpDir(), or all of them. */
export async function cleanupTmpDirs(dir?: string): Promise<void> {
  const targets = dir !== undefined ? [dir] : [...tmpDirs];
  for (const d of targets) {
    await rm(d, { recursive: true, force: true });
    tmpDirs.delete(d);
  }
}

/** Runs fn with a fresh temp dir and always removes it afterwards. */
export async function withTmpDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await tmpDir(prefix);
  try {
    return await fn(dir);
  } finally {
    await cleanupTmpDirs(dir);
  }
}

// Safety net for tests that forget to clean up (sync: 'exit' cannot await).
process.on('exit', () => {
  for (const d of tmpDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
});
