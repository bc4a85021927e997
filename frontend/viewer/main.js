// The Lightbox image viewer. Everything it needs comes from the page's data attributes:
//   data-dicomweb-root  where DICOMweb is served for this visitor ("/dicomweb", "/s/dicomweb", ...)
//   data-study-uid      the study to show
//   data-series-uid     (optional) the series to open first
//   data-back-url       where reports and downloads are (shown for series that are not images)
import { loadSeries, isImageModality, searchSeries } from './dicomweb.js';
import { fetchFrame, frameUrl } from './fetchframe.js';
import { Controls } from './controls.js';
import { SeriesStrip } from './strip.js';

// Cornerstone and vtk.js are most of the viewer's code: they load and start while the page asks
// for the series list and the first series' metadata, not before.
const cornerstone = import('./stage.js').then(async (viewer) => {
  await viewer.startCornerstone();
  return viewer;
});
cornerstone.catch(() => {}); // reported by main()

async function main() {
  const root = document.getElementById('viewer');
  if (!root) return;
  const config = {
    dicomwebRoot: (root.dataset.dicomwebRoot || '').replace(/\/+$/, ''),
    studyUid: root.dataset.studyUid,
    seriesUid: root.dataset.seriesUid || '',
    backUrl: root.dataset.backUrl || '',
    // Whether this viewer may retrieve whole DICOM files (Retrieve Series), or only frames.
    canRetrieve: root.dataset.canRetrieve !== 'false',
  };
  // On a phone the page header would push the image below the fold: start at the viewer.
  if (window.matchMedia('(max-width: 720px)').matches) {
    root.scrollIntoView({ block: 'start' });
  }
  const controls = new Controls(root);
  controls.status('Starting the viewer…');

  const strip = new SeriesStrip(root.querySelector('[data-series-strip]'));
  if (strip.isEmpty()) {
    try {
      strip.fill(await searchSeries(config.dicomwebRoot, config.studyUid));
    } catch (error) {
      console.error(error);
      controls.fail('The list of series could not be loaded. Please reload the page.');
      return;
    }
  }
  const initial = strip.find(config.seriesUid) || strip.firstImageSeries() || strip.first();
  const metadataRequests = new Map();
  // The initial series' first image, fetched as soon as its metadata is in: its bytes travel
  // while Cornerstone may still be loading. Should they not arrive, the image loader asks again.
  const firstFrames = new Map();
  let arrived = null;
  if (initial && isImageModality(initial.modality)) {
    const request = loadSeries(config.dicomwebRoot, config.studyUid, initial.uid);
    // Failures are reported when the series opens.
    request.then((loaded) => {
      arrived = loaded;
      if (loaded.isImage) {
        const frame = fetchFrame(frameUrl(loaded.imageIds[0]));
        frame.catch(() => {});
        firstFrames.set(initial.uid, frame);
      }
    }, () => {});
    metadataRequests.set(initial.uid, request);
  }

  let viewer;
  try {
    viewer = await cornerstone;
  } catch (error) {
    console.error('The viewer could not start:', error);
    controls.fail('This browser cannot show the images here. You can still download them from the study page.');
    return;
  }
  // The first image loads while the viewport is set up (its metadata is usually in by now).
  if (arrived?.isImage) viewer.preload(arrived, 0, firstFrames.get(initial.uid));
  const stage = new viewer.Stage(root.querySelector('[data-viewport]'));
  controls.attach(stage);
  wireOverlay(stage, controls, viewer);

  let opening = 0;
  async function open(series) {
    opening += 1;
    const ticket = opening;
    strip.select(series.uid);
    controls.beginSeries(series);
    if (!isImageModality(series.modality)) {
      controls.notImages(config.backUrl);
      return;
    }
    const request =
      metadataRequests.get(series.uid) || loadSeries(config.dicomwebRoot, config.studyUid, series.uid);
    metadataRequests.delete(series.uid);
    let loaded;
    try {
      loaded = await request;
    } catch (error) {
      console.error(error);
      if (ticket === opening) controls.fail('This series could not be loaded. Please try again later.');
      return;
    }
    if (ticket !== opening) return;
    if (!loaded.isImage) {
      controls.notImages(config.backUrl);
      return;
    }
    controls.showSeries({ ...series, ...loaded, description: series.description || loaded.description });
    const firstFrame = firstFrames.get(series.uid);
    firstFrames.delete(series.uid);
    try {
      await stage.show(loaded, 0, firstFrame);
    } catch (error) {
      console.error(error);
      if (ticket === opening) controls.fail('The first image of this series could not be shown.');
      return;
    }
    if (ticket !== opening) return;
    controls.shown();
    stage.enableTools();
    // Milestones for tests and bench/viewing.py: milliseconds since navigation started.
    if (!root.dataset.firstImageMs) root.dataset.firstImageMs = String(Math.round(performance.now()));
    stage.prefetch(config.canRetrieve ? loaded : { ...loaded, seriesUrl: null }, (done, total) => {
      if (ticket !== opening) return;
      controls.progress(done, total);
      if (done === total && !root.dataset.stackLoadedMs) {
        root.dataset.stackLoadedMs = String(Math.round(performance.now()));
      }
    });
  }

  strip.onSelect(open);
  if (initial) {
    await open(initial);
  } else {
    controls.fail('This study has no series to show yet.');
  }
}

function wireOverlay(stage, controls, { Enums, eventTarget }) {
  const update = () => controls.overlay(stage.index, stage.count, stage.windowLevel());
  stage.on(Enums.Events.STACK_NEW_IMAGE, update);
  stage.on(Enums.Events.VOI_MODIFIED, update);
  stage.on(Enums.Events.IMAGE_RENDERED, update);
  // A frame that cannot be fetched or decoded: say so rather than leave a black square.
  eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_ERROR, (event) => {
    console.warn('Image could not be loaded', event.detail);
    controls.status('Some images could not be loaded or decoded. You can still download the study.');
  });
  window.addEventListener('resize', () => stage.resize());
  document.addEventListener('fullscreenchange', () => stage.resize());
}

main();
