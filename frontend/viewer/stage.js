// Cornerstone3D set-up and the one stack viewport the page shows. This and what it imports (the
// tools aside, see tools.js) are most of the viewer's code; main.js loads it while the page fetches
// the first series.
import './polyfills.js';
import {
  Enums,
  RenderingEngine,
  eventTarget,
  imageLoader,
  init as coreInit,
  utilities,
} from '@cornerstonejs/core';
import { init as dicomImageLoaderInit, wadors } from '@cornerstonejs/dicom-image-loader';
import { loadFrame } from './frames.js';
import { prefetchSeries } from './prefetch.js';

const ENGINE_ID = 'lightbox-engine';
const VIEWPORT_ID = 'lightbox-stack';

export async function startCornerstone() {
  // The decoder's worker first: it starts up while the rest is set up.
  dicomImageLoaderInit({
    maxWebWorkers: Math.max(1, Math.min(4, Math.floor((navigator.hardwareConcurrency || 2) / 2))),
  });
  imageLoader.registerImageLoader('wadors', loadFrame);
  // One viewport on the page needs one WebGL context, not the seven Cornerstone makes for grids.
  // (Its CPU rendering, quicker where WebGL is emulated in software, loses a window set by hand
  // when the image changes, so it is not used.)
  await coreInit({ rendering: { webGlContextCount: 1 } });
}

/**
 * Hands a series' metadata (from dicomweb.loadSeries) to the image loader and starts loading the
 * image at `index`, which may begin before the viewport exists. `frame` is that image's bytes if
 * they were fetched already, or a promise of them (see frames.loadFrame).
 */
export function preload(series, index = 0, frame = undefined) {
  for (const [imageId, instance] of series.metadata) {
    wadors.metaDataManager.add(imageId, instance);
  }
  const imageId = series.imageIds[index];
  if (imageId) {
    const options = { requestType: Enums.RequestType.Interaction, priority: 0 };
    imageLoader.loadAndCacheImage(imageId, frame ? { ...options, frame } : options);
  }
}

export class Stage {
  constructor(element) {
    this.element = element;
    this.engine = new RenderingEngine(ENGINE_ID);
    this.engine.enableElement({
      viewportId: VIEWPORT_ID,
      type: Enums.ViewportType.STACK,
      element,
      defaultOptions: { background: [0, 0, 0] },
    });
    this.primary = 'windowLevel';
    this.tools = null;
    this.toolsLoaded = null;
    this.stopPrefetch = () => {};
  }

  /** Loads the tools (tools.js, a chunk of its own); until then a picked tool waits for them. */
  enableTools() {
    this.toolsLoaded ||= import('./tools.js').then(
      ({ Tools }) => {
        this.tools = new Tools(this.element, VIEWPORT_ID, ENGINE_ID);
        this.tools.setPrimary(this.primary);
        // Drags and the wheel act from here on (the keyboard and buttons work before).
        this.element.dataset.toolsReady = '';
        return this.tools;
      },
      (error) => {
        console.error('The image tools could not be loaded:', error);
        return null;
      },
    );
    return this.toolsLoaded;
  }

  get viewport() {
    return this.engine.getViewport(VIEWPORT_ID);
  }

  /** `key` is one of the toolbar's data-tool values. */
  setPrimaryTool(key) {
    this.primary = key;
    this.tools?.setPrimary(key);
  }

  /**
   * Shows a series (from dicomweb.loadSeries) at `index`; resolves once that image is on screen.
   * `frame`: that image's bytes, or a promise of them, if they were fetched already.
   */
  async show(series, index = 0, frame = undefined) {
    this.stop();
    this.stopPrefetch();
    preload(series, index, frame);
    await this.viewport.setStack(series.imageIds, index);
    // The image is set; render() draws it at the next animation frame (renders before this one
    // may have drawn an empty viewport). A tab in the background gets no animation frames.
    const drawn = new Promise((resolve) => {
      this.element.addEventListener(Enums.Events.IMAGE_RENDERED, resolve, { once: true });
    });
    this.viewport.resetCamera();
    this.viewport.render();
    if (document.visibilityState === 'visible') await drawn;
  }

  /** Loads the rest of the series (from dicomweb.loadSeries) in the background; onProgress(loaded, total). */
  prefetch(series, onProgress) {
    this.stopPrefetch();
    this.stopPrefetch = prefetchSeries(series, onProgress);
  }

  get index() {
    return this.viewport.getCurrentImageIdIndex();
  }

  get count() {
    return this.viewport.getImageIds().length;
  }

  go(index) {
    const last = this.count - 1;
    if (last < 0) return;
    const target = Math.min(last, Math.max(0, index));
    if (target !== this.index) {
      this.viewport.setImageIdIndex(target);
    }
  }

  step(delta) {
    this.go(this.index + delta);
  }

  /** The window on screen: { width, center, isImageDefault } (false once set by a preset or a drag). */
  windowLevel() {
    const { voiRange, isComputedVOI } = this.viewport.getProperties();
    if (!voiRange) return null;
    const { windowWidth, windowCenter } = utilities.windowLevel.toWindowLevel(voiRange.lower, voiRange.upper);
    return { width: windowWidth, center: windowCenter, isImageDefault: Boolean(isComputedVOI) };
  }

  setWindowLevel(width, center) {
    const voiRange = utilities.windowLevel.toLowHighRange(width, center);
    this.viewport.setProperties({ voiRange });
    this.viewport.render();
  }

  resetWindowLevel() {
    this.viewport.resetProperties();
    this.viewport.setProperties({ invert: this.inverted ?? false });
    this.viewport.render();
  }

  toggleInvert() {
    this.inverted = !this.viewport.getProperties().invert;
    this.viewport.setProperties({ invert: this.inverted });
    this.viewport.render();
    return this.inverted;
  }

  zoomBy(factor) {
    this.viewport.setZoom(this.viewport.getZoom() * factor);
    this.viewport.render();
  }

  fit() {
    this.viewport.resetCamera();
    this.viewport.render();
  }

  // Cine is a tool: play and stop wait for the tools, in the order they were asked for.
  play(framesPerSecond) {
    this.enableTools().then((tools) => tools?.play(this.element, framesPerSecond));
  }

  stop() {
    this.toolsLoaded?.then((tools) => tools?.stop(this.element));
  }

  clearMeasurements() {
    this.tools?.clearMeasurements();
    this.viewport.render();
  }

  resize() {
    this.engine.resize(true, true);
  }

  on(event, handler) {
    this.element.addEventListener(event, handler);
  }
}

export { Enums, eventTarget };
