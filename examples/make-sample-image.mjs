#!/usr/bin/env node
// Writes a small, valid, deterministic legacy `docker save` tarball:
//
//   node examples/make-sample-image.mjs [out.tar]   (default examples/sample-image.tar)
//
// Needs only node and the project's node_modules (tar-stream) -- no docker,
// skopeo or network. Layout (Docker 1.10..24 style):
//   <layer-id>/VERSION, <layer-id>/json, <layer-id>/layer.tar   (3 layers)
//   <config-sha256>.json   image config with rootfs.diff_ids + history
//   manifest.json          [{ Config, RepoTags, Layers }]
//   repositories           { "occystrap-sample": { "1.0": <top layer id> } }
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import tar from 'tar-stream';

const here = path.dirname(fileURLToPath(import.meta.url));
const outFile = path.resolve(process.argv[2] ?? path.join(here, 'sample-image.tar'));

const CREATED = '2024-01-02T03:04:05Z';
const MTIME = new Date(CREATED);
const REPO = 'occystrap-sample';
const TAG = '1.0';

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

/** Build an uncompressed tar in memory from entry descriptions. */
async function makeTar(entries) {
  const pack = tar.pack();
  const chunks = [];
  pack.on('data', (c) => chunks.push(c));
  const ended = new Promise((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644),
      mtime: MTIME,
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      uname: e.uid ? 'app' : 'root',
      gname: e.gid ? 'app' : 'root',
    };
    if (e.linkname) header.linkname = e.linkname;
    await new Promise((resolve, reject) => {
      const cb = (err) => (err ? reject(err) : resolve());
      if (type === 'file') {
        const data = Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data ?? '');
        pack.entry({ ...header, size: data.length }, data, cb);
      } else {
        pack.entry({ ...header, size: 0 }, cb);
      }
    });
  }
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

const greetingScript = `#!/bin/sh
# Prints a greeting read from the image's configuration.
set -eu
conf=\${HELLO_CONF:-/etc/hello.conf}
name=$(sed -n 's/^name=//p' "$conf")
cat /usr/local/share/hello/greeting.txt
echo "configured for: \${name:-world}"
`;

const layers = [
  {
    createdBy: '/bin/sh -c #(nop) ADD file:base-rootfs in /',
    entries: [
      { name: 'bin/', type: 'directory' },
      { name: 'etc/', type: 'directory' },
      { name: 'etc/os-release', data: 'NAME="Occystrap Sample OS"\nID=occystrap-sample\nVERSION_ID=1.0\nPRETTY_NAME="Occystrap Sample OS 1.0"\n' },
      { name: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' },
      { name: 'etc/group', data: 'root:x:0:\napp:x:1000:\n' },
      { name: 'etc/motd', data: 'Welcome to the occystrap sample image.\n' },
      { name: 'home/', type: 'directory' },
      { name: 'home/app/', type: 'directory', mode: 0o750, uid: 1000, gid: 1000 },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
      { name: 'usr/', type: 'directory' },
      { name: 'usr/share/', type: 'directory' },
      { name: 'usr/share/doc/', type: 'directory' },
      { name: 'usr/share/doc/occystrap-sample/', type: 'directory' },
      {
        name: 'usr/share/doc/occystrap-sample/README.md',
        data: '# occystrap sample image\n\nA tiny image used by `examples/run-sample.sh`.\n' +
          Array.from({ length: 30 }, (_, i) => `- line ${i + 1}: filler text so the layer is not trivially small\n`).join(''),
      },
    ],
  },
  {
    createdBy: '/bin/sh -c #(nop) COPY dir:hello in /usr/local/',
    entries: [
      { name: 'usr/local/', type: 'directory' },
      { name: 'usr/local/bin/', type: 'directory' },
      { name: 'usr/local/bin/hello', data: greetingScript, mode: 0o755 },
      { name: 'usr/local/bin/hi', type: 'symlink', linkname: 'hello' },
      { name: 'usr/local/share/', type: 'directory' },
      { name: 'usr/local/share/hello/', type: 'directory' },
      { name: 'usr/local/share/hello/greeting.txt', data: 'Hello from the occystrap sample image!\n' },
    ],
  },
  {
    createdBy: '/bin/sh -c printf "name=sample\\n" > /etc/hello.conf && rm /etc/motd && mkdir -p /var/lib/hello',
    entries: [
      { name: 'etc/', type: 'directory' },
      { name: 'etc/.wh.motd', data: '' },
      { name: 'etc/hello.conf', data: 'name=sample\n' },
      { name: 'var/', type: 'directory' },
      { name: 'var/lib/', type: 'directory' },
      { name: 'var/lib/hello/', type: 'directory', uid: 1000, gid: 1000 },
      { name: 'var/lib/hello/state.json', data: '{"runs":0}\n', uid: 1000, gid: 1000 },
    ],
  },
];

const layerTars = [];
for (const l of layers) layerTars.push(await makeTar(l.entries));
const diffIds = layerTars.map((t) => `sha256:${sha256(t)}`);

const config = {
  architecture: 'amd64',
  os: 'linux',
  created: CREATED,
  author: 'occystrap examples',
  config: {
    User: 'app',
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HELLO_CONF=/etc/hello.conf'],
    Entrypoint: ['/usr/local/bin/hello'],
    Cmd: null,
    WorkingDir: '/home/app',
    Labels: { 'org.opencontainers.image.title': 'occystrap sample', 'org.opencontainers.image.version': TAG },
  },
  rootfs: { type: 'layers', diff_ids: diffIds },
  history: layers.map((l) => ({ created: CREATED, created_by: l.createdBy })),
};
const configBytes = Buffer.from(JSON.stringify(config));
const configName = `${sha256(configBytes)}.json`;

// v1 layer ids: a hash chain over parent id + diff_id (the top one also
// covers the config), stable for a given image.
const ids = [];
diffIds.forEach((d, i) => {
  const parent = ids[i - 1] ?? '';
  const extra = i === diffIds.length - 1 ? sha256(configBytes) : '';
  ids.push(sha256(`${parent} ${d} ${extra}`));
});

const files = [];
ids.forEach((id, i) => {
  const v1 = { id, ...(i > 0 ? { parent: ids[i - 1] } : {}), created: CREATED, container_config: { Cmd: [layers[i].createdBy] }, os: 'linux' };
  if (i === ids.length - 1) Object.assign(v1, { config: config.config, architecture: config.architecture });
  files.push({ name: `${id}/`, type: 'directory' });
  files.push({ name: `${id}/VERSION`, data: '1.0' });
  files.push({ name: `${id}/json`, data: JSON.stringify(v1) });
  files.push({ name: `${id}/layer.tar`, data: layerTars[i] });
});
files.push({ name: configName, data: configBytes });
files.push({
  name: 'manifest.json',
  data: JSON.stringify([{ Config: configName, RepoTags: [`${REPO}:${TAG}`], Layers: ids.map((id) => `${id}/layer.tar`) }]),
});
files.push({ name: 'repositories', data: JSON.stringify({ [REPO]: { [TAG]: ids[ids.length - 1] } }) });
files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

const archive = await makeTar(files);
fs.mkdirSync(path.dirname(outFile), { recursive: true });
const tmp = `${outFile}.tmp-${process.pid}`;
fs.writeFileSync(tmp, archive);
fs.renameSync(tmp, outFile);
console.log(`wrote ${path.relative(process.cwd(), outFile) || outFile} (${archive.length} bytes): ${REPO}:${TAG}, ${ids.length} layers, config sha256:${configName.slice(0, -5)}`);
