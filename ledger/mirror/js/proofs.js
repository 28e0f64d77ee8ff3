// RFC 9162 inclusion proofs computed from a log's C2SP tlog-tiles hash tiles, as
// golang.org/x/mod/sumdb/tlog's TileHashReader does: the tiles are untrusted, so the
// proof built from them is verified against the signed checkpoint's root, and a wrong
// tile hash makes that verification fail.
//
// A tile at level L holds the hashes of tree level 8L (subtrees of 256^L leaves); the
// levels in between are hashed from a tile's own hashes. A partial tile (`.p/W`) may be
// gone once its full tile exists; then the full one is read and cut.

import { LedgerError } from './errors.js';
import { nodeHash, verifyInclusion } from './merkle.js';
import { tilePath, WIDTH } from './tiles.js';

export class TileHashes {
  constructor(fetch, size) {
    this.fetch = fetch;
    this.size = size;
    this.tiles = new Map();
    this.subtrees = new Map(); // memoized imperfect subtree hashes (the right edge)
  }

  async tile(level, n) {
    const count = Math.floor(this.size / WIDTH ** level); // hashes at tree level 8*level
    const width = Math.min(WIDTH, count - n * WIDTH);
    const key = `${level}/${n}`;
    if (!this.tiles.has(key)) {
      this.tiles.set(key, (async () => {
        let data;
        try {
          data = await this.fetch(tilePath(level, n, width));
        } catch (e) {
          if (!(e instanceof LedgerError && e.code === 'not_found') || width === WIDTH) throw e;
          data = (await this.fetch(tilePath(level, n))).subarray(0, 32 * width);
        }
        if (data.length !== 32 * width) throw new LedgerError('tile has the wrong length', { code: 'bad_tile', field: tilePath(level, n, width) });
        return data;
      })());
    }
    return this.tiles.get(key);
  }

  /** The hash of the perfect subtree of 2^height leaves at `index` (in units of it). */
  async hashAt(height, index) {
    const level = Math.floor(height / 8);
    const within = height - 8 * level; // levels above the tile's stored level
    const span = 2 ** within; // stored hashes under one such subtree
    const first = index * span;
    const n = Math.floor(first / WIDTH);
    const data = await this.tile(level, n);
    let hashes = [];
    for (let i = 0; i < span; i++) {
      const o = 32 * (first - n * WIDTH + i);
      hashes.push(data.subarray(o, o + 32));
    }
    while (hashes.length > 1) {
      const next = [];
      for (let i = 0; i < hashes.length; i += 2) next.push(nodeHash(hashes[i], hashes[i + 1]));
      hashes = next;
    }
    return hashes[0];
  }

  /** MTH of leaves [start, start + count): perfect aligned parts from tiles. */
  async subtree(start, count) {
    let h = 0;
    while (2 ** (h + 1) <= count && start % 2 ** (h + 1) === 0) h += 1;
    if (2 ** h === count) return this.hashAt(h, start / 2 ** h);
    const key = `${start}+${count}`;
    if (!this.subtrees.has(key)) {
      let k = 1;
      while (k * 2 < count) k *= 2;
      this.subtrees.set(key, Promise.all([this.subtree(start, k), this.subtree(start + k, count - k)])
        .then(([a, b]) => nodeHash(a, b)));
    }
    return this.subtrees.get(key);
  }

  /** RFC 9162 §2.1.3.1 PATH(m, D[start:start+count]), leaf first. */
  async path(m, start, count) {
    if (count <= 1) return [];
    let k = 1;
    while (k * 2 < count) k *= 2;
    if (m < k) return [...(await this.path(m, start, k)), await this.subtree(start + k, count - k)];
    return [...(await this.path(m - k, start + k, count - k)), await this.subtree(start, k)];
  }

  /** Throw unless `leaf` is the leaf hash at `index` of the tree of `root`. */
  async verifyLeaf(leaf, index, root) {
    const proof = await this.path(index, 0, this.size);
    try {
      verifyInclusion(leaf, index, this.size, proof, root);
    } catch (e) {
      if (e instanceof LedgerError) {
        e.index = index;
        e.message = `entry or tiles do not match the checkpoint: ${e.message}`;
      }
      throw e;
    }
  }
}
