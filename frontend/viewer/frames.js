// Cornerstone's image loader for "wadors:<frame URL>" image IDs, in place of the
// dicom-image-loader's own retrieval: its XMLHttpRequest path searches each frame's multipart body
// byte by byte in JavaScript and copies the body out, which for a 500-slice CT kept the page's
// main thread busy for over a second. Decoding stays the dicom-image-loader's (createImage).
import { Enums, imageRetrievalPoolManager } from '@cornerstonejs/core';
import { createImage } from '@cornerstonejs/dicom-image-loader';
import { fetchFrame, frameUrl } from './fetchframe.js';

async function decode(imageId, { pixelData, transferSyntax }, options) {
  const image = await createImage(imageId, pixelData, transferSyntax, { ...options, decodeLevel: 0 });
  image.transferSyntaxUID = transferSyntax;
  image.imageQualityStatus = Enums.ImageQualityStatus.FULL_RESOLUTION;
  return image;
}

/**
 * Loads one frame. `options.frame` ({ pixelData, transferSyntax }, or a promise of one) is a frame
 * already at hand or on its way (from a series retrieved in one response, see prefetch.js; the
 * first image, fetched while Cornerstone loaded, see main.js); otherwise it is fetched, in the
 * order Cornerstone's retrieval pool gives: what is on screen before the prefetch.
 */
export function loadFrame(imageId, options = {}) {
  const { frame, ...decodeOptions } = options;
  if (frame) {
    // Should this copy not arrive or not decode here, the frame is asked for again: the server
    // may still send it in a form that decodes.
    const promise = Promise.resolve(frame)
      .then((bytes) => decode(imageId, bytes, decodeOptions))
      .catch(() => loadFrame(imageId, decodeOptions).promise);
    return { promise, cancelFn: undefined };
  }
  const url = frameUrl(imageId);
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
