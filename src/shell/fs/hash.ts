/**
 * Hashing helpers.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { Digest } from '../../core/digest.js';

export function sha256Bytes(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
}
