// The toolbar, the overlay, messages and keyboard shortcuts around the stage.
import { CUSTOM_WINDOW, DEFAULT_PRESET, presetMatching, presetsFor } from './presets.js';

const DEFAULT_STACK_FPS = 10;
const PAGE_STEP = 10;
// Loading is counted image by image, but shown a few times a second: every change of the bar and
// the status line costs the page a style, layout and paint while it is busy decoding.
const PROGRESS_INTERVAL_MS = 250;

export class Controls {
  constructor(root) {
    this.root = root;
    this.q = (selector) => root.querySelector(selector);
    this.stageBox = this.q('[data-stage]');
    this.toolbar = this.q('[role="toolbar"]');
    this.messageBox = this.q('[data-message]');
    this.statusLine = this.q('[data-status]');
    this.progressBar = this.q('[data-progress]');
    this.presetSelect = this.q('[data-preset]');
    this.fpsInput = this.q('[data-fps]');
    this.playButton = this.q('[data-action="play"]');
    this.invertButton = this.q('[data-action="invert"]');
    this.playing = false;
    this.stage = null;
    this.series = null;
  }

  attach(stage) {
    this.stage = stage;
    for (const button of this.root.querySelectorAll('[data-tool]')) {
      button.addEventListener('click', () => this.pickTool(button.dataset.tool));
    }
    const actions = {
      prev: () => stage.step(-1),
      next: () => stage.step(1),
      invert: () => this.invert(),
      fit: () => stage.fit(),
      'zoom-in': () => stage.zoomBy(1.25),
      'zoom-out': () => stage.zoomBy(0.8),
      play: () => this.togglePlay(),
      fullscreen: () => this.toggleFullscreen(),
      clear: () => stage.clearMeasurements(),
    };
    for (const button of this.root.querySelectorAll('[data-action]')) {
      const action = actions[button.dataset.action];
      if (action) button.addEventListener('click', action);
    }
    this.presetSelect.addEventListener('change', () => this.applyPreset(this.presetSelect.value));
    this.fpsInput.addEventListener('change', () => {
      if (this.playing) this.stage.play(this.fps());
    });
    this.root.addEventListener('keydown', (event) => this.onKey(event));
    // Touch screens: one finger moves through the images unless another tool is picked.
    if (window.matchMedia('(pointer: coarse)').matches) {
      this.pickTool('scroll');
    } else {
      this.pickTool('windowLevel');
    }
  }

  pickTool(key) {
    this.stage.setPrimaryTool(key);
    for (const button of this.root.querySelectorAll('[data-tool]')) {
      button.setAttribute('aria-pressed', button.dataset.tool === key ? 'true' : 'false');
    }
  }

  onKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    if (target.closest('input, select, textarea')) return;
    const moves = {
      ArrowUp: -1,
      ArrowLeft: -1,
      ArrowDown: 1,
      ArrowRight: 1,
      PageUp: -PAGE_STEP,
      PageDown: PAGE_STEP,
    };
    if (!this.series || this.stageBox.hidden) return;
    if (event.key in moves) {
      // Arrow keys on a toolbar button still move through images; Tab moves between buttons.
      this.stage.step(moves[event.key]);
    } else if (event.key === 'Home') {
      this.stage.go(0);
    } else if (event.key === 'End') {
      this.stage.go(this.stage.count - 1);
    } else if (event.key === 'i' || event.key === 'I') {
      this.invert();
    } else if (event.key === 'r' || event.key === 'R') {
      this.stage.fit();
    } else if (event.key === 'p' || event.key === 'P') {
      this.togglePlay();
    } else {
      return;
    }
    event.preventDefault();
  }

  fps() {
    const value = Number(this.fpsInput.value);
    return Number.isFinite(value) && value > 0 ? Math.min(60, value) : DEFAULT_STACK_FPS;
  }

  togglePlay() {
    if (!this.series || this.stage.count < 2) return;
    this.playing = !this.playing;
    if (this.playing) {
      this.stage.play(this.fps());
    } else {
      this.stage.stop();
    }
    this.playButton.setAttribute('aria-pressed', String(this.playing));
    this.playButton.setAttribute('aria-label', this.playing ? 'Pause' : 'Play');
    this.playButton.querySelector('[data-label]').textContent = this.playing ? 'Pause' : 'Play';
  }

  stopPlaying() {
    if (this.playing) this.togglePlay();
  }

  invert() {
    const inverted = this.stage.toggleInvert();
    this.invertButton.setAttribute('aria-pressed', String(inverted));
  }

  applyPreset(id) {
    if (id === DEFAULT_PRESET) {
      this.stage.resetWindowLevel();
      return;
    }
    const preset = presetsFor(this.series?.modality).find((p) => p.id === id);
    if (preset) this.stage.setWindowLevel(preset.width, preset.center);
  }

  toggleFullscreen() {
    if (document.fullscreenElement) {
      document.exitFullscreen();
    } else if (this.root.requestFullscreen) {
      this.root.requestFullscreen().catch(() => {});
    }
  }

  // --- what the page shows ---

  beginSeries(series) {
    this.stopPlaying();
    this.series = null;
    this.drawn = false;
    this.messageBox.hidden = true;
    this.stageBox.hidden = false;
    this.toolbar.hidden = false;
    this.root.classList.remove('is-ready');
    this.setText('[data-overlay-description]', series.description || series.modality || '');
    this.setText('[data-overlay-image]', '');
    this.setText('[data-overlay-wl]', '');
    this.status('Loading images…');
    clearTimeout(this.progressTimer);
    this.progressTimer = null;
    this.progressBar.hidden = true;
  }

  showSeries(series) {
    this.series = series;
    this.setText('[data-overlay-description]', series.description || series.modality || '');
    const custom = new Option('Custom', CUSTOM_WINDOW);
    custom.disabled = true;
    custom.hidden = true;
    this.presetSelect.replaceChildren(
      ...presetsFor(series.modality).map((preset) => new Option(preset.label, preset.id)),
      custom,
    );
    this.fpsInput.value = String(series.framesPerSecond || DEFAULT_STACK_FPS);
    this.invertButton.setAttribute('aria-pressed', 'false');
    this.stage.inverted = false;
  }

  shown() {
    this.drawn = true;
    this.root.classList.add('is-ready');
    this.status('');
    this.overlay(this.stage.index, this.stage.count, this.stage.windowLevel());
  }

  progress(done, total) {
    this.loading = { done, total };
    if (done >= total) {
      clearTimeout(this.progressTimer);
      this.progressTimer = null;
    } else if (this.progressTimer) {
      return;
    } else {
      this.progressTimer = setTimeout(() => {
        this.progressTimer = null;
        this.#showProgress();
      }, PROGRESS_INTERVAL_MS);
    }
    this.#showProgress();
  }

  #showProgress() {
    const { done, total } = this.loading;
    this.progressBar.max = total;
    this.progressBar.value = done;
    this.progressBar.hidden = done >= total;
    this.status(done >= total ? '' : `Loading images: ${done} of ${total}`);
  }

  overlay(index, count, windowLevel) {
    // Only once the series' first image is on screen: the overlay describes what is drawn.
    if (!this.series || !this.drawn || count === 0) return;
    this.setText('[data-overlay-image]', `Image ${index + 1} / ${count}`);
    this.setText(
      '[data-overlay-wl]',
      windowLevel ? `W ${Math.round(windowLevel.width)} L ${Math.round(windowLevel.center)}` : '',
    );
    if (windowLevel) this.#showPreset(windowLevel);
  }

  // The preset list names the window on screen: the image's own, a preset it matches, or Custom.
  #showPreset(windowLevel) {
    const id = windowLevel.isImageDefault
      ? DEFAULT_PRESET
      : presetMatching(this.series.modality, windowLevel)?.id || CUSTOM_WINDOW;
    if (this.presetSelect.value !== id) this.presetSelect.value = id;
  }

  notImages(backUrl) {
    this.series = null;
    this.stageBox.hidden = true;
    this.toolbar.hidden = true;
    this.messageBox.hidden = false;
    this.setText(
      '[data-message-text]',
      'This series is a document (such as a written report), not images.',
    );
    const link = this.q('[data-message-link]');
    link.hidden = !backUrl;
    if (backUrl) link.href = backUrl;
    this.status('');
  }

  fail(message) {
    this.stageBox.hidden = true;
    this.toolbar.hidden = true;
    this.messageBox.hidden = false;
    this.setText('[data-message-text]', message);
    this.status('');
  }

  status(text) {
    this.statusLine.textContent = text;
  }

  setText(selector, text) {
    const element = this.q(selector);
    if (element) element.textContent = text;
  }
}
