// Window/level presets. CT values are in Hounsfield units; other modalities have no standard
// scale, so they get the image's own default only.
export const DEFAULT_PRESET = 'default';

const CT_PRESETS = [
  { id: 'brain', label: 'Brain', width: 80, center: 40 },
  { id: 'lung', label: 'Lung', width: 1500, center: -600 },
  { id: 'bone', label: 'Bone', width: 1800, center: 400 },
  { id: 'abdomen', label: 'Abdomen', width: 400, center: 50 },
  { id: 'soft-tissue', label: 'Soft tissue', width: 350, center: 40 },
];

export function presetsFor(modality) {
  const presets = [{ id: DEFAULT_PRESET, label: 'Image default' }];
  if ((modality || '').toUpperCase() === 'CT') {
    presets.push(...CT_PRESETS);
  }
  return presets;
}
