// The browser verifier's Merkle code against the shared vectors of tests/vectors/merkle
// (generated from the RFC 9162 definitions by tests/vectors/merkle/generate.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { b64decode } from '../../ledger/mirror/js/encoding.js';
import { LedgerError } from '../../ledger/mirror/js/errors.js';
import {
  leafHash, rootOf, verifyConsistency, verifyInclusion,
} from '../../ledger/mirror/js/merkle.js';

const dir = new URL('../vectors/merkle/', import.meta.url);
const load = (name) => JSON.parse(readFileSync(new URL(name, dir), 'utf8'));
const b = (s) => b64decode(s);

function outcome(fn) {
  try {
    fn();
    return null;
  } catch (e) {
    if (!(e instanceof LedgerError)) throw e;
    return e.code;
  }
}

test('leaf hashes and roots of the RFC 6962 example tree', () => {
  const t = load('trees.json');
  const leaves = t.rfc6962_leaves.map(b);
  assert.deepEqual(leaves.map(leafHash), t.rfc6962_leaf_hashes.map(b));
  t.rfc6962_roots.forEach((root, n) => {
    assert.deepEqual(rootOf(leaves.slice(0, n).map(leafHash)), b(root), `size ${n}`);
  });
});

test('roots of the larger trees (sizes around tile edges)', () => {
  const t = load('trees.json');
  const sizes = Object.keys(t.big_roots).map(Number);
  const n = Math.max(...sizes);
  const enc = new TextEncoder();
  const hashes = [];
  for (let i = 0; i < n; i++) hashes.push(leafHash(enc.encode(t.big_leaf_template.replace('<i>', String(i)))));
  for (const size of sizes) {
    assert.deepEqual(rootOf(hashes.slice(0, size)), b(t.big_roots[size]), `size ${size}`);
  }
});

test('every inclusion vector, valid and mutated', () => {
  for (const v of load('inclusion.json')) {
    const got = outcome(() =>
      verifyInclusion(b(v.leaf_hash), v.leaf_index, v.tree_size, v.proof.map(b), b(v.root)));
    assert.equal(got, v.error, v.name);
  }
});

test('every consistency vector, valid and mutated', () => {
  for (const v of load('consistency.json')) {
    const got = outcome(() =>
      verifyConsistency(v.size1, v.size2, b(v.root1), b(v.root2), v.proof.map(b)));
    assert.equal(got, v.error, v.name);
  }
});
