// The one starter of loopback docker-registry daemons, for the registry test harness
// (test/registry/harness.ts) and the benchmark (bench/registry.mjs). Plain JavaScript so
// that bench, which node runs straight from the tree, imports it as it stands; the test
// harness loads it by path at run time, typed by registry-daemon.d.mts beside it.
//
// The daemon runs under a small bash watchdog that kills it when the watchdog's stdin
// closes: on stop(), and whenever this process dies (even on SIGKILL). An 'exit' hook
// SIGKILLs whatever is still running, as a last resort.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

/*
 * bash watchdog: runs "$@" in the background with stdout folded into stderr, prints its
 * pid on stdout, and kills it (TERM, then KILL after 5 s) as soon as its own stdin reaches
 * EOF. Exits with the daemon's status.
 */
const WATCHDOG = `
exec 3<&0
"$@" </dev/null >&2 &
r=$!
echo "$r"
(
  while IFS= read -r _ <&3; do :; done
  kill -TERM "$r" 2>/dev/null || exit 0
  for _ in $(seq 50); do kill -0 "$r" 2>/dev/null || exit 0; sleep 0.1; done
  kill -KILL "$r" 2>/dev/null
) >/dev/null 2>&1 &
wait "$r"
`;

/** Daemon pids still running (SIGKILLed on exit as a last resort). */
const livePids = new Set();
process.on('exit', () => {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

const LOG_LIMIT = 2 << 20;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A free TCP port on 127.0.0.1 (bound then released; the caller binds it next). */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** GET url with a fresh connection; resolves status, headers and body (or undefined on a connection error). */
export function probe(url, headers = {}) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, headers, timeout: 2000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(undefined));
  });
}

/** Runs `cmd args` under the watchdog; resolves once the watchdog has printed the daemon's pid. */
export async function startDaemon(cmd, args) {
  const child = spawn('bash', ['-c', WATCHDOG, 'occystrap-watchdog', cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'], detached: false });
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s) => {
    log += s;
    if (log.length > LOG_LIMIT) log = log.slice(log.length - LOG_LIMIT / 2);
  });
  child.stdin.on('error', () => undefined);
  const exited = new Promise((resolve) => {
    child.on('error', () => resolve(127));
    child.on('exit', (code) => resolve(code));
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  const pid = await new Promise((resolve, reject) => {
    const onData = (s) => {
      out += s;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        child.stdout.off('data', onData);
        resolve(Number(out.slice(0, nl)));
      }
    };
    child.stdout.on('data', onData);
    void exited.then((code) => reject(new Error(`${cmd} did not start (exit ${String(code)}): ${log}`)));
  });
  livePids.add(pid);
  void exited.then(() => livePids.delete(pid));
  let stopping;
  return {
    pid,
    child,
    logs: () => log,
    exited,
    stop() {
      stopping ??= (async () => {
        child.stdin.end();
        const timer = setTimeout(() => {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
          child.kill('SIGKILL');
        }, 8000);
        await exited;
        clearTimeout(timer);
        livePids.delete(pid);
      })();
      return stopping;
    },
  };
}

/** Polls `url` until it answers one of `ready` statuses, the daemon dies, or 20 s pass. */
async function waitReady(url, daemon, ready) {
  let dead = false;
  void daemon.exited.then(() => {
    dead = true;
  });
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const r = await probe(url);
    if (r !== undefined && ready.includes(r.status)) return 'ready';
    if (dead) return /address already in use/i.test(daemon.logs()) ? 'port-taken' : 'failed';
    await sleep(40);
  }
  return 'failed';
}

/**
 * Starts docker-registry on 127.0.0.1:<free port> with the config `config(port)` written to
 * `configPath`, and waits until `GET /v2/` answers one of `readyStatuses` (default 200). A
 * port taken in between is retried with another (5 attempts).
 */
export async function startRegistryDaemon({ configPath, config, readyStatuses = [200] }) {
  if (!existsSync(REGISTRY_BINARY)) throw new Error(`${REGISTRY_BINARY} not found -- install docker-registry (scripts/ensure-system-deps.sh)`);
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    await writeFile(configPath, config(port));
    const daemon = await startDaemon(REGISTRY_BINARY, ['serve', configPath]);
    const url = `http://127.0.0.1:${port}`;
    const ready = await waitReady(`${url}/v2/`, daemon, readyStatuses);
    if (ready === 'ready') return { host: `127.0.0.1:${port}`, url, daemon };
    await daemon.stop();
    if (ready === 'port-taken' && attempt < 4) continue;
    throw new Error(`docker-registry did not become ready on ${url}: ${daemon.logs().slice(-4000)}`);
  }
}
