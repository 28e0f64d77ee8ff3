// The "verify this log" page (verify.html): the reader gives the log's vkey or a
// tlog-policy (which must come from the operator, not from this page; the one the mirror
// was built with may be pre-filled and is marked as such), and the whole log is checked
// here, in Web Workers, with a progress bar; the result names what failed and where, like
// `ledger-verify`, and the tallies are recomputed next to the page's own numbers.
//
// Elements (by id): vkey (textarea), verify (button), progress (<progress>), status,
// result, tallies (a table body). The page's own numbers: elements with
// data-statement="<id>" and data-count="total" or data-count="<kind>".

import { mirrorFetch, startPage } from './page.js';
import { workerPool } from './pool.js';
import { verifyLog } from './verify.js';

const $ = (id) => document.getElementById(id);

const fetchPath = mirrorFetch(new URL('.', document.baseURI)); // the mirror's top: checkpoint, tiles

function pageCounts() {
  const counts = new Map();
  for (const el of document.querySelectorAll('[data-statement][data-count]')) {
    counts.set(`${el.dataset.statement} ${el.dataset.count}`, Number(el.textContent.replace(/[^0-9]/g, '')));
  }
  return counts;
}

function showTallies(tallies) {
  const body = $('tallies');
  if (!body) return;
  const page = pageCounts(); // before the rows that hold them are replaced
  body.textContent = '';
  for (const s of tallies.statements) {
    const tr = document.createElement('tr');
    const shown = page.get(`${s.id} total`);
    for (const text of [s.title, String(s.endorsements), shown === undefined ? '' : String(shown),
      shown === undefined ? '' : shown === s.endorsements ? 'same' : 'DIFFERENT']) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    if (shown !== undefined && shown !== s.endorsements) tr.className = 'mismatch';
    body.append(tr);
  }
}

startPage(async (trust, status, seconds) => {
  const progress = $('progress');
  const pool = workerPool();
  status.textContent = `Verifying with ${pool.size || 1} worker(s)…`;
  try {
    const r = await verifyLog(fetchPath, trust, {
      process: pool.process,
      ahead: 2 * Math.max(1, pool.size),
      onProgress: (done, total) => {
        progress.max = total || 1;
        progress.value = done;
        status.textContent = `Checked ${done.toLocaleString()} of ${total.toLocaleString()} entries…`;
      },
    });
    showTallies(r.tallies);
    return `Valid: ${r.size.toLocaleString()} entries of ${r.origin}, ` +
      `${r.signaturesChecked.toLocaleString()} signatures and ${r.tilesChecked.toLocaleString()} ` +
      `tiles checked in ${seconds()} s; root ${r.root}.`;
  } finally {
    pool.close();
  }
});
