// The bundle's runtime spec (src/core/plans/runtime-spec.ts): User resolved through the
// rootfs's own /etc/passwd and /etc/group, the environment as umoci builds it, args and
// cwd from the image config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import type { ImageConfig } from '../../src/core/codecs/oci.js';
import { runtimeEnv, runtimeSpec, runtimeUser } from '../../src/core/plans/runtime-spec.js';

const db = {
  passwd: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\nbroken line\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n',
  group: 'root:x:0:\nstaff:x:50:app,other\nappgrp:x:1001:\nwheel:x:10:app\n',
};

test('User: empty, numbers, names, mixes; a user gets its passwd group and the groups that list it', () => {
  assert.deepEqual(runtimeUser('', db), E.right({ user: { uid: 0, gid: 0 }, home: '/root' }));
  assert.deepEqual(runtimeUser('app', db), E.right({ user: { uid: 1000, gid: 1001, additionalGids: [10, 50] }, home: '/home/app' }));
  assert.deepEqual(runtimeUser('1000', db), E.right({ user: { uid: 1000, gid: 1001, additionalGids: [10, 50] }, home: '/home/app' }));
  assert.deepEqual(runtimeUser('app:staff', db), E.right({ user: { uid: 1000, gid: 50 }, home: '/home/app' }));
  assert.deepEqual(runtimeUser('4242:7', db), E.right({ user: { uid: 4242, gid: 7 } }));
  assert.deepEqual(runtimeUser('4242', {}), E.right({ user: { uid: 4242, gid: 0 } }));
  const ghost = runtimeUser('ghost', db);
  assert.ok(E.isLeft(ghost) && /no user "ghost" in the image's \/etc\/passwd/.test(ghost.left));
  assert.ok(E.isLeft(runtimeUser('app:ghosts', db)));
  assert.ok(E.isLeft(runtimeUser('a:b:c', db)));
  assert.ok(E.isLeft(runtimeUser('99999999999', db)), 'beyond 32 bits is not a uid, and no such name');
});

test('env: runc defaults, image variables replacing or appended, HOME last unless set', () => {
  assert.deepEqual(runtimeEnv(['A=1', 'PATH=/bin'], '/home/app'), ['PATH=/bin', 'TERM=xterm', 'A=1', 'HOME=/home/app']);
  assert.deepEqual(runtimeEnv(['HOME=/x'], '/home/app'), ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm', 'HOME=/x']);
  assert.deepEqual(runtimeEnv([], undefined).at(-1), 'HOME=/');
});

test('the spec: args are Entrypoint + Cmd, cwd is WorkingDir made absolute, labels become annotations', () => {
  const config = {
    rootfs: { type: 'layers', diff_ids: [] },
    os: 'linux',
    architecture: 'arm64',
    config: { Entrypoint: ['/bin/tini', '--'], Cmd: ['serve'], WorkingDir: 'srv', User: 'app', Labels: { 'org.example': 'x' }, ExposedPorts: { '80/tcp': {}, '443/tcp': {} } },
  } as unknown as ImageConfig;
  const spec = runtimeSpec(config, db);
  assert.ok(E.isRight(spec));
  const s = spec.right as { process: { args: string[]; cwd: string; user: unknown }; annotations: Record<string, string> };
  assert.deepEqual(s.process.args, ['/bin/tini', '--', 'serve']);
  assert.equal(s.process.cwd, '/srv');
  assert.deepEqual(s.process.user, { uid: 1000, gid: 1001, additionalGids: [10, 50] });
  assert.equal(s.annotations['org.example'], 'x');
  assert.equal(s.annotations['org.opencontainers.image.architecture'], 'arm64');
  assert.equal(s.annotations['org.opencontainers.image.exposedPorts'], '443/tcp,80/tcp');
  assert.ok(E.isLeft(runtimeSpec({ ...config, config: { User: 'ghost' } } as unknown as ImageConfig, db)));
});
