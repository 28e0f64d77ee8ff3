// "Verify this statement" (docs/spec.md, "Checking a receipt", for each entry of one
// statement): the checkpoint under the reader's trust; then, for the statement's entry
// and every endorsement and withdrawal the page lists, that the entry is in the log at
// its index (RFC 9162 inclusion, from the tiles, against the checkpoint's root), that
// its record is well formed and correctly signed, and that it is the statement or an
// endorsement or withdrawal of it; and the tally of the listed entries.
//
// What this does NOT check, and says so: the semantic rules (that each signer was a
// registered, active signatory with that key: that needs every earlier entry), and that
// the list is complete (an endorsement the page left out). The whole-log verification
// checks both.

import { sha256 } from './vendor/noble-hashes/sha2.js';
import { equalBytes, hexEncode } from './encoding.js';
import { parseEntry } from './entry.js';
import { LedgerError, fail } from './errors.js';
import { leafHash } from './merkle.js';
import { openCheckpoint } from './note.js';
import { TileHashes } from './proofs.js';
import { checkSignatures } from './records.js';
import { bundlePath, decodeBundle, WIDTH } from './tiles.js';

export const NOT_CHECKED = 'Not checked here: that each signer was an active signatory '
  + 'using its current key (the semantic rules), and that no endorsement is missing from '
  + 'the list. "Verify the whole log" checks both.';

async function entryAt(fetch, cache, index, size) {
  const k = Math.floor(index / WIDTH);
  if (!cache.has(k)) {
    const width = Math.min(WIDTH, size - k * WIDTH);
    cache.set(k, (async () => {
      let data;
      try {
        data = await fetch(bundlePath(k, width));
      } catch (e) {
        if (!(e instanceof LedgerError && e.code === 'not_found') || width === WIDTH) throw e;
        data = await fetch(bundlePath(k));
        return decodeBundle(data, WIDTH, bundlePath(k), k * WIDTH).slice(0, width);
      }
      return decodeBundle(data, width, bundlePath(k, width), k * WIDTH);
    })());
  }
  return (await cache.get(k))[index - k * WIDTH];
}

/**
 * Verify statement `statementId` (hex) and the entries at `indexes` (its endorsements
 * and withdrawals, as the page lists them). Returns {size, total, byKind?, checked}.
 */
export async function verifyStatement(fetch, trust, statementId, statementIndex, indexes) {
  const { checkpoint: cp } = await openCheckpoint(await fetch('checkpoint'), trust);
  const tiles = new TileHashes(fetch, cp.size);
  const bundles = new Map();
  const all = [statementIndex, ...[...new Set(indexes)].sort((a, b) => a - b)];
  const active = new Map(); // signatory -> active?
  const check = async (index) => {
    if (!(index < cp.size)) fail(`entry ${index} is not in the tree of size ${cp.size}`, { code: 'bad_proof', index });
    const bytes = await entryAt(fetch, bundles, index, cp.size);
    await tiles.verifyLeaf(leafHash(bytes), index, cp.root);
    try {
      const e = parseEntry(bytes);
      if (e.index !== index) fail(`the entry says index ${e.index}`, { code: 'broken_chain', field: 'index' });
      await checkSignatures(e.record);
      return e;
    } catch (err) {
      if (err instanceof LedgerError) err.index = index;
      throw err;
    }
  };
  // Checked concurrently in chunks; applied (and failures reported) in index order.
  let checked = 0;
  for (let start = 0; start < all.length; start += 128) {
    const chunk = all.slice(start, start + 128);
    const results = await Promise.allSettled(chunk.map(check));
    for (let j = 0; j < chunk.length; j++) {
      const index = chunk[j];
      if (results[j].status === 'rejected') throw results[j].reason;
      const e = results[j].value;
      const b = e.record.body;
      if (index === statementIndex) {
        if (b.type !== 'statement' || hexEncode(sha256(e.record.bodyBytes)) !== statementId) {
          fail('this entry is not the statement', { code: 'wrong_entry', index });
        }
      } else {
        if ((b.type !== 'endorse' && b.type !== 'withdraw') || hexEncode(b.statement) !== statementId) {
          fail('this entry is not an endorsement or withdrawal of the statement', { code: 'wrong_entry', index });
        }
        active.set(hexEncode(b.signatory), b.type === 'endorse');
      }
      checked += 1;
    }
  }
  let total = 0;
  for (const v of active.values()) if (v) total += 1;
  return { size: cp.size, root: hexEncode(cp.root), total, checked, tilesRead: tiles.tiles.size, notChecked: NOT_CHECKED };
}

export { equalBytes };
