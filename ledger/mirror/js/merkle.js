// The Merkle tree of RFC 9162, section 2.1, with SHA-256 (docs/spec.md, "Merkle tree"):
// leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right), empty tree =
// SHA-256(""). The split point of n leaves is the largest power of two below n.
// `TreeBuilder` computes the root of leaves given one at a time in O(log n) memory
// (the compact range); inclusion and consistency proofs are verified as in RFC 9162
// sections 2.1.3.2 and 2.1.4.2, and throw on failure.

import { sha256 } from './vendor/noble-hashes/sha2.js';
import { equalBytes } from './encoding.js';
import { fail } from './errors.js';

export const EMPTY_ROOT = sha256(new Uint8Array(0));

export function leafHash(entry) {
  const buf = new Uint8Array(entry.length + 1);
  buf.set(entry, 1);
  return sha256(buf);
}

export function nodeHash(left, right) {
  const buf = new Uint8Array(65);
  buf[0] = 1;
  buf.set(left, 1);
  buf.set(right, 33);
  return sha256(buf);
}

/** Root of a tree from its leaf hashes, one at a time. */
export class TreeBuilder {
  constructor() {
    this.size = 0;
    this.stack = []; // roots of perfect subtrees, largest first; sizes are the bits of `size`
  }

  push(hash) {
    let h = hash;
    let n = this.size;
    while (n & 1) {
      h = nodeHash(this.stack.pop(), h);
      n >>= 1;
    }
    this.stack.push(h);
    this.size += 1;
  }

  root() {
    if (this.size === 0) return EMPTY_ROOT;
    let h = this.stack[this.stack.length - 1];
    for (let i = this.stack.length - 2; i >= 0; i--) h = nodeHash(this.stack[i], h);
    return h;
  }
}

export function rootOf(hashes) {
  const b = new TreeBuilder();
  for (const h of hashes) b.push(h);
  return b.root();
}

function isPowerOfTwo(n) {
  let m = n;
  while (m > 1 && m % 2 === 0) m /= 2;
  return m === 1;
}

function proofError(message) {
  fail(message, { code: 'bad_proof', field: 'proof' });
}

function checkHashes(...hashes) {
  for (const h of hashes) if (h.length !== 32) proofError(`a hash is 32 bytes, not ${h.length}`);
}

/** RFC 9162 §2.1.3.2: the root an inclusion proof gives for `leaf` at `index` of `size`. */
export function rootFromInclusion(leaf, index, size, proof) {
  checkHashes(leaf, ...proof);
  if (!(index < size)) proofError(`index ${index} is not below the tree size ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) proofError('inclusion proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) proofError('inclusion proof is too short');
  return r;
}

export function verifyInclusion(leaf, index, size, proof, root) {
  checkHashes(root);
  if (!equalBytes(rootFromInclusion(leaf, index, size, proof), root)) {
    fail('inclusion proof does not lead to the root', { code: 'root_mismatch', field: 'proof' });
  }
}

/** RFC 9162 §2.1.4.2: check that `proof` shows tree `n2` extends tree `n1`. */
export function verifyConsistency(n1, n2, root1, root2, proof) {
  checkHashes(root1, root2, ...proof);
  if (n1 > n2) proofError(`old size ${n1} is above the new size ${n2}`);
  if (n1 === n2) {
    if (proof.length) proofError('consistency proof between equal sizes must be empty');
    if (!equalBytes(root1, root2)) fail('roots differ at one size', { code: 'root_mismatch' });
    return;
  }
  if (n1 === 0) {
    if (proof.length) proofError('consistency proof from the empty tree must be empty');
    if (!equalBytes(root1, EMPTY_ROOT)) fail('not the empty tree\'s root', { code: 'root_mismatch' });
    return;
  }
  if (!proof.length) proofError('consistency proof is empty');
  let path = proof;
  if (isPowerOfTwo(n1)) path = [root1, ...proof];
  let fn = n1 - 1;
  let sn = n2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) proofError('consistency proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) proofError('consistency proof is too short');
  if (!equalBytes(fr, root1) || !equalBytes(sr, root2)) {
    fail('consistency proof does not lead to both roots', { code: 'root_mismatch' });
  }
}
