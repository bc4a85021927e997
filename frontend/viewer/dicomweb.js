// Reading a series from the portal's DICOMweb service (WADO-RS metadata) and turning it into
// Cornerstone image IDs. The service root comes from the page: the JS never assumes one. Nothing
// here needs Cornerstone, so the page asks for the first series while Cornerstone still loads.

const TAG = {
  modality: '00080060',
  sopInstanceUid: '00080018',
  instanceNumber: '00200013',
  imagePosition: '00200032',
  imageOrientation: '00200037',
  numberOfFrames: '00280008',
  pixelData: '7FE00010',
  floatPixelData: '7FE00008',
  doublePixelData: '7FE00009',
  seriesDescription: '0008103E',
  frameTime: '00181063',
  cineRate: '00180040',
  recommendedFrameRate: '00082144',
};

// Modalities that carry documents, not pictures.
const NON_IMAGE_MODALITIES = new Set(['SR', 'DOC', 'KO', 'PR', 'OT-PDF']);

export function first(instance, tag) {
  const element = instance[tag];
  return element && Array.isArray(element.Value) ? element.Value[0] : undefined;
}

function all(instance, tag) {
  const element = instance[tag];
  return element && Array.isArray(element.Value) ? element.Value : [];
}

function hasPixels(instance) {
  return [TAG.pixelData, TAG.floatPixelData, TAG.doublePixelData].some((tag) => tag in instance);
}

export function isImageModality(modality) {
  return !NON_IMAGE_MODALITIES.has((modality || '').toUpperCase());
}

async function getJson(url) {
  // Same-origin: the session cookie goes with it.
  const response = await fetch(url, {
    headers: { Accept: 'application/dicom+json' },
    credentials: 'same-origin',
  });
  if (!response.ok) {
    throw new Error(`${url} answered ${response.status}`);
  }
  if (response.status === 204) {
    return [];
  }
  return response.json();
}

/** The study's series from QIDO-RS, for pages that do not list them in the markup. */
export async function searchSeries(root, studyUid) {
  const found = await getJson(`${root}/studies/${studyUid}/series`);
  return found.map((series) => ({
    uid: first(series, '0020000E'),
    modality: first(series, TAG.modality) || '',
    description: first(series, TAG.seriesDescription) || '',
    number: first(series, '00200011'),
    thumbnail: '',
  }));
}

// Slices in anatomical order: along the slice normal when the geometry is there, else by number.
function sortKey(instance) {
  const position = all(instance, TAG.imagePosition);
  const orientation = all(instance, TAG.imageOrientation);
  if (position.length === 3 && orientation.length === 6) {
    const [r1, r2, r3, c1, c2, c3] = orientation;
    const normal = [r2 * c3 - r3 * c2, r3 * c1 - r1 * c3, r1 * c2 - r2 * c1];
    return normal[0] * position[0] + normal[1] * position[1] + normal[2] * position[2];
  }
  return null;
}

export function sortInstances(instances) {
  const withKeys = instances.map((instance) => ({
    instance,
    number: Number(first(instance, TAG.instanceNumber) ?? 0),
    position: sortKey(instance),
  }));
  const byPosition = withKeys.every((item) => item.position !== null);
  withKeys.sort((a, b) => {
    if (a.number !== b.number) {
      return a.number - b.number;
    }
    return byPosition ? a.position - b.position : 0;
  });
  return withKeys.map((item) => item.instance);
}

function framesPerSecond(instance) {
  const recommended = Number(first(instance, TAG.recommendedFrameRate));
  const cine = Number(first(instance, TAG.cineRate));
  const frameTime = Number(first(instance, TAG.frameTime));
  if (recommended > 0) return recommended;
  if (cine > 0) return cine;
  if (frameTime > 0) return Math.round(1000 / frameTime);
  return 0;
}

/**
 * Loads a series' metadata. Returns { imageIds, seriesUrl, framesOf (SOP Instance UID → its image
 * IDs), metadata (image ID → the instance's metadata, for the WADO-RS image loader), modality,
 * description, isImage, framesPerSecond, multiFrame }.
 */
export async function loadSeries(root, studyUid, seriesUid) {
  const seriesUrl = `${root}/studies/${studyUid}/series/${seriesUid}`;
  const instances = await getJson(`${seriesUrl}/metadata`);
  const images = sortInstances(instances.filter(hasPixels));
  const modality = instances.length ? first(instances[0], TAG.modality) || '' : '';
  const description = instances.length ? first(instances[0], TAG.seriesDescription) || '' : '';
  const imageIds = [];
  const framesOf = new Map();
  const metadata = new Map();
  let fps = 0;
  let multiFrame = false;
  for (const instance of images) {
    const sop = first(instance, TAG.sopInstanceUid);
    const frames = Math.max(1, Number(first(instance, TAG.numberOfFrames) || 1));
    const base = `wadors:${seriesUrl}/instances/${sop}/frames/`;
    // The loader derives every frame's metadata from frame 1's entry.
    metadata.set(`${base}1`, instance);
    const ids = [];
    for (let frame = 1; frame <= frames; frame += 1) {
      ids.push(`${base}${frame}`);
    }
    imageIds.push(...ids);
    framesOf.set(sop, ids);
    if (frames > 1) {
      multiFrame = true;
      fps = fps || framesPerSecond(instance);
    }
  }
  return {
    imageIds,
    seriesUrl,
    framesOf,
    metadata,
    modality,
    description,
    isImage: isImageModality(modality) && imageIds.length > 0,
    framesPerSecond: fps,
    multiFrame,
  };
}
