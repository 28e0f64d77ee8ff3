// The vendored @noble/curves and @noble/hashes are the pinned files listed in
// ledger/mirror/js/vendor/SHA256SUMS (made by scripts/vendor_noble.py), with licences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const vendor = fileURLToPath(new URL('../../ledger/mirror/js/vendor/', import.meta.url));

function files(dir, prefix = '') {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? files(full, `${prefix}${name}/`) : [`${prefix}${name}`];
  });
}

test('every vendored file is listed with its hash, and nothing else is there', () => {
  const sums = readFileSync(join(vendor, 'SHA256SUMS'), 'utf8').trim().split('\n')
    .map((line) => line.split(/\s+/));
  const listed = new Map(sums.map(([hash, name]) => [name, hash]));
  const present = files(vendor).filter((f) => f !== 'SHA256SUMS' && f !== 'README.md');
  assert.deepEqual(present.sort(), [...listed.keys()].sort());
  for (const [name, hash] of listed) {
    assert.equal(createHash('sha256').update(readFileSync(join(vendor, name))).digest('hex'), hash, name);
  }
  assert.ok(listed.has('noble-curves/LICENSE') && listed.has('noble-hashes/LICENSE'));
});

test('no vendored module imports a bare specifier', () => {
  for (const name of files(vendor).filter((f) => f.endsWith('.js'))) {
    const code = readFileSync(join(vendor, name), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
    for (const m of code.matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)) {
      assert.ok(m[1].startsWith('.'), `${name} imports ${m[1]}`);
    }
  }
});
