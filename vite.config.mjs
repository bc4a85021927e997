// Bundles the image viewer (frontend/viewer/) into static/viewer/, served by Django as static files.
// `make` runs this; nothing is fetched from a CDN at run time.
import { defineConfig } from 'vite';

// Our Content-Security-Policy has no 'unsafe-inline' for styles, which blocks
// setAttribute('style', …). Cornerstone's measurement labels are styled that way (drawTextBox.js);
// the same declarations set through the CSSOM (element.style.cssText) are allowed. The build fails
// if an upgrade changes that code, so the patch is never silently lost.
function cspSafeTextBoxStyle() {
  const file = /@cornerstonejs\/tools\/dist\/esm\/drawingSvg\/drawTextBox\.js$/;
  const inlineStyle = "textElement.setAttribute('style', combinedStyle);";
  return {
    name: 'lightbox-csp-safe-text-box-style',
    transform(code, id) {
      if (!file.test(id)) return null;
      if (!code.includes(inlineStyle)) {
        this.error(`drawTextBox.js changed: ${inlineStyle} not found; check the CSP patch`);
      }
      return { code: code.replace(inlineStyle, 'textElement.style.cssText = combinedStyle;'), map: null };
    },
  };
}

// In production the page loads viewer.js under a hashed name (the static files' manifest); a
// chunk importing "../viewer.js" would load and run a second copy of the viewer.
function entryImportedByNoChunk() {
  return {
    name: 'lightbox-entry-imported-by-no-chunk',
    generateBundle(_, bundle) {
      const chunks = Object.values(bundle).filter((file) => file.type === 'chunk');
      const entries = new Set(chunks.filter((chunk) => chunk.isEntry).map((chunk) => chunk.fileName));
      for (const chunk of chunks) {
        const entry = [...chunk.imports, ...chunk.dynamicImports].find((name) => entries.has(name));
        if (entry) this.error(`${chunk.fileName} imports the entry ${entry}`);
      }
    },
  };
}

const SHARED = ['vite/preload-helper', '/frontend/viewer/fetchframe.js', '/frontend/viewer/multipart.js'];

export default defineConfig({
  // Relative URLs: chunks, workers and WASM codecs are found next to viewer.js wherever
  // STATIC_URL points.
  base: './',
  publicDir: false,
  plugins: [cspSafeTextBoxStyle(), entryImportedByNoChunk()],
  build: {
    outDir: 'static/viewer',
    emptyOutDir: true,
    target: 'es2022',
    // The codecs and vtk.js are large; they are split into chunks loaded on demand.
    chunkSizeWarningLimit: 5000,
    // viewer.html preloads the one chunk that matters (Cornerstone's); no polyfill for others.
    modulePreload: false,
    rollupOptions: {
      input: 'frontend/viewer/main.js',
      output: {
        format: 'es',
        entryFileNames: 'viewer.js',
        // Cornerstone's chunk keeps its name, so viewer.html can start loading it with the page.
        chunkFileNames: (chunk) => (chunk.name === 'stage' ? 'assets/stage.js' : 'assets/[name]-[hash].js'),
        assetFileNames: 'assets/[name]-[hash][extname]',
        // Code that viewer.js and the chunks both use (Vite's dynamic-import helper, fetching a
        // frame) would otherwise live in viewer.js, and every chunk using it would import viewer.js.
        manualChunks: (id) => (SHARED.some((name) => id.includes(name)) ? 'shared' : undefined),
      },
    },
  },
  // The DICOM decoder runs in module workers.
  worker: {
    format: 'es',
    rollupOptions: {
      output: {
        entryFileNames: 'assets/[name]-[hash].js',
        chunkFileNames: 'assets/[name]-[hash].js',
        assetFileNames: 'assets/[name]-[hash][extname]',
      },
    },
  },
});
