// A loopback docker-registry for the benchmark, and skopeo pushes into it.
//
// The registry is started by test/support/registry-daemon.mjs (the test harness's
// starter too), under a small bash watchdog that kills it when its stdin closes,
// which happens on stop() and whenever the bench process dies (even on SIGKILL),
// so no daemon outlives the bench. Its storage lives under
// .bench/registry/<key>/ and is kept between runs: skopeo skips blobs the
// registry already has, so pushing again is cheap.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REGISTRY_BINARY, startRegistryDaemon } from '../test/support/registry-daemon.mjs';

export { REGISTRY_BINARY };

/** Starts docker-registry on 127.0.0.1:<free port> with storage in `storageDir`. */
export async function startRegistry(workDir, storageDir) {
  fs.mkdirSync(workDir, { recursive: true });
  fs.mkdirSync(storageDir, { recursive: true });
  const config = (port) =>
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
    ].join('\n');
  const { host, url, daemon } = await startRegistryDaemon({ configPath: path.join(workDir, 'registry.yml'), config });
  return { host, url, stop: () => daemon.stop(), logs: () => daemon.logs() };
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
