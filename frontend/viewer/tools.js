// Cornerstone's tools: what the mouse and fingers do on the image, measurements and cine. They are
// a third of the viewer's code and not needed to draw the first image, so Stage loads this module
// once that image is on screen.
import {
  AngleTool,
  Enums,
  LengthTool,
  PanTool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  addTool,
  annotation,
  init,
  store,
  utilities,
} from '@cornerstonejs/tools';

const TOOL_GROUP_ID = 'lightbox-tools';

// What the left mouse button (or one finger) does, by the toolbar's data-tool keys.
const PRIMARY_TOOLS = {
  windowLevel: WindowLevelTool,
  pan: PanTool,
  zoom: ZoomTool,
  scroll: StackScrollTool,
  length: LengthTool,
  angle: AngleTool,
};

const { MouseBindings } = Enums;

export class Tools {
  constructor(element, viewportId, engineId) {
    init();
    // The tools listen to elements enabled after init(); this one was enabled before.
    store.addEnabledElement({ detail: { element, viewportId } });
    this.group = ToolGroupManager.createToolGroup(TOOL_GROUP_ID);
    for (const tool of Object.values(PRIMARY_TOOLS)) {
      addTool(tool);
      this.group.addTool(tool.toolName);
    }
    this.group.addViewport(viewportId, engineId);
    this.primary = null;
  }

  /** `key` is one of the toolbar's data-tool values. */
  setPrimary(key) {
    const name = PRIMARY_TOOLS[key]?.toolName;
    if (!name || this.primary === name) return;
    if (this.primary) {
      // Measurements stay on screen when another tool is picked.
      this.group.setToolPassive(this.primary);
    }
    this.primary = name;
    this.group.setToolActive(name, { bindings: [{ mouseButton: MouseBindings.Primary }] });
    this.#bindSecondaryButtons();
  }

  // Wheel scrolls, right-drag zooms, middle-drag pans, whatever the primary tool is.
  #bindSecondaryButtons() {
    const scrollBindings = [{ mouseButton: MouseBindings.Wheel }];
    if (this.primary === StackScrollTool.toolName) {
      scrollBindings.push({ mouseButton: MouseBindings.Primary });
    }
    this.group.setToolActive(StackScrollTool.toolName, { bindings: scrollBindings });
    if (this.primary !== ZoomTool.toolName) {
      this.group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
    }
    if (this.primary !== PanTool.toolName) {
      this.group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
    }
  }

  play(element, framesPerSecond) {
    utilities.cine.playClip(element, { framesPerSecond, loop: true });
  }

  stop(element) {
    utilities.cine.stopClip(element);
  }

  clearMeasurements() {
    annotation.state.removeAllAnnotations();
  }
}
