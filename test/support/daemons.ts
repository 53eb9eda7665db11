/**
 * Real Docker Engine API daemons for the tests, each private to the test process: Debian's
 * dockerd (its own data root, no iptables, no bridge, the vfs driver) and Podman's
 * Docker-compatible service (through test/fixtures/podman.sh, its own store). Both need
 * root, which CI has.
 *
 * @module
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface Daemon {
  readonly kind: 'docker' | 'podman';
  readonly socket: string;
  /** Run the daemon's CLI against it (`docker -H …` or the isolated podman); throws on failure. */
  cli(args: readonly string[]): string;
  stop(): Promise<void>;
}

/** GET /_ping over `socket`: true once it answers 200. */
export function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/_ping', method: 'GET', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

async function waitForPing(socket: string, child: ChildProcess, what: string, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode}) before answering: ${log().slice(-2000)}`);
    if (await ping(socket)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not answer on ${socket} within 60 s: ${log().slice(-2000)}`);
}

function run(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: env ?? process.env, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

export interface DockerdOptions {
  /** Where its socket and data live (default: a new temp directory, removed on stop). */
  readonly dir?: string;
  /** Mount a tmpfs of this size (e.g. `12g`) for the data root, unmounted on stop (the bench: no disk, no deleted inodes). */
  readonly dataTmpfsSize?: string;
  /** The storage driver (default `vfs`, which works anywhere; `overlay2` needs root and an overlay-capable data root). */
  readonly storageDriver?: 'vfs' | 'overlay2';
}

/** Debian's dockerd on a private socket and data root. */
export async function startDockerd(options: DockerdOptions = {}): Promise<Daemon & { readonly version: string }> {
  const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), 'occystrap-dockerd-'));
  const data = path.join(dir, 'data');
  mkdirSync(data, { recursive: true });
  if (options.dataTmpfsSize !== undefined) {
    spawnSync('umount', [data]);
    run('mount', ['-t', 'tmpfs', '-o', `size=${options.dataTmpfsSize}`, 'tmpfs', data]);
  }
  const socket = path.join(dir, 'docker.sock');
  rmSync(socket, { force: true });
  let log = '';
  const child = spawn(
    'dockerd',
    ['--iptables=false', '--ip6tables=false', '--bridge=none', `--storage-driver=${options.storageDriver ?? 'vfs'}`, '-H', `unix://${socket}`, '--data-root', data, '--exec-root', path.join(dir, 'exec'), '--pidfile', path.join(dir, 'docker.pid')],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (log += c.toString()));
  await waitForPing(socket, child, 'dockerd', () => log);
  const cli = (args: readonly string[]) => run('docker', ['-H', `unix://${socket}`, ...args]);
  return {
    kind: 'docker',
    socket,
    version: (JSON.parse(cli(['version', '--format', '{{json .Server}}'])) as { Version: string }).Version,
    cli,
    async stop() {
      await stopChild(child);
      if (options.dataTmpfsSize !== undefined) spawnSync('umount', [data]);
      if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `podman system service` on a private socket, over an isolated store (test/fixtures/podman.sh). */
export async function startPodmanService(): Promise<Daemon> {
  const dir = mkdtempSync(path.join(tmpdir(), 'occystrap-podman-'));
  const socket = path.join(dir, 'podman.sock');
  const env = { ...process.env, OCCYSTRAP_PODMAN_STATE: path.join(dir, 'state') };
  const script = path.join(repo, 'test', 'fixtures', 'podman.sh');
  let log = '';
  const child = spawn('bash', [script, 'system', 'service', '--time=0', `unix://${socket}`], { stdio: ['ignore', 'pipe', 'pipe'], env });
  child.stdout?.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (log += c.toString()));
  await waitForPing(socket, child, 'podman system service', () => log);
  return {
    kind: 'podman',
    socket,
    cli: (args) => run('bash', [script, ...args], env),
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
