/**
 * The real {@link TempFsPort}, on node:fs.
 *
 * @module
 */
import { promises as fs, constants } from 'node:fs';
import * as path from 'node:path';
import type { TempFsPort } from '../../core/fs-port.js';

export const nodeTempFs: TempFsPort = {
  async makeRunDir(parent, prefix) {
    await fs.mkdir(parent, { recursive: true });
    const dir = await fs.mkdtemp(path.join(parent, prefix));
    await fs.chmod(dir, 0o700);
    return dir;
  },
  async createExclusive(p) {
    const h = await fs.open(p, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
    await h.close();
  },
  rename: (from, to) => fs.rename(from, to),
  copyFile: (from, to) => fs.copyFile(from, to),
  unlink: (p) => fs.unlink(p),
  removeDir: (p) => fs.rmdir(p),
  listDir: (p) => fs.readdir(p),
};
