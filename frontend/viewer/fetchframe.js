// Fetching one frame's bytes (WADO-RS frames, stored transfer syntax). Apart from Cornerstone, so
// that the page can ask for the first image while Cornerstone is still loading (main.js).
import { onlyPart, parameter } from './multipart.js';

const FRAME_ACCEPT = 'multipart/related; type=application/octet-stream; transfer-syntax=*';
const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';

/** The frame URL of a "wadors:<frame URL>" image ID. */
export function frameUrl(imageId) {
  return imageId.slice(imageId.indexOf(':') + 1);
}

/** Resolves to { pixelData, transferSyntax }, what frames.js decodes. */
export async function fetchFrame(url) {
  // Same-origin: the session cookie goes with it.
  const response = await fetch(url, { headers: { Accept: FRAME_ACCEPT }, credentials: 'same-origin' });
  if (!response.ok) {
    throw new Error(`${url} answered ${response.status}`);
  }
  const { body, contentType } = onlyPart(await response.arrayBuffer(), response.headers.get('Content-Type'));
  return {
    pixelData: body,
    transferSyntax: parameter(contentType, 'transfer-syntax') || IMPLICIT_VR_LITTLE_ENDIAN,
  };
}
