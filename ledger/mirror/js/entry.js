// The log entry (docs/spec.md, "The log entry"): four ASCII header lines
// `endorsement-ledger/v1 entry`, `index <n>`, `prev <64 hex>`, `time <ms>`, one empty
// line, then a complete record. At most 65,535 bytes.

import { hexDecode, parseDecimal } from './encoding.js';
import { fail } from './errors.js';
import { parseRecord } from './records.js';

export const MAX_ENTRY_SIZE = 65535;
const HEADER = /^endorsement-ledger\/v1 entry\nindex ([^\n]*)\nprev ([^\n]*)\ntime ([^\n]*)\n\n/;

export function parseEntry(data) {
  if (data.length > MAX_ENTRY_SIZE) fail(`entry larger than ${MAX_ENTRY_SIZE} bytes`, { code: 'entry_too_large', field: 'entry' });
  // The header is ASCII: read it from the first bytes.
  const head = String.fromCharCode(...data.subarray(0, Math.min(data.length, 200)));
  const m = HEADER.exec(head);
  if (!m) {
    if (!head.startsWith('endorsement-ledger/v1 entry\n')) fail('not an entry header', { field: 'entry' });
    if (!/\nindex /.test(head)) fail("missing key 'index'", { field: 'index' });
    if (!/\nprev /.test(head)) fail("missing key 'prev'", { field: 'prev' });
    if (!/\ntime /.test(head)) fail("missing key 'time'", { field: 'time' });
    fail('the entry header must end with one empty line', { field: 'entry' });
  }
  const index = parseDecimal(m[1], 'index');
  const prev = hexDecode(m[2], { field: 'prev', length: 32 });
  const time = parseDecimal(m[3], 'time');
  if (index === 0 && prev.some((b) => b !== 0)) fail('entry 0 must have 64 zeros as prev', { field: 'prev' });
  const record = parseRecord(data.subarray(m[0].length));
  return { index, prev, time, record, bytes: data };
}
