// What the verifier's pages share: fetching the mirror's files relative to its top
// (untrusted: everything fetched is checked), and reading the trust the reader gave.

import { LedgerError } from './errors.js';
import { parsePolicy, trustFromVkey } from './note.js';

/** A fetch of paths under the mirror's `top` URL: bytes, or a LedgerError (exit 2). */
export function mirrorFetch(top) {
  return async (path) => {
    let res;
    try {
      res = await fetch(new URL(path, top), { cache: path === 'checkpoint' ? 'no-cache' : 'default' });
    } catch (e) {
      throw new LedgerError(`${path}: ${e.message}`, { code: 'unreadable', field: path, exit: 2 });
    }
    if (res.status === 404 || res.status === 410) {
      throw new LedgerError(`${path}: no such file`, { code: 'not_found', field: path, exit: 2 });
    }
    if (!res.ok) throw new LedgerError(`${path}: HTTP ${res.status}`, { code: 'unreadable', field: path, exit: 2 });
    return new Uint8Array(await res.arrayBuffer());
  };
}

/** The reader's trust: a tlog-policy (it has a quorum line) or a single vkey. */
export function trustFrom(text) {
  const t = text.trim();
  return /^(log|witness|group|quorum|#)/m.test(t) && t.includes('quorum') ? parsePolicy(`${t}\n`) : trustFromVkey(t);
}
