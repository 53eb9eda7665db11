/**
 * Schemes of Python occystrap that are not available yet: each role says so, and what to
 * use instead. When one is built it moves to its own module.
 *
 * @module
 */
import type { Transport } from './types.js';

const NOT_YET = 'is not available in this version yet (it is planned)';

export const dockerpushTransport: Transport = {
  name: 'dockerpush',
  aliases: [],
  source: { planned: `dockerpush:// ${NOT_YET}` },
  destination: { planned: `dockerpush:// ${NOT_YET}` },
};

export const quayTransport: Transport = {
  name: 'quay',
  aliases: [],
  source: { planned: `quay:// ${NOT_YET}` },
  destination: { planned: `quay:// ${NOT_YET}` },
};

export const plannedTransports: readonly Transport[] = [dockerpushTransport, quayTransport];
