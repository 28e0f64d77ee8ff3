// The static layout of C2SP tlog-tiles (docs/spec.md, "Public static layout"): paths of
// hash tiles `tile/<L>/<N>[.p/<W>]` and entry bundles `tile/entries/<N>[.p/<W>]`, N in
// groups of three digits with `x` before all but the last; a bundle is each entry as a
// big-endian uint16 length and its bytes, exactly W of them, nothing after.

import { fail } from './errors.js';

export const WIDTH = 256;

export function indexPath(n) {
  let s = String(n);
  while (s.length % 3) s = '0' + s;
  const groups = s.match(/.../g);
  return groups.map((g, i) => (i < groups.length - 1 ? 'x' + g : g)).join('/');
}

export function tilePath(level, n, width = WIDTH) {
  return `tile/${level}/${indexPath(n)}${width < WIDTH ? `.p/${width}` : ''}`;
}

export function bundlePath(n, width = WIDTH) {
  return `tile/entries/${indexPath(n)}${width < WIDTH ? `.p/${width}` : ''}`;
}

/** Split a bundle into exactly `count` entries; `path` names it in errors. */
export function decodeBundle(data, count, path, first) {
  const out = [];
  let o = 0;
  while (o < data.length && out.length < count) {
    if (o + 2 > data.length) break;
    const n = (data[o] << 8) | data[o + 1];
    if (o + 2 + n > data.length) break;
    out.push(data.subarray(o + 2, o + 2 + n));
    o += 2 + n;
  }
  const span = `entries ${first}..${first + count - 1}`;
  // A bundle names no entry of its own: the error names the bundle (field) only.
  if (out.length < count) fail(`entry bundle of ${span}: bundle entry ${out.length} is truncated`, { field: path });
  if (o !== data.length) fail(`entry bundle of ${span}: ${data.length - o} bytes after its last entry`, { field: path });
  return out;
}
