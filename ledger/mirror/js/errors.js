// Errors of the browser verifier: one class, with a stable machine-readable `code` and,
// where it helps, where the problem is (`index`: the entry, `field`: the record key,
// tile path or checkpoint part). docs/spec.md, "Verification procedure": "A failure at
// any step rejects the log at that point, naming the entry, the field or rule, and the
// error code." Verification throws; it never returns a boolean.

export class LedgerError extends Error {
  constructor(message, { code = 'malformed', index = null, field = null, exit = 1 } = {}) {
    super(message);
    this.name = 'LedgerError';
    this.code = code;
    this.index = index;
    this.field = field;
    // 1: the log is invalid; 2: the log could not be read (a fetch failed).
    this.exit = exit;
  }

  get text() {
    const where = [];
    if (this.index !== null) where.push(`entry ${this.index}`);
    if (this.field !== null) where.push(`field '${this.field}'`);
    return (where.length ? where.join(', ') + ': ' : '') + this.message;
  }
}

/** Throw a format error (code `malformed` unless given). */
export function fail(message, opts = {}) {
  throw new LedgerError(message, opts);
}

/** Re-throw `e` with an entry index (and a field if it has none). */
export function at(e, index, field = null) {
  if (e instanceof LedgerError) {
    if (e.index === null) e.index = index;
    if (e.field === null && field !== null) e.field = field;
    return e;
  }
  return e;
}
