// Cornerstone's image loader for "wadors:<frame URL>" image IDs, in place of the
// dicom-image-loader's own retrieval: its XMLHttpRequest path searches each frame's multipart body
// byte by byte in JavaScript and copies the body out, which for a 500-slice CT kept the page's
// main thread busy for over a second. Decoding stays the dicom-image-loader's (createImage).
import { Enums, imageRetrievalPoolManager } from '@cornerstonejs/core';
import { createImage } from '@cornerstonejs/dicom-image-loader';
import { onlyPart, parameter } from './multipart.js';

const FRAME_ACCEPT = 'multipart/related; type=application/octet-stream; transfer-syntax=*';
const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';

async function fetchFrame(url) {
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

async function decode(imageId, { pixelData, transferSyntax }, options) {
  const image = await createImage(imageId, pixelData, transferSyntax, { ...options, decodeLevel: 0 });
  image.transferSyntaxUID = transferSyntax;
  image.imageQualityStatus = Enums.ImageQualityStatus.FULL_RESOLUTION;
  return image;
}

/**
 * Loads one frame. `options.frame` ({ pixelData, transferSyntax }) is a frame already at hand
 * (from a series retrieved in one response, see prefetch.js); otherwise it is fetched, in the
 * order Cornerstone's retrieval pool gives: what is on screen before the prefetch.
 */
export function loadFrame(imageId, options = {}) {
  const { frame, ...decodeOptions } = options;
  if (frame) {
    // Should this copy not decode here, the server may still send the frame in a form that does.
    const promise = decode(imageId, frame, decodeOptions).catch(
      () => loadFrame(imageId, decodeOptions).promise,
    );
    return { promise, cancelFn: undefined };
  }
  const url = imageId.slice(imageId.indexOf(':') + 1);
  const promise = new Promise((resolve, reject) => {
    const retrieve = () =>
      fetchFrame(url).then((fetched) => resolve(decode(imageId, fetched, decodeOptions)), reject);
    imageRetrievalPoolManager.addRequest(
      retrieve,
      options.requestType || Enums.RequestType.Interaction,
      { imageId },
      options.priority ?? 5,
    );
  });
  return { promise, cancelFn: undefined };
}
