"""Vendor @noble/curves and @noble/hashes (pinned) for the browser verifier.

    cd "$(mktemp -d)" && npm pack @noble/curves@2.4.0 @noble/hashes@2.4.0
    python scripts/vendor_noble.py <that directory>

Copies the ES modules that ``ed25519.js`` and ``sha2.js`` need, with their licences,
rewriting the bare ``@noble/hashes/...`` imports to relative paths (a browser resolves
no bare specifiers without an import map, and an inline import map would break the
site's ``script-src 'self'``). Nothing else in the files changes. ``SHA256SUMS`` lists
the result; ``tests/js/vendor.test.mjs`` checks it.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "ledger" / "mirror" / "js" / "vendor"
PACKAGES = {
    "curves": ("noble-curves-2.4.0.tgz", "ed25519.js"),
    "hashes": ("noble-hashes-2.4.0.tgz", "sha2.js"),
}
IMPORT = re.compile(r"""(from\s+|import\s+)(['"])([^'"]+)\2""")


def closure(files: dict[str, bytes], start: str) -> list[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for m in IMPORT.finditer(files[name].decode()):
            spec = m.group(3)
            if spec.startswith("."):
                todo.append(_norm(str(Path(name).parent.joinpath(spec))))
    return sorted(seen)


def _norm(name: str) -> str:
    parts: list[str] = []
    for p in name.split("/"):
        if p == "..":
            parts.pop()
        elif p not in (".", ""):
            parts.append(p)
    return "/".join(parts)


def main(src: str) -> None:
    sums = []
    for short, (tgz, start) in PACKAGES.items():
        with tarfile.open(Path(src) / tgz) as t:
            files = {
                m.name.removeprefix("package/"): t.extractfile(m).read()  # type: ignore[union-attr]
                for m in t.getmembers()
                if m.isfile()
            }
        files = {_norm(k): v for k, v in files.items()}
        names = closure(files, start)
        if short == "hashes":  # what the curves import from the hashes
            names = sorted(set(names) | set(closure(files, "utils.js")))
        out = HERE / f"noble-{short}"
        for name in [*names, "LICENSE"]:
            data = files[name]
            if name.endswith(".js"):
                depth = name.count("/")
                rel = "../" * (depth + 1) + "noble-hashes/"
                data = data.replace(b"'@noble/hashes/", f"'{rel}".encode())
                data = re.sub(rb"\n//# sourceMappingURL=.*\n?$", b"\n", data)
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            sums.append(f"{hashlib.sha256(data).hexdigest()}  noble-{short}/{name}")
    (HERE / "SHA256SUMS").write_text("\n".join(sorted(sums, key=lambda s: s.split()[1])) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
