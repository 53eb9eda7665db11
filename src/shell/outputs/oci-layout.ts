/**
 * `ocidir://` output (being written: see issue 9).
 *
 * @module
 */
import { usageError } from '../../core/errors.js';
import type { ImageOutput } from '../../core/pipeline/types.js';
import type { OciLayoutReference } from '../../core/plans/oci-layout.js';
import type { Target, TransportSettings } from '../transports/types.js';

export async function openOciLayoutOutput(target: Target, _ref: OciLayoutReference, _settings: TransportSettings): Promise<ImageOutput> {
  throw usageError(`${target.uri}: ocidir:// as a destination is not available in this build yet`);
}
