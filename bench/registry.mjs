// A loopback docker-registry for the benchmark, and skopeo pushes into it.
//
// The registry runs under a small bash watchdog that kills it when its stdin
// closes, which happens on stop() and whenever the bench process dies (even on
// SIGKILL), so no daemon outlives the bench. Its storage lives under
// .bench/registry/<key>/ and is kept between runs: skopeo skips blobs the
// registry already has, so pushing again is cheap.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

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

async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

function probe(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(undefined));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts docker-registry on 127.0.0.1:<free port> with storage in `storageDir`. */
export async function startRegistry(workDir, storageDir) {
  if (!fs.existsSync(REGISTRY_BINARY)) throw new Error(`${REGISTRY_BINARY} not found (bash scripts/ensure-system-deps.sh installs it)`);
  fs.mkdirSync(workDir, { recursive: true });
  fs.mkdirSync(storageDir, { recursive: true });
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = path.join(workDir, 'registry.yml');
    fs.writeFileSync(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${JSON.stringify(storageDir)}`,
        '  maintenance:',
        '    uploadpurging:',
        '      enabled: false',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        '',
      ].join('\n'),
    );
    const child = spawn('bash', ['-c', WATCHDOG, 'bench-registry-watchdog', REGISTRY_BINARY, 'serve', config], { stdio: ['pipe', 'pipe', 'pipe'] });
    let log = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s) => {
      log = (log + s).slice(-20000);
    });
    child.stdin.on('error', () => undefined);
    let exited = false;
    const exit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    void exit.then(() => (exited = true));
    const url = `http://127.0.0.1:${port}`;
    let ready = false;
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline && !exited) {
      const s = await probe(`${url}/v2/`);
      if (s === 200) {
        ready = true;
        break;
      }
      await sleep(50);
    }
    const stop = async () => {
      child.stdin.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 8000);
      await exit;
      clearTimeout(t);
    };
    if (ready) return { host: `127.0.0.1:${port}`, url, stop, logs: () => log };
    await stop();
    if (!/address already in use/i.test(log)) throw new Error(`docker-registry did not start: ${log.slice(-2000)}`);
  }
  throw new Error('docker-registry: no free port after 5 attempts');
}

/** A signature policy accepting anything, so skopeo needs nothing in /etc/containers. */
export function writePolicy(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  return file;
}

/** skopeo with our policy; throws on failure. */
export function skopeo(policy, args, env = process.env) {
  const r = spawnSync('skopeo', ['--policy', policy, ...args], { encoding: 'utf8', env, maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`skopeo ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Pushes the OCI layout image to the registry (blobs the registry has are skipped). */
export function pushImage(policy, image, registryHost) {
  skopeo(policy, ['copy', '--quiet', '--dest-tls-verify=false', `oci:${image.layout}:${image.tag}`, `docker://${registryHost}/${image.repo}:${image.tag}`]);
  return `${registryHost}/${image.repo}:${image.tag}`;
}
