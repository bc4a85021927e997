// Cornerstone3D set-up and the one stack viewport the page shows.
import {
  Enums,
  RenderingEngine,
  eventTarget,
  imageLoadPoolManager,
  imageLoader,
  init as coreInit,
  utilities,
} from '@cornerstonejs/core';
import { init as dicomImageLoaderInit } from '@cornerstonejs/dicom-image-loader';
import {
  AngleTool,
  Enums as ToolEnums,
  LengthTool,
  PanTool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  addTool,
  annotation,
  init as toolsInit,
  utilities as toolUtilities,
} from '@cornerstonejs/tools';

const ENGINE_ID = 'lightbox-engine';
const VIEWPORT_ID = 'lightbox-stack';
const TOOL_GROUP_ID = 'lightbox-tools';

// What the left mouse button (or one finger) does, chosen from the toolbar.
export const PRIMARY_TOOLS = {
  windowLevel: WindowLevelTool.toolName,
  pan: PanTool.toolName,
  zoom: ZoomTool.toolName,
  scroll: StackScrollTool.toolName,
  length: LengthTool.toolName,
  angle: AngleTool.toolName,
};

const { MouseBindings } = ToolEnums;

export async function startCornerstone() {
  await coreInit();
  dicomImageLoaderInit({
    maxWebWorkers: Math.max(1, Math.min(4, Math.floor((navigator.hardwareConcurrency || 2) / 2))),
  });
  toolsInit();
  for (const tool of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, LengthTool, AngleTool]) {
    addTool(tool);
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
    this.tools = ToolGroupManager.createToolGroup(TOOL_GROUP_ID);
    for (const name of Object.values(PRIMARY_TOOLS)) {
      this.tools.addTool(name);
    }
    this.tools.addViewport(VIEWPORT_ID, ENGINE_ID);
    this.primary = null;
    this.setPrimaryTool(PRIMARY_TOOLS.windowLevel);
    this.generation = 0;
  }

  get viewport() {
    return this.engine.getViewport(VIEWPORT_ID);
  }

  setPrimaryTool(name) {
    if (this.primary === name) return;
    if (this.primary) {
      // Measurements stay on screen when another tool is picked.
      this.tools.setToolPassive(this.primary);
    }
    this.primary = name;
    this.tools.setToolActive(name, { bindings: [{ mouseButton: MouseBindings.Primary }] });
    this.#bindSecondaryButtons();
  }

  // Wheel scrolls, right-drag zooms, middle-drag pans, whatever the primary tool is.
  #bindSecondaryButtons() {
    const scrollBindings = [{ mouseButton: MouseBindings.Wheel }];
    if (this.primary === PRIMARY_TOOLS.scroll) {
      scrollBindings.push({ mouseButton: MouseBindings.Primary });
    }
    this.tools.setToolActive(PRIMARY_TOOLS.scroll, { bindings: scrollBindings });
    if (this.primary !== PRIMARY_TOOLS.zoom) {
      this.tools.setToolActive(PRIMARY_TOOLS.zoom, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
    }
    if (this.primary !== PRIMARY_TOOLS.pan) {
      this.tools.setToolActive(PRIMARY_TOOLS.pan, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
    }
  }

  /** Shows the first image (or `index`); resolves once it is on screen. */
  async show(imageIds, index = 0) {
    this.stop();
    this.generation += 1;
    await this.viewport.setStack(imageIds, index);
    this.viewport.resetCamera();
    this.viewport.render();
  }

  /** Loads the rest of the stack in the background; onProgress(loaded, total). */
  prefetch(imageIds, onProgress) {
    const generation = this.generation;
    let loaded = 0;
    const total = imageIds.length;
    onProgress(0, total);
    const settle = () => {
      if (generation !== this.generation) return;
      loaded += 1;
      onProgress(loaded, total);
    };
    imageIds.forEach((imageId, position) => {
      const request = () =>
        imageLoader
          .loadAndCacheImage(imageId, { priority: 5, requestType: Enums.RequestType.Prefetch })
          .then(settle, settle);
      imageLoadPoolManager.addRequest(request, Enums.RequestType.Prefetch, { imageId }, position);
    });
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

  windowLevel() {
    const { voiRange } = this.viewport.getProperties();
    if (!voiRange) return null;
    const { windowWidth, windowCenter } = utilities.windowLevel.toWindowLevel(voiRange.lower, voiRange.upper);
    return { width: windowWidth, center: windowCenter };
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

  play(framesPerSecond) {
    toolUtilities.cine.playClip(this.element, { framesPerSecond, loop: true });
  }

  stop() {
    toolUtilities.cine.stopClip(this.element);
  }

  clearMeasurements() {
    annotation.state.removeAllAnnotations();
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
