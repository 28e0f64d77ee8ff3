// A Web Worker that processes entry bundles (bundle.js) for verify-page.js.
import { processBundle } from './bundle.js';

self.onmessage = async (event) => {
  const { id, k, width, data } = event.data;
  try {
    self.postMessage({ id, result: await processBundle(k, width, new Uint8Array(data)) });
  } catch (e) {
    self.postMessage({ id, result: { error: { message: String(e && e.message), code: 'internal', index: null, field: null, exit: 2 } } });
  }
};
