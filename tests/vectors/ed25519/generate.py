"""Generate the Ed25519 acceptance-rule vectors (docs/spec.md, "The Ed25519 acceptance rule").

    python tests/vectors/ed25519/generate.py [OUTPUT_DIR]

This script deliberately does NOT use ``ledger``: it carries its own small
edwards25519 arithmetic (affine coordinates, written from RFC 8032, sections 5.1.3
to 5.1.6) so that the vectors check ``ledger.core.ed25519`` against a second,
independent implementation. It signs with that arithmetic too, which lets it
build signatures no honest signer makes (R of small order, keys of mixed order);
honest signatures are cross-checked against pyca/cryptography. Everything is
deterministic: running it again writes identical bytes
(tests/test_ed25519.py checks that the committed file is its output).

Output: ``vectors.json``, a list of objects
``{name, key, sig, msg, expected, reason, description}`` with hex ``key``, ``sig``
and ``msg``; ``expected`` is ``accept`` or ``reject`` and ``reason`` a phrase the
rejection message contains.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int]  # affine (x, y); the identity is (0, 1)
IDENTITY: Point = (0, 1)


def add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return (
        (x1 * y2 + y1 * x2) * pow(1 + t, -1, P) % P,
        (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P,
    )


def mul(k: int, a: Point) -> Point:
    r = IDENTITY
    while k:
        if k & 1:
            r = add(r, a)
        a = add(a, a)
        k >>= 1
    return r


def recover_x(y: int, sign: int) -> int | None:
    """x with x^2 = (y^2 - 1) / (d y^2 + 1) and the given parity, or None."""
    xx = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P:
        x = x * SQRT_M1 % P
    if (x * x - xx) % P:
        return None
    if x == 0 and sign:
        return None
    return P - x if x % 2 != sign else x


def enc(a: Point) -> bytes:
    return (a[1] | (a[0] & 1) << 255).to_bytes(32, "little")


def dec(b: bytes) -> Point:
    n = int.from_bytes(b, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    assert y < P
    x = recover_x(y, sign)
    assert x is not None
    return (x, y)


BASE: Point = (recover_x(4 * pow(5, -1, P) % P, 0) or 0, 4 * pow(5, -1, P) % P)


def sha512_int(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


class Signer:
    """RFC 8032 Ed25519 from a seed, with hooks for deliberately bad signatures."""

    def __init__(self, seed: bytes) -> None:
        h = hashlib.sha512(seed).digest()
        a = int.from_bytes(h[:32], "little")
        a &= (1 << 254) - 8
        a |= 1 << 254
        self.a, self.prefix = a, h[32:]
        self.point = mul(a, BASE)
        self.pub = enc(self.point)
        assert (
            Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw() == self.pub
        )

    def sign(self, msg: bytes, pub: bytes | None = None) -> bytes:
        """Sign msg; with ``pub``, hash that key into k instead of our own (mixed-order keys)."""
        r = sha512_int(self.prefix, msg) % L
        r_enc = enc(mul(r, BASE))
        k = sha512_int(r_enc, pub or self.pub, msg) % L
        return r_enc + ((r + k * self.a) % L).to_bytes(32, "little")


def le(n: int) -> bytes:
    return n.to_bytes(32, "little")


def small_order_points() -> list[Point]:
    """The 8 points of order dividing 8: multiples of the torsion part of some point."""
    y = 2
    while True:
        x = recover_x(y, 0)
        if x is not None:
            t = mul(L, (x, y))
            if mul(4, t) != IDENTITY:
                break
        y += 1
    pts = [IDENTITY]
    for _ in range(7):
        pts.append(add(pts[-1], t))
    assert len(set(pts)) == 8 and all(mul(8, p) == IDENTITY for p in pts)
    return pts


def small_order_encodings() -> list[tuple[str, bytes, bool]]:
    """(label, encoding, canonical) of every spelling of a small-order point."""
    out = []
    for i, pt in enumerate(small_order_points()):
        x, y = pt
        order = next(n for n in (1, 2, 4, 8) if mul(n, pt) == IDENTITY)
        for yy, y_label in ((y, "y"), (y + P, "y+p")):
            if yy >= 1 << 255:
                continue
            for sign in (0, 1):
                if x != 0 and sign != x & 1:
                    continue  # that spelling belongs to the other point, -pt
                canonical = yy < P and not (x == 0 and sign == 1)
                label = f"order{order}-point{i}-{y_label}-sign{sign}"
                out.append((label, le(yy | sign << 255), canonical))
    assert len({e for _, e, _ in out}) == 14
    return out


def vector(
    name: str, key: bytes, sig: bytes, msg: bytes, expected: str, reason: str, description: str
) -> dict[str, str]:
    return {
        "name": name,
        "key": key.hex(),
        "sig": sig.hex(),
        "msg": msg.hex(),
        "expected": expected,
        "reason": reason,
        "description": description,
    }


RFC8032 = [  # RFC 8032, section 7.1, TEST 1 to TEST 3: (secret key, public key, message, signature)
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


def vectors() -> list[dict[str, str]]:
    out = []
    for i, (secret, public, msg, sig) in enumerate(RFC8032, 1):
        s = Signer(bytes.fromhex(secret))
        assert s.pub.hex() == public and s.sign(bytes.fromhex(msg)).hex() == sig
        out.append(
            vector(
                f"rfc8032-test-{i}",
                s.pub,
                bytes.fromhex(sig),
                bytes.fromhex(msg),
                "accept",
                "",
                f"RFC 8032, section 7.1, TEST {i}",
            )
        )

    signer = Signer(hashlib.sha256(b"endorsement-ledger ed25519 vector key").digest())
    msg = b"endorsement-ledger ed25519 acceptance rule\n"
    good = signer.sign(msg)
    assert (
        Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(b"endorsement-ledger ed25519 vector key").digest()
        ).sign(msg)
        == good
    )
    out.append(vector("valid", signer.pub, good, msg, "accept", "", "an honest signature"))
    r_enc, s_int = good[:32], int.from_bytes(good[32:], "little")

    # The universal forgery: identity key, R = identity, S = 0 satisfies [S]B = R + [k]A for all M.
    identity = enc(IDENTITY)
    out.append(
        vector(
            "identity-key-universal-signature",
            identity,
            identity + le(0),
            msg,
            "reject",
            "public key has small order",
            "A = identity, R = identity, S = 0: valid for every message under the bare RFC 8032 "
            "equation (OpenSSL accepts it); rejected by step 3",
        )
    )

    # Every spelling of every small-order point, as the key and as R.
    for label, e, canonical in small_order_encodings():
        if canonical:
            reason = "public key has small order"
        elif int.from_bytes(e, "little") & ((1 << 255) - 1) >= P:
            reason = "non-canonical encoding (y >= p)"
        else:
            reason = "non-canonical encoding (x = 0 with the sign bit set)"
        out.append(
            vector(
                f"small-order-key-{label}",
                e,
                good,
                msg,
                "reject",
                reason,
                f"small-order point {label} as the public key"
                + ("" if canonical else " (a non-canonical spelling)"),
            )
        )
        out.append(
            vector(
                f"small-order-r-{label}",
                signer.pub,
                e + good[32:],
                msg,
                "reject",
                "signature R is a small-order point",
                f"small-order point {label} as R under a valid key",
            )
        )

    # R = identity with S = k a: the equation holds for a key whose secret is known, and
    # OpenSSL accepts it; step 6 rejects it.
    k = sha512_int(identity, signer.pub, msg) % L
    out.append(
        vector(
            "r-identity-equation-holds",
            signer.pub,
            identity + le(k * signer.a % L),
            msg,
            "reject",
            "signature R is a small-order point",
            "R = identity and S = k a: [S]B = R + [k]A holds, but R has small order (step 6)",
        )
    )

    # Non-reduced S.
    out.append(
        vector(
            "s-plus-l",
            signer.pub,
            r_enc + le(s_int + L),
            msg,
            "reject",
            "S is not reduced",
            "the valid signature with S + L in place of S (step 5)",
        )
    )
    out.append(
        vector(
            "s-equals-l",
            signer.pub,
            r_enc + le(L),
            msg,
            "reject",
            "S is not reduced",
            "S = L (step 5)",
        )
    )
    out.append(
        vector(
            "s-all-ones",
            signer.pub,
            r_enc + b"\xff" * 32,
            msg,
            "reject",
            "S is not reduced",
            "S = 2^256 - 1 (step 5)",
        )
    )

    # Non-canonical key encodings: y >= p.
    for y, what in (
        (P, "y = p (y = 0 spelled non-canonically)"),
        (P + 1, "y = p + 1 (the identity)"),
        (2**255 - 1, "y = 2^255 - 1"),
    ):
        out.append(
            vector(
                f"key-y-{'p' if y == P else 'p-plus-1' if y == P + 1 else 'max'}",
                le(y),
                good,
                msg,
                "reject",
                "non-canonical encoding (y >= p)",
                what,
            )
        )
    # A y < 19 whose point is of prime order would have a second spelling y + p; list the first
    # y < 19 that is a curve point at all, spelled with + p.
    for y in range(2, 19):
        if recover_x(y, 0) is not None:
            out.append(
                vector(
                    "key-y-plus-p-on-curve",
                    le(y + P),
                    good,
                    msg,
                    "reject",
                    "non-canonical encoding (y >= p)",
                    f"y = {y} + p: a curve point, spelled non-canonically",
                )
            )
            break
    for y in range(2, 100):
        if recover_x(y, 0) is None:
            out.append(
                vector(
                    "key-not-on-curve",
                    le(y),
                    good,
                    msg,
                    "reject",
                    "not a point on the curve",
                    f"y = {y}: (y^2 - 1) / (d y^2 + 1) is not a square",
                )
            )
            break

    # Mixed order: A + T for T of order 8. Sign with the secret of A, grinding the message until
    # k = 0 mod 8 so that [k]T vanishes: then the cofactorless equation holds and OpenSSL accepts.
    t8 = next(p for p in small_order_points() if mul(4, p) != IDENTITY)
    mixed = enc(add(signer.point, t8))
    n = 0
    while True:
        m = msg + str(n).encode()
        sig = signer.sign(m, pub=mixed)
        if sha512_int(sig[:32], mixed, m) % L % 8 == 0:
            break
        n += 1
    out.append(
        vector(
            "mixed-order-key",
            mixed,
            sig,
            m,
            "reject",
            "not in the prime-order subgroup",
            "A + T with T of order 8; the signature satisfies the cofactorless equation "
            "(k = 0 mod 8, OpenSSL accepts it) but the key fails step 4",
        )
    )

    # Bit flips and wrong lengths.
    flipped = bytearray(good)
    flipped[0] ^= 1
    out.append(
        vector(
            "sig-bit-flip-r",
            signer.pub,
            bytes(flipped),
            msg,
            "reject",
            "does not verify",
            "one bit of R flipped",
        )
    )
    flipped = bytearray(good)
    flipped[40] ^= 0x10
    out.append(
        vector(
            "sig-bit-flip-s",
            signer.pub,
            bytes(flipped),
            msg,
            "reject",
            "does not verify",
            "one bit of S flipped",
        )
    )
    out.append(
        vector(
            "msg-bit-flip",
            signer.pub,
            good,
            bytes([msg[0] ^ 1]) + msg[1:],
            "reject",
            "does not verify",
            "one bit of the message flipped",
        )
    )
    out.append(
        vector(
            "wrong-key",
            Signer(hashlib.sha256(b"another key").digest()).pub,
            good,
            msg,
            "reject",
            "does not verify",
            "a valid signature under another key",
        )
    )
    out.append(
        vector(
            "sig-63-bytes", signer.pub, good[:63], msg, "reject", "64 bytes", "signature truncated"
        )
    )
    out.append(
        vector(
            "sig-65-bytes",
            signer.pub,
            good + b"\x00",
            msg,
            "reject",
            "64 bytes",
            "signature with a trailing byte",
        )
    )
    out.append(
        vector("key-31-bytes", signer.pub[:31], good, msg, "reject", "32 bytes", "key truncated")
    )
    out.append(
        vector(
            "key-33-bytes",
            signer.pub + b"\x00",
            good,
            msg,
            "reject",
            "32 bytes",
            "key with a trailing byte",
        )
    )
    assert len({v["name"] for v in out}) == len(out)
    return out


def render() -> bytes:
    return (json.dumps(vectors(), indent=2) + "\n").encode("utf-8")


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    (out_dir / "vectors.json").write_bytes(render())


if __name__ == "__main__":
    main()
