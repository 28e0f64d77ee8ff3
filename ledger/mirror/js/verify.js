// Checking a whole log (docs/spec.md, "Verification procedure", steps 1-6), from any
// source of its tlog-tiles resources: `fetch(path)` returns the bytes of a path under the
// log's prefix, or throws a LedgerError with `exit = 2` when it cannot be read.
//
// 1-2. fetch and verify the checkpoint under the trust (a vkey or a tlog-policy);
// 3.   fetch the entry bundles covering entries 0..N-1 (a partial bundle that is gone
//      once its full bundle exists is read from the full one, as tlog-tiles allows);
// 4.   for each entry in order: parse it, check index, prev and time, parse the record,
//      check its signatures (in batches, concurrently), apply the semantic rules;
// 5.   hash every entry into the tree, checking every hash tile the source serves (full
//      tiles as they complete, then the partial ones), and compare the root with R;
// 6.   return the tallies.
//
// The result, or the first failure, names the entry, the field and the error code, as
// `ledger-verify --json` does.

import { equalBytes, hexEncode } from './encoding.js';
import { LedgerError, fail } from './errors.js';
import { errorFrom, processBundle } from './bundle.js';
import { nodeHash, TreeBuilder } from './merkle.js';
import { openCheckpoint } from './note.js';
import { LogState } from './state.js';
import { bundlePath, decodeBundle, tilePath, WIDTH } from './tiles.js';

const ZERO = new Uint8Array(32);

/** Hash tiles as they complete, checked against what the source serves. */
class TileChecker {
  constructor(fetch) {
    this.fetch = fetch;
    this.levels = [[]];
    this.count = [0]; // hashes pushed at each level
    this.checked = 0;
  }

  async push(level, hash) {
    if (!this.levels[level]) {
      this.levels[level] = [];
      this.count[level] = 0;
    }
    this.levels[level].push(hash);
    this.count[level] += 1;
    if (this.levels[level].length === WIDTH) {
      const hashes = this.levels[level];
      this.levels[level] = [];
      await this.check(level, this.count[level] / WIDTH - 1, hashes);
      let r = hashes;
      while (r.length > 1) {
        const next = [];
        for (let i = 0; i < r.length; i += 2) next.push(nodeHash(r[i], r[i + 1]));
        r = next;
      }
      await this.push(level + 1, r[0]);
    }
  }

  async finish() {
    for (let level = 0; level < this.levels.length; level++) {
      const hashes = this.levels[level];
      if (hashes.length) await this.check(level, Math.floor(this.count[level] / WIDTH), hashes);
    }
  }

  async check(level, n, hashes) {
    const width = hashes.length;
    const path = tilePath(level, n, width);
    let data;
    try {
      data = await this.fetch(path);
    } catch (e) {
      if (!(e instanceof LedgerError && e.code === 'not_found') || width === WIDTH) throw e;
      data = (await this.fetch(tilePath(level, n))).subarray(0, 32 * width);
    }
    this.checked += 1;
    const first = n * WIDTH * WIDTH ** level;
    if (data.length !== 32 * width) {
      fail(`tile has the wrong length${data.length < 32 * width ? ' (truncated)' : ''} (expected ${32 * width}, found ${data.length})`, { code: 'bad_tile', index: first, field: path });
    }
    for (let i = 0; i < width; i++) {
      if (!equalBytes(data.subarray(32 * i, 32 * i + 32), hashes[i])) {
        const lo = (n * WIDTH + i) * WIDTH ** level;
        fail(`tile does not match the entries, at hash ${i}`, { code: 'tile_mismatch', index: lo, field: path });
      }
    }
  }
}

async function fetchBundle(fetch, k, width) {
  try {
    return await fetch(bundlePath(k, width));
  } catch (e) {
    if (!(e instanceof LedgerError && e.code === 'not_found') || width === WIDTH) throw e;
    const full = await fetch(bundlePath(k));
    const entries = decodeBundle(full, WIDTH, bundlePath(k), k * WIDTH).slice(0, width);
    let n = 0;
    for (const x of entries) n += 2 + x.length;
    return full.subarray(0, n);
  }
}

/**
 * Verify the whole log. `trust` comes from note.trustFromVkey or note.parsePolicy.
 * `process(k, width, bytes)` does a bundle's independent work (bundle.js; a worker pool
 * in the browser); `ahead` bundles are fetched and processed ahead of the one applied.
 * `onProgress(done, total)` is called after each bundle. Returns {size, root, tallies,
 * signaturesChecked, tilesChecked, warnings}; throws a LedgerError on the first failure.
 */
export async function verifyLog(fetch, trust, { onProgress = () => {}, maxAgeS = null, process = processBundle, ahead = 4 } = {}) {
  const { checkpoint: cp } = await (async () => {
    const data = await fetch('checkpoint');
    try {
      return await openCheckpoint(data, trust);
    } catch (e) {
      if (e instanceof LedgerError) e.field = e.field ? `checkpoint ${e.field}` : 'checkpoint';
      throw e;
    }
  })();
  const N = cp.size;
  const state = new LogState(cp.origin);
  const tree = new TreeBuilder();
  const tiles = new TileChecker(fetch);
  const bundles = Math.ceil(N / WIDTH);
  let prev = ZERO;
  let lastTime = 0;
  let signatures = 0;
  const pending = new Map();
  const start = (k) => {
    if (k >= bundles || pending.has(k)) return;
    const width = Math.min(WIDTH, N - k * WIDTH);
    // A rejection is kept in the promise and thrown when bundle k's turn comes.
    pending.set(k, fetchBundle(fetch, k, width).then((data) => process(k, width, data)));
  };
  for (let k = 0; k < bundles; k++) {
    for (let j = k; j < k + ahead; j++) start(j);
    const result = await pending.get(k);
    pending.delete(k);
    if (result.error) throw errorFrom(result.error);
    for (const e of result.entries) {
      const n = e.n;
      if (e.error) throw errorFrom(e.error);
      if (e.index !== n) fail(`entry index is wrong (expected ${n}, found ${e.index})`, { code: 'broken_chain', index: n, field: 'index' });
      if (!equalBytes(e.prev, prev)) fail('prev is not the leaf hash of the previous entry', { code: 'broken_chain', index: n, field: 'prev' });
      if (e.time < lastTime) fail('time goes back', { code: 'time_decreased', index: n, field: 'time' });
      if (e.signatureError) throw errorFrom(e.signatureError);
      signatures += e.record.signatures.length;
      state.apply({ index: n, time: e.time, record: e.record }, { maxAgeS });
      tree.push(e.leaf);
      await tiles.push(0, e.leaf);
      prev = e.leaf;
      lastTime = e.time;
    }
    onProgress(Math.min(N, (k + 1) * WIDTH), N);
  }
  for (const p of pending.values()) p.catch(() => {});
  await tiles.finish();
  const root = tree.root();
  if (!equalBytes(root, cp.root)) {
    fail('the root of the entries is not the root of the signed checkpoint', { code: 'root_mismatch', field: 'root' });
  }
  return {
    origin: cp.origin,
    size: N,
    root: hexEncode(root),
    tallies: state.tallies(N),
    signaturesChecked: signatures,
    tilesChecked: tiles.checked,
    warnings: state.warnings,
    state,
  };
}
