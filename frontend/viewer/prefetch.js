// Loading a whole series into Cornerstone's cache once its first image is on screen.
//
// The series comes in one WADO-RS request (Retrieve Series: its instances as Part-10 files, in
// their stored transfer syntax), not one request per frame. Every request costs the browser and
// the server a few milliseconds of CPU whatever its size: for a 500-slice CT, 500 frame requests
// took longer than the 260 MB they carried. Frames the response does not bring (a server that
// refuses it, an instance that cannot be read here, a broken connection) are then fetched one by
// one, as frames.js always does for what is on screen.
import { Enums, imageLoader } from '@cornerstonejs/core';
import { wadouri } from '@cornerstonejs/dicom-image-loader';
import { parseDicom } from 'dicom-parser';
import { parameter, parts } from './multipart.js';

const INSTANCES_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const PREFETCH = { requestType: Enums.RequestType.Prefetch, priority: 5 };
// Frames handed to the decoder and not decoded yet: enough to keep it busy, few enough that a fast
// network does not hold the series in memory twice.
const MAX_DECODING = 16;

// [imageId, { pixelData, transferSyntax }] for each frame of one Part-10 instance of the series.
function framesIn(part, framesOf) {
  let dataSet;
  try {
    dataSet = parseDicom(part.body);
  } catch (error) {
    console.warn('An instance of the series could not be read here; its frames are fetched alone.', error);
    return [];
  }
  const imageIds = framesOf.get(dataSet.string('x00080018')) || [];
  const transferSyntax = dataSet.string('x00020010') || parameter(part.contentType, 'transfer-syntax');
  const frames = [];
  imageIds.forEach((imageId, index) => {
    try {
      const pixelData = wadouri.getPixelData(dataSet, index);
      if (pixelData) frames.push([imageId, { pixelData, transferSyntax }]);
    } catch (error) {
      console.warn(`${imageId} could not be read from the series; it is fetched on its own`, error);
    }
  });
  return frames;
}

/**
 * Loads every image of `series` (from dicomweb.loadSeries) into the cache, calling
 * onProgress(loaded, total) as they arrive. Returns a function that stops it.
 */
export function prefetchSeries(series, onProgress) {
  const { imageIds, seriesUrl, framesOf } = series;
  const controller = new AbortController();
  const requested = new Set();
  let loaded = 0;
  let stopped = false;

  const settle = () => {
    if (stopped) return;
    loaded += 1;
    onProgress(loaded, imageIds.length);
  };
  // Images already cached or on their way (the one on screen) are counted, not fetched again.
  const load = (imageId, frame) => {
    if (requested.has(imageId)) return null;
    requested.add(imageId);
    const promise = imageLoader.loadAndCacheImage(imageId, frame ? { ...PREFETCH, frame } : PREFETCH);
    promise.then(settle, settle);
    return promise;
  };

  async function retrieveSeries() {
    const response = await fetch(seriesUrl, {
      headers: { Accept: INSTANCES_ACCEPT },
      credentials: 'same-origin',
      signal: controller.signal,
    });
    if (!response.ok) {
      throw new Error(`${seriesUrl} answered ${response.status}`);
    }
    const decoding = new Set();
    for await (const part of parts(response)) {
      for (const [imageId, frame] of framesIn(part, framesOf)) {
        const promise = load(imageId, frame);
        if (!promise) continue;
        decoding.add(promise);
        const done = () => decoding.delete(promise);
        promise.then(done, done);
      }
      while (decoding.size >= MAX_DECODING) {
        await Promise.race(decoding).catch(() => {});
      }
    }
  }

  onProgress(0, imageIds.length);
  // Without seriesUrl (a view-only share, which hands out no files) the frames are fetched.
  (seriesUrl ? retrieveSeries() : Promise.resolve())
    .catch((error) => {
      if (stopped) return;
      console.warn('The series could not be retrieved in one request; its frames are fetched.', error);
    })
    .finally(() => {
      if (!stopped) imageIds.forEach((imageId) => load(imageId));
    });
  return () => {
    stopped = true;
    controller.abort();
  };
}
