// The series thumbnails: rendered by the server as buttons (data-series-uid etc.), or built
// here from a QIDO-RS search when the page did not list them.
export class SeriesStrip {
  constructor(list) {
    this.list = list;
    this.handlers = [];
    this.list.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-series-uid]');
      if (button) this.handlers.forEach((handler) => handler(this.#series(button)));
    });
  }

  #buttons() {
    return Array.from(this.list.querySelectorAll('button[data-series-uid]'));
  }

  #series(button) {
    return {
      uid: button.dataset.seriesUid,
      modality: button.dataset.modality || '',
      description: button.dataset.description || '',
    };
  }

  isEmpty() {
    return this.#buttons().length === 0;
  }

  fill(seriesList) {
    for (const series of seriesList) {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'series-button';
      button.dataset.seriesUid = series.uid;
      button.dataset.modality = series.modality;
      button.dataset.description = series.description;
      const label = [series.modality, series.description].filter(Boolean).join(' · ') || 'Series';
      const placeholder = document.createElement('span');
      placeholder.className = 'series-button-placeholder';
      placeholder.textContent = series.modality || '?';
      const text = document.createElement('span');
      text.className = 'series-button-label';
      text.textContent = label;
      button.append(placeholder, text);
      item.append(button);
      this.list.append(item);
    }
  }

  onSelect(handler) {
    this.handlers.push(handler);
  }

  find(uid) {
    const button = uid && this.#buttons().find((b) => b.dataset.seriesUid === uid);
    return button ? this.#series(button) : null;
  }

  first() {
    const button = this.#buttons()[0];
    return button ? this.#series(button) : null;
  }

  firstImageSeries() {
    const button = this.#buttons().find((b) => !['SR', 'DOC', 'KO', 'PR'].includes(b.dataset.modality));
    return button ? this.#series(button) : null;
  }

  select(uid) {
    for (const button of this.#buttons()) {
      const current = button.dataset.seriesUid === uid;
      button.setAttribute('aria-current', current ? 'true' : 'false');
      if (current) button.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    }
  }
}
