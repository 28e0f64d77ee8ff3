// A pool of Web Workers running bundle-worker.js: `process(k, width, bytes)` for
// verify.js, spread over the reader's cores. Falls back to processing in the page when
// module workers are not available.

import { processBundle } from './bundle.js';

export function workerPool(size = Math.max(1, Math.min(navigator.hardwareConcurrency || 2, 8))) {
  let workers;
  try {
    workers = Array.from({ length: size }, () => new Worker(new URL('./bundle-worker.js', import.meta.url), { type: 'module' }));
  } catch {
    return { process: processBundle, size: 0, close() {} };
  }
  const waiting = new Map();
  let next = 0;
  let id = 0;
  for (const w of workers) {
    w.onmessage = (event) => {
      const { id: got, result } = event.data;
      const resolve = waiting.get(got);
      waiting.delete(got);
      resolve(result);
    };
  }
  return {
    size,
    process(k, width, data) {
      const w = workers[next++ % workers.length];
      const my = id++;
      const copy = data.slice().buffer; // transferred to the worker
      return new Promise((resolve) => {
        waiting.set(my, resolve);
        w.postMessage({ id: my, k, width, data: copy }, [copy]);
      });
    },
    close() {
      for (const w of workers) w.terminate();
    },
  };
}
