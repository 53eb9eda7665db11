// Helpers for the integration tests that run the real occystrap CLI as a
// child process (node bin/occystrap.js ...). No side effects on import.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tarStream from 'tar-stream';
import { repoRoot, run, type RunOptions, type RunResult } from './fixtures.js';

/** bin/occystrap.js (runs the compiled dist/src). */
export const cliPath: string = path.join(repoRoot, 'bin', 'occystrap.js');

/**
 * The test process's environment without any OCCYSTRAP_* setting (except
 * OCCYSTRAP_FIXTURES), so a developer's shell cannot change what the CLI does;
 * `extra` is added on top.
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('OCCYSTRAP_') && k !== 'OCCYSTRAP_FIXTURES') continue;
    if (k === 'NO_COLOR' || k === 'FORCE_COLOR') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** Runs `node bin/occystrap.js ...args` to completion. */
export function occystrap(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(process.execPath, [cliPath, ...args], { timeoutMs: 60_000, ...opts, env: opts.env ?? cleanEnv() });
}

export interface Started {
  readonly child: ChildProcess;
  /** Resolves when the process has exited and its pipes are closed. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Starts the CLI without waiting for it (for signal tests). */
export function startOccystrap(args: readonly string[], env: NodeJS.ProcessEnv = cleanEnv()): Started {
  const child = spawn(process.execPath, [cliPath, ...args], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => err.push(c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
  return { child, exited };
}

/** stderr lines that report an error (`occystrap: error:` or `occystrap: usage error:`). */
export function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^occystrap: (usage )?error:/.test(l));
}

/**
 * Asserts that a run exited with `status` and printed exactly one error line (see
 * errorLines) on stderr; returns that line. `what` prefixes the assertion messages.
 */
export function assertOneErrorLine(r: RunResult, status: number, what = ''): string {
  const prefix = what === '' ? '' : `${what}: `;
  assert.equal(r.code, status, `${prefix}exit status; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  const lines = errorLines(r.stderr);
  assert.equal(lines.length, 1, `${prefix}exactly one error line:\n${r.stderr}`);
  return lines[0] as string;
}

/** The `Summary: ...` line(s) on stderr. */
export function summaryLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('Summary: '));
}

export interface JsonSummary {
  destination: string;
  layers: number;
  layersSkipped: number;
  bytes: number;
  copiedAcrossDevices: number;
  inflated?: number;
  compressed?: number;
  images: number;
  seconds: number;
  /** NAME:TAG of the image carried. */
  image: string | null;
  source: string;
  written: number;
  downloaded: number;
  rate: number;
}

/** Parses the single JSON line `-O json` prints on stdout. */
export function jsonSummary(stdout: string): JsonSummary {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== 1) throw new Error(`expected one JSON line on stdout, got ${lines.length}: ${JSON.stringify(stdout)}`);
  return JSON.parse(lines[0] as string) as JsonSummary;
}

/** Entries of a directory, sorted ([] when it does not exist). */
export function listDir(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** Temp files the CLI leaves beside a target when something goes wrong. */
export function strayTempFiles(dir: string): string[] {
  return listDir(dir).filter((n) => /\.occystrap-/.test(n));
}

/** Run directories (`occystrap-XXXXXX`) under a --temp-dir. */
export function runDirs(tempDir: string): string[] {
  return listDir(tempDir).filter((n) => n.startsWith('occystrap-'));
}

export function hexOf(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new Error(`not a sha256 digest: ${digest}`);
  return m[1] as string;
}

/** Splits NAME:TAG at the last colon after the last slash (default tag latest). */
export function splitRepoTag(repoTag: string): { name: string; tag: string } {
  const slash = repoTag.lastIndexOf('/');
  const colon = repoTag.lastIndexOf(':');
  return colon > slash ? { name: repoTag.slice(0, colon), tag: repoTag.slice(colon + 1) } : { name: repoTag, tag: 'latest' };
}

/** inode and mtime of a file, to show it was not rewritten. */
export function identity(file: string): { ino: number; mtimeMs: number; size: number } {
  const st = statSync(file);
  return { ino: st.ino, mtimeMs: st.mtimeMs, size: st.size };
}

/** Polls until `probe` returns a value other than undefined, or throws after timeoutMs. */
export async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 30_000, intervalMs = 5): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// ----------------------------------------------------- a big docker-save archive

export interface BigArchive {
  file: string;
  repoTag: string;
  diffId: string;
  configDigest: string;
  /** Bytes of the (uncompressed) layer tar. */
  layerSize: number;
  /** Size of the archive file. */
  archiveSize: number;
}

/**
 * The JSON config of a linux/amd64 image created 2024-01-01 that runs `cmd`: rootfs
 * `diffIds`, and one history entry per layer, created by `createdBy(i)`.
 */
export function imageConfig(diffIds: readonly string[], cmd: string, createdBy: (i: number) => string): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-01T00:00:00Z',
      config: { Cmd: [cmd] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: diffIds.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: createdBy(i) })),
    }),
  );
}

/** A reusable 1 MiB block of pseudo-random bytes (xorshift32, fixed seed). */
function noiseBlock(): Buffer {
  const buf = Buffer.alloc(1 << 20);
  let x = 0x9e3779b9;
  for (let i = 0; i < buf.length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf.writeUInt32LE(x, i);
  }
  return buf;
}

/** The layer: a tar holding one file `big.bin` of `dataBytes` pseudo-random bytes. */
function layerStream(dataBytes: number, block: Buffer): Readable {
  const pack = tarStream.pack();
  const epoch = new Date(0);
  const entry = pack.entry({ name: 'big.bin', size: dataBytes, mode: 0o644, mtime: epoch, uid: 0, gid: 0 });
  void (async () => {
    let left = dataBytes;
    while (left > 0) {
      const n = Math.min(left, block.length);
      if (!entry.write(n === block.length ? block : block.subarray(0, n))) await once(entry as unknown as NodeJS.EventEmitter, 'drain');
      left -= n;
    }
    entry.end(undefined);
    pack.finalize();
  })().catch((e: unknown) => pack.destroy(e as Error));
  return Readable.from(pack as unknown as AsyncIterable<Buffer>);
}

/**
 * Writes a Docker 1.10..24-style docker-save archive (manifest.json and the
 * config first, then `<id>/layer.tar`) with one layer holding a file of
 * `dataBytes` pseudo-random bytes. Streams: memory stays small.
 */
export async function makeBigArchive(file: string, dataBytes: number, repoTag = 'big:v1'): Promise<BigArchive> {
  const block = noiseBlock();
  // Pass 1: the layer's diff_id and size.
  const hash = createHash('sha256');
  let layerSize = 0;
  for await (const chunk of layerStream(dataBytes, block)) {
    hash.update(chunk as Buffer);
    layerSize += (chunk as Buffer).length;
  }
  const diffId = `sha256:${hash.digest('hex')}`;
  const config = imageConfig([diffId], '/bin/true', () => 'integration test: big layer');
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const layerId = createHash('sha256').update(`layer-id:${diffId}`).digest('hex');
  const configName = `${hexOf(configDigest)}.json`;
  const layerName = `${layerId}/layer.tar`;
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: [layerName] }]));

  // Pass 2: the archive.
  const outer = tarStream.pack();
  const epoch = new Date(0);
  const writing = pipeline(Readable.from(outer as unknown as AsyncIterable<Buffer>), createWriteStream(file));
  const add = (name: string, data: Buffer) =>
    new Promise<void>((resolve, reject) => outer.entry({ name, size: data.length, mode: 0o644, mtime: epoch }, data, (e) => (e ? reject(e) : resolve())));
  await add('manifest.json', manifest);
  await add(configName, config);
  await new Promise<void>((resolve, reject) => {
    outer.entry({ name: `${layerId}/`, type: 'directory', mode: 0o755, mtime: epoch }, (e) => (e ? reject(e) : resolve()));
  });
  await new Promise<void>((resolve, reject) => {
    const sink = outer.entry({ name: layerName, size: layerSize, mode: 0o644, mtime: epoch }, (e) => (e ? reject(e) : resolve()));
    const source = layerStream(dataBytes, block);
    source.on('error', reject);
    void (async () => {
      for await (const chunk of source) {
        if (!sink.write(chunk as Buffer)) await once(sink as unknown as NodeJS.EventEmitter, 'drain');
      }
      sink.end(undefined);
    })().catch(reject);
  });
  outer.finalize();
  await writing;
  return { file, repoTag, diffId, configDigest, layerSize, archiveSize: statSync(file).size };
}
