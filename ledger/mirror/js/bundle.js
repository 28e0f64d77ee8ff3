// One entry bundle's independent work (docs/spec.md, whole-log steps 3 and 4.1-4.3 and
// the leaf hashes of 4.5): split the bundle into its entries, parse each (strict), check
// each record's signatures, hash each leaf. Nothing here depends on the log's state, so
// bundles are processed in parallel (Web Workers: bundle-worker.js) and their results
// applied in order by verify.js, which checks the chain and the semantic rules.
//
// The result is plain data (structured-clonable): the entries, or the first error as
// {message, code, index, field, exit}.

import { parseEntry } from './entry.js';
import { LedgerError } from './errors.js';
import { leafHash } from './merkle.js';
import { checkSignatures } from './records.js';
import { bundlePath, decodeBundle } from './tiles.js';

export function errorData(e) {
  if (!(e instanceof LedgerError)) throw e;
  return { message: e.message, code: e.code, index: e.index, field: e.field, exit: e.exit };
}

export function errorFrom(d) {
  return new LedgerError(d.message, d);
}

/** Process bundle `k` of `width` entries; resolves to {entries} or {error}. */
export async function processBundle(k, width, data) {
  const first = k * 256;
  let raw;
  try {
    raw = decodeBundle(data, width, bundlePath(k, width), first);
  } catch (e) {
    return { error: errorData(e) };
  }
  const entries = [];
  for (let i = 0; i < raw.length; i++) {
    const n = first + i;
    try {
      const e = parseEntry(raw[i]);
      const { body, signatures, recordId } = e.record;
      entries.push({
        n, index: e.index, prev: e.prev, time: e.time, leaf: leafHash(raw[i]),
        record: { body, signatures: signatures.map((s) => ({ publicKey: s.publicKey })), recordId },
        check: checkSignatures(e.record).then(() => null, (err) => ({ ...errorData(err), index: n })),
      });
    } catch (e) {
      // A malformed entry fails the log here, after the entries before it were checked.
      entries.push({ n, error: { ...errorData(e), index: n } });
      break;
    }
  }
  for (const e of entries) {
    if (e.check) {
      e.signatureError = await e.check;
      delete e.check;
    }
  }
  return { entries };
}
