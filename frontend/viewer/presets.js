// Window/level presets. CT values are in Hounsfield units; other modalities have no standard
// scale, so they get the image's own default only.
export const DEFAULT_PRESET = 'default';
// Not a preset: what the list shows when the window on screen matches none (after a drag).
export const CUSTOM_WINDOW = 'custom';

const CT_PRESETS = [
  { id: 'brain', label: 'Brain', width: 80, center: 40 },
  { id: 'lung', label: 'Lung', width: 1500, center: -600 },
  { id: 'bone', label: 'Bone', width: 1800, center: 400 },
  { id: 'abdomen', label: 'Abdomen', width: 400, center: 50 },
  { id: 'soft-tissue', label: 'Soft tissue', width: 350, center: 40 },
];

/** The preset whose window is { width, center } (rounded as the overlay shows it), if any. */
export function presetMatching(modality, { width, center }) {
  return presetsFor(modality).find(
    (preset) =>
      preset.width !== undefined &&
      Math.round(preset.width) === Math.round(width) &&
      Math.round(preset.center) === Math.round(center),
  );
}

export function presetsFor(modality) {
  const presets = [{ id: DEFAULT_PRESET, label: 'Image default' }];
  if ((modality || '').toUpperCase() === 'CT') {
    presets.push(...CT_PRESETS);
  }
  return presets;
}
