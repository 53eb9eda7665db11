/**
 * The OCI runtime configuration (`config.json`) of a bundle, from an image config, as the
 * image spec's conversion rules say and umoci does: args from Entrypoint + Cmd, the
 * environment as umoci builds it ({@link runtimeEnv}), cwd from WorkingDir, the user from
 * User (names looked up in the rootfs's own /etc/passwd and /etc/group, as a runtime
 * would), Labels and the other fields as annotations. The rest is runc's default spec
 * (the template occystrap used: namespaces, mounts, masked paths, three capabilities),
 * with hostname `occystrap` as occystrap sets it. Python occystrap's fixed template
 * ignored the image's Env and User; this keeps them.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import type { ImageConfig } from '../codecs/oci.js';

/** The rootfs's /etc/passwd and /etc/group texts, when they exist. */
export interface UserDatabase {
  readonly passwd?: string;
  readonly group?: string;
}

export interface RuntimeUser {
  readonly uid: number;
  readonly gid: number;
  readonly additionalGids?: number[];
}

/** The user, and its home directory from /etc/passwd when it has an entry there. */
export interface ResolvedUser {
  readonly user: RuntimeUser;
  readonly home?: string;
}

const DEFAULT_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'];

/**
 * The process environment as umoci builds it: runc's defaults (PATH, TERM), each image
 * variable replacing one of the same name or appended, then HOME from /etc/passwd (else
 * `/`) unless the image sets it.
 */
export function runtimeEnv(imageEnv: readonly string[], home: string | undefined): string[] {
  const env = [...DEFAULT_ENV];
  const nameOf = (v: string) => (v.includes('=') ? v.slice(0, v.indexOf('=')) : v);
  for (const v of imageEnv) {
    const at = env.findIndex((e) => nameOf(e) === nameOf(v));
    if (at >= 0) env[at] = v;
    else env.push(v);
  }
  if (!env.some((e) => nameOf(e) === 'HOME')) env.push(`HOME=${home ?? '/'}`);
  return env;
}
const CAPABILITIES = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
const MAX_ID = 2 ** 32 - 2;

interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}
interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: string[];
}

function numeric(text: string): number | undefined {
  return /^\d{1,10}$/.test(text) && Number(text) <= MAX_ID ? Number(text) : undefined;
}

function parsePasswd(text: string | undefined): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const f = line.split(':');
    const uid = numeric(f[2] ?? '');
    const gid = numeric(f[3] ?? '');
    if (f.length >= 4 && f[0] && uid !== undefined && gid !== undefined) out.push({ name: f[0], uid, gid, home: f[5] ?? '' });
  }
  return out;
}

function parseGroup(text: string | undefined): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const f = line.split(':');
    const gid = numeric(f[2] ?? '');
    if (f.length >= 3 && f[0] && gid !== undefined) out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').filter((m) => m !== '') });
  }
  return out;
}

/**
 * The process user of `User` (`""`, `uid`, `uid:gid`, `name`, `name:group`, and mixes):
 * numbers are taken as they are; names are looked up in the rootfs's databases. A user
 * without a group gets its passwd entry's group (0 when it has none), and every group
 * that lists it by name as additional ones.
 */
export function runtimeUser(user: string | undefined, db: UserDatabase): E.Either<string, ResolvedUser> {
  const text = (user ?? '').trim() === '' ? '0' : (user as string).trim();
  const [userPart, groupPart, ...rest] = text.split(':');
  if (rest.length > 0 || userPart === '' || groupPart === '') return E.left(`User ${JSON.stringify(text)} is not USER, USER:GROUP, UID or UID:GID`);
  const passwd = parsePasswd(db.passwd);
  const groups = parseGroup(db.group);
  const byUid = numeric(userPart as string);
  const entry = byUid !== undefined ? passwd.find((p) => p.uid === byUid) : passwd.find((p) => p.name === userPart);
  if (byUid === undefined && entry === undefined) return E.left(`User ${JSON.stringify(text)}: no user ${JSON.stringify(userPart)} in the image's /etc/passwd`);
  const uid = byUid ?? (entry as PasswdEntry).uid;
  let gid: number;
  if (groupPart === undefined) gid = entry?.gid ?? 0;
  else {
    const byGid = numeric(groupPart);
    const group = byGid === undefined ? groups.find((g) => g.name === groupPart) : undefined;
    if (byGid === undefined && group === undefined) return E.left(`User ${JSON.stringify(text)}: no group ${JSON.stringify(groupPart)} in the image's /etc/group`);
    gid = byGid ?? (group as GroupEntry).gid;
  }
  const additional = groupPart === undefined && entry ? groups.filter((g) => g.members.includes(entry.name) && g.gid !== gid).map((g) => g.gid) : [];
  return E.right({
    user: { uid, gid, ...(additional.length > 0 ? { additionalGids: [...new Set(additional)].sort((a, b) => a - b) } : {}) },
    ...(entry && entry.home !== '' ? { home: entry.home } : {}),
  });
}

/** The annotations conversion.md names, from the image config. */
function annotationsOf(config: ImageConfig): Record<string, string> {
  const c = config.config ?? {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.Labels ?? {})) out[k] = v;
  if (config.os) out['org.opencontainers.image.os'] = config.os;
  if (config.architecture) out['org.opencontainers.image.architecture'] = config.architecture;
  if (config.variant) out['org.opencontainers.image.variant'] = config.variant;
  if (config.author) out['org.opencontainers.image.author'] = config.author;
  if (config.created) out['org.opencontainers.image.created'] = config.created;
  if (c.StopSignal) out['org.opencontainers.image.stopSignal'] = c.StopSignal;
  const ports = Object.keys(c.ExposedPorts ?? {});
  if (ports.length > 0) out['org.opencontainers.image.exposedPorts'] = ports.sort().join(',');
  return out;
}

/**
 * The bundle's `config.json` object.
 *
 * - Errors: a `User` that does not parse or names a user or group the rootfs does not
 *   have (`Left`, a message for the user).
 */
export function runtimeSpec(config: ImageConfig, db: UserDatabase): E.Either<string, Record<string, unknown>> {
  const c = config.config ?? {};
  const user = runtimeUser(c.User, db);
  if (E.isLeft(user)) return user;
  const env = runtimeEnv(c.Env ?? [], user.right.home);
  const cwd = c.WorkingDir && c.WorkingDir.trim() !== '' ? (c.WorkingDir.startsWith('/') ? c.WorkingDir : `/${c.WorkingDir}`) : '/';
  const annotations = annotationsOf(config);
  return E.right({
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: user.right.user,
      args: [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])],
      env,
      cwd,
      capabilities: { bounding: CAPABILITIES, effective: CAPABILITIES, permitted: CAPABILITIES, ambient: CAPABILITIES },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'occystrap',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    ],
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  });
}
