// Helpers for the registry integration tests (test/integration/registry-*.test.ts):
// an isolated environment for the CLI (no docker/podman credentials of the
// machine leak in), a private --temp-dir per run, and checks of what a
// registry:// -> dir:// or tar:// run produced.
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { assertOneErrorLine, cleanEnv, errorLines, hexOf, listDir, occystrap } from '../integration/cli-helpers.js';
import { sha256File, tmpDir, type RunResult } from '../integration/fixtures.js';

export interface Workspace {
  base: string;
  /** The private --temp-dir of this test (must be empty after every run). */
  temp: string;
  /** An empty HOME / DOCKER_CONFIG / XDG_RUNTIME_DIR for the CLI. */
  home: string;
  /** Path for an output under base. */
  out(name: string): string;
}

export async function workspace(name: string): Promise<Workspace> {
  const base = await tmpDir(`reg-${name}`);
  const home = path.join(base, 'home');
  await mkdir(home, { recursive: true });
  return { base, temp: path.join(base, 'tmp'), home, out: (n) => path.join(base, n) };
}

/**
 * cleanEnv() plus a HOME, DOCKER_CONFIG, XDG_RUNTIME_DIR and REGISTRY_AUTH_FILE
 * that hold nothing, so only what a test sets up can give credentials.
 */
export function isolatedEnv(ws: Workspace, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return cleanEnv({
    HOME: ws.home,
    DOCKER_CONFIG: path.join(ws.home, '.docker'),
    XDG_RUNTIME_DIR: path.join(ws.home, 'run'),
    REGISTRY_AUTH_FILE: path.join(ws.home, 'no-auth.json'),
    ...extra,
  });
}

export interface CliOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** `occystrap --temp-dir <ws.temp> ARGS...` in the isolated environment. */
export function cli(ws: Workspace, args: readonly string[], options: CliOptions = {}): Promise<RunResult> {
  return occystrap(['--temp-dir', ws.temp, ...args], { env: isolatedEnv(ws, options.env), timeoutMs: options.timeoutMs ?? 60_000 });
}

/** The --temp-dir is empty (the CLI may create it; its run dir must be gone). */
export function assertTempEmpty(ws: Workspace): void {
  assert.deepEqual(listDir(ws.temp), [], `${ws.temp} must be empty after the run`);
}

/** Exit 0, temp dir empty; returns the run for more checks. */
export function assertOk(r: RunResult, ws: Workspace, what = 'occystrap'): RunResult {
  assert.equal(r.code, 0, `${what} exit status; stderr:\n${r.stderr}`);
  assert.deepEqual(errorLines(r.stderr), [], 'no error lines');
  assertTempEmpty(ws);
  return r;
}

/** Exit 1 with exactly one `occystrap: error:` line (returned), temp dir empty. */
export function assertFailsOneLine(r: RunResult, ws: Workspace, status = 1): string {
  const line = assertOneErrorLine(r, status);
  assertTempEmpty(ws);
  return line;
}

export interface StoreExpectation {
  configDigest: string;
  diffIds: readonly string[];
  /** undefined: the image is stored untagged (pulled by digest). */
  repoTag: string | undefined;
}

/** A dir:// store holds the image: manifest, config bytes, each layer hashing to its diff_id. */
export async function assertDirStore(store: string, expected: StoreExpectation): Promise<void> {
  const manifest = JSON.parse(readFileSync(path.join(store, 'manifest.json'), 'utf8')) as unknown;
  assert.deepEqual(manifest, [
    {
      Config: `${hexOf(expected.configDigest)}.json`,
      Layers: expected.diffIds.map((d) => `${hexOf(d)}/layer.tar`),
      RepoTags: expected.repoTag === undefined ? [] : [expected.repoTag],
    },
  ]);
  assert.equal(await sha256File(path.join(store, `${hexOf(expected.configDigest)}.json`)), expected.configDigest, 'config bytes');
  for (const diffId of new Set(expected.diffIds)) {
    assert.equal(await sha256File(path.join(store, hexOf(diffId), 'layer.tar')), diffId, `layer ${diffId}`);
  }
  const wanted = new Set([...expected.diffIds.map(hexOf), `${hexOf(expected.configDigest)}.json`, 'manifest.json', 'catalog.json']);
  assert.deepEqual(
    listDir(store).filter((n) => !wanted.has(n)),
    [],
    'nothing else in the store',
  );
}

/** Parses the JSON object `-O json` prints (one line for process, indented for info). */
export function stdoutJson<T = Record<string, unknown>>(r: RunResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch (e) {
    throw new Error(`stdout is not one JSON document (${(e as Error).message}): ${JSON.stringify(r.stdout)}`);
  }
}

/** Summary fields the registry input adds to `-O json`. */
export interface RegistrySummary {
  destination: string;
  layers: number;
  layersSkipped: number;
  bytes: number;
  images: number;
  retries: number;
  rateLimited: number;
  [k: string]: unknown;
}

/** Writes $DOCKER_CONFIG/config.json. */
export async function writeDockerConfig(ws: Workspace, config: unknown): Promise<void> {
  const dir = path.join(ws.home, '.docker');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2), { mode: 0o600 });
}

/**
 * A fake `docker-credential-<name>` in <ws.home>/bin: for `get` it logs the
 * server it was asked about to <ws.home>/helper.log and prints the secret for
 * `host` (exit 1 "credentials not found" for any other server).
 * Returns the bin dir (put it first on PATH) and the log path.
 */
export async function fakeCredentialHelper(ws: Workspace, name: string, host: string, username: string, secret: string): Promise<{ bin: string; log: string }> {
  const bin = path.join(ws.home, 'bin');
  const log = path.join(ws.home, 'helper.log');
  await mkdir(bin, { recursive: true });
  const json = JSON.stringify({ ServerURL: host, Username: username, Secret: secret });
  const script = [
    '#!/bin/sh',
    `log=${shellQuote(log)}`,
    'server=$(cat)',
    'printf "%s %s\\n" "$1" "$server" >>"$log"',
    '[ "$1" = get ] || exit 0',
    `case "$server" in ${shellQuote(host)}|http://${shellQuote(host)}|https://${shellQuote(host)}) ;; *) echo "credentials not found in native keychain"; exit 1 ;; esac`,
    `printf '%s\\n' ${shellQuote(json)}`,
    '',
  ].join('\n');
  const file = path.join(bin, `docker-credential-${name}`);
  await writeFile(file, script);
  await chmod(file, 0o755);
  return { bin, log };
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Lines of a file, [] when missing. */
export function fileLines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [];
}
