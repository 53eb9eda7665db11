/**
 * `ocidir://` input (being written: see issue 9).
 *
 * @module
 */
import { usageError } from '../../core/errors.js';
import type { ImageInput } from '../../core/pipeline/types.js';
import type { OciLayoutReference } from '../../core/plans/oci-layout.js';
import type { Target, TransportSettings } from '../transports/types.js';

export async function openOciLayoutInput(target: Target, _ref: OciLayoutReference, _settings: TransportSettings): Promise<ImageInput> {
  throw usageError(`${target.uri}: ocidir:// as a source is not available in this build yet`);
}
