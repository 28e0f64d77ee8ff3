"""The Ed25519 acceptance rule: the one check of every signature in the ledger.

docs/spec.md, "The Ed25519 acceptance rule", fixes which Ed25519 signatures are
valid, because RFC 8032 implementations disagree on non-canonical encodings,
points of small or mixed order and unreduced scalars, and because some
"valid" signatures prove nothing: OpenSSL (and so ``cryptography``) accepts the
identity key ``01 00..00`` with R = identity and S = 0 for *every* message.

A public key A (32 bytes) is acceptable if and only if:

1. it is 32 bytes long;
2. it is a canonical encoding (RFC 8032, section 5.1.3): y < p, it decodes to a
   curve point, and it does not encode x = 0 with the sign bit set;
3. the point is not of small order ([8]A is not the identity); and
4. the point is in the prime-order subgroup ([L]A is the identity).

A signature R || S (64 bytes) of M under an acceptable key is valid if and only if:

5. S < L (little-endian);
6. R is not an encoding, canonical or not, of one of the 8 small-order points; and
7. the cofactorless equation of RFC 8032, section 5.1.7 holds with R compared as
   bytes: ``cryptography`` (OpenSSL) checks exactly this.

Steps 1-4 run here in pure Python (integer arithmetic on edwards25519 in extended
coordinates) once per key: the verdict is cached (:data:`KEY_CACHE_SIZE` keys,
about 0.4 KB each), so a key that signs many records pays its 1-2 ms check once.
Steps 5 and 6 are a comparison and a set lookup: :func:`verify` runs at about 99 %
of the rate of OpenSSL's bare verification (``python -m bench.ed25519``).

The accelerator. PyNaCl (libsodium) is a base dependency of the package, for speed
(``bench/supporters.py``: its point validation does steps 2-4 12 to 22 times faster
than the pure Python here, which matters on a supporters list, where nearly every
signatory brings a new key; its verification is 1.4 to 1.9 times faster than
OpenSSL's). The rule never depends on it: :func:`verify` uses it for two things only:

* step 7, once steps 1-6 have passed here: libsodium's ``crypto_sign_open``
  checks the same cofactorless equation with R compared as bytes (it also
  rejects S >= L, small-order R and small-order or non-canonical keys, which
  cannot reach it); and
* a fast *acceptance* of steps 2-4: ``crypto_core_ed25519_is_valid_point`` is
  true exactly for canonical encodings of points of the prime-order subgroup
  other than the identity. A key it rejects still goes through the pure-Python
  check, which names the reason.

The accelerator is loaded by name (:func:`importlib.import_module`, never an
``import`` statement), only on first use, and only after a self-test on the edge
cases of the rule (small-order, mixed-order and non-canonical keys, a valid and an
invalid signature) gives our answers; otherwise (PyNaCl missing or failing the
self-test), or with the environment variable ``LEDGER_ED25519_ACCEL=0``,
``cryptography`` and the pure-Python check do everything.
``tests/test_ed25519_accel.py`` compares both backends on every edge-case vector;
:func:`backend` says which one is in use.

>>> pub = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
>>> sig = bytes.fromhex(
...     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
...     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
>>> verify(pub, sig, b"")  # RFC 8032, section 7.1, test 1
>>> verify(bytes([1]) + bytes(31), bytes([1]) + bytes(63), b"anything")
Traceback (most recent call last):
ledger.core.errors.SignatureError: field 'public_key': public key has small order
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.core.errors import FormatError, SignatureError

__all__ = [
    "ACCEL_ENV",
    "KEY_CACHE_SIZE",
    "SMALL_ORDER_ENCODINGS",
    "L",
    "backend",
    "check_public_key",
    "key_hash",
    "use_accelerator",
    "verify",
]

P = 2**255 - 19
"""The field prime."""
L = 2**252 + 27742317777372353535851937790883648493
"""The order of the base point (and of the prime-order subgroup)."""
_D = -121665 * pow(121666, -1, P) % P
_D2 = 2 * _D % P
_SQRT_M1 = pow(2, (P - 1) // 4, P)

KEY_CACHE_SIZE = 1 << 16
"""Verdicts kept (accepted keys and rejection reasons), least recently used first out."""

# Extended coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, xy = T/Z, on -x^2 + y^2 = 1 + d x^2 y^2
# (Hisil, Wong, Carter, Dawson 2008). Speed matters little: this runs once per key.
_Point = tuple[int, int, int, int]
_IDENTITY: _Point = (0, 1, 1, 0)


def _add(p1: _Point, p2: _Point) -> _Point:
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * _D2 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _double(p1: _Point) -> _Point:
    x1, y1, z1, _ = p1
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1)
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _multiply(k: int, point: _Point) -> _Point:
    result = _IDENTITY
    for bit in bin(k)[2:]:
        result = _double(result)
        if bit == "1":
            result = _add(result, point)
    return result


def _is_identity(point: _Point) -> bool:
    x, y, z, _ = point
    return x % P == 0 and (y - z) % P == 0


def _decode(encoding: bytes, *, strict: bool = True) -> _Point | str:
    """RFC 8032, section 5.1.3: the point, or why the encoding is rejected.

    ``strict=False`` reduces y modulo p and accepts x = 0 with the sign bit set, as
    lenient decoders do: it tells which encodings *some* implementation reads as a point.
    """
    n = int.from_bytes(encoding, "little")
    sign = n >> 255
    y = n & ((1 << 255) - 1)
    if y >= P:
        if strict:
            return "non-canonical encoding (y >= p)"
        y -= P
    # x^2 = u / v; candidate root x = u v^3 (u v^7)^((p - 5) / 8).
    u = (y * y - 1) % P
    v = (_D * y * y + 1) % P
    v3 = v * v * v % P
    x = u * v3 * pow(u * v3 * v3 * v % P, (P - 5) // 8, P) % P
    vxx = v * x * x % P
    if vxx == (-u) % P:
        x = x * _SQRT_M1 % P
    elif vxx != u:
        return "not a point on the curve"
    if x == 0 and sign:
        if strict:
            return "non-canonical encoding (x = 0 with the sign bit set)"
        sign = 0
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _encode(point: _Point) -> bytes:
    x, y, z, _ = point
    zi = pow(z, -1, P)
    x, y = x * zi % P, y * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _small_order_encodings() -> tuple[frozenset[bytes], _Point]:
    """Every 32-byte string that some decoder reads as a point of order dividing 8.

    The 8 small-order points have 5 distinct y (0, 1, p - 1 and the two y of the
    order-8 points); y = 0 and y = 1 have a second spelling y + p < 2^255; each y is
    written with either sign bit: 7 y values times 2 signs = 14 encodings, the same
    y values as libsodium's blocklist (tests/test_ed25519.py checks both).
    """
    # The torsion component [L]Q of a point Q has order 8 for half of all Q: find one.
    y = 2
    while True:
        q = _decode(y.to_bytes(32, "little"))
        if not isinstance(q, str):
            t = _multiply(L, q)
            if not _is_identity(_double(_double(t))):
                break
        y += 1
    points = [_IDENTITY]
    for _ in range(7):
        points.append(_add(points[-1], t))
    ys = {int.from_bytes(_encode(pt), "little") & ((1 << 255) - 1) for pt in points}
    ys |= {y + P for y in ys if y + P < 1 << 255}
    encodings = frozenset((y | s << 255).to_bytes(32, "little") for y in ys for s in (0, 1))
    return encodings, t


SMALL_ORDER_ENCODINGS, _TORSION_8 = _small_order_encodings()
"""The 14 encodings of small-order points, canonical or not; rejected as R (step 6)."""


def _check_key_math(public_key: bytes) -> str | None:
    """Steps 1-4 of the rule: ``None`` if the key is acceptable, else the reason."""
    if len(public_key) != 32:
        return f"public key must be 32 bytes, not {len(public_key)}"
    point = _decode(public_key)
    if isinstance(point, str):
        return f"public key is a {point}" if point.startswith("non") else f"public key is {point}"
    if _is_identity(_double(_double(_double(point)))):
        return "public key has small order"
    if not _is_identity(_multiply(L, point)):
        return "public key is not in the prime-order subgroup (mixed order)"
    return None


# --- the optional accelerator (see the module docstring) -----------------------------

ACCEL_ENV = "LEDGER_ED25519_ACCEL"
"""Set to ``0`` to never use the accelerator."""


@dataclass(frozen=True, slots=True)
class _Accel:
    name: str
    is_valid_point: Callable[[bytes], bool]
    sign_open: Callable[[bytes, bytes], bytes]
    error: type[Exception]


_RFC8032_KEY = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
_RFC8032_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def _self_test_keys() -> list[bytes]:
    """Keys that the accelerator must reject (the rule's edge cases for steps 2-4)."""
    valid = _decode(_RFC8032_KEY)
    assert not isinstance(valid, str)
    keys = sorted(SMALL_ORDER_ENCODINGS)
    keys.append(_encode(_add(valid, _TORSION_8)))  # mixed order
    keys.append(_encode(_add(valid, _double(_double(_TORSION_8)))))  # mixed, torsion of order 2
    keys.append(((P + 2) | 1 << 255).to_bytes(32, "little"))  # y >= p
    keys.append((2).to_bytes(32, "little"))  # y = 2 is on no point (a non-square)
    return keys


def _load_accelerator() -> _Accel | None:
    """libsodium through PyNaCl if installed and it passes the self-test, else None."""
    if os.environ.get(ACCEL_ENV, "1") == "0":
        return None
    try:  # by name: ledger/ depends on nothing but cryptography (tests/test_import_boundary.py)
        nacl = importlib.import_module("nacl")
        bindings = importlib.import_module("nacl.bindings")
        exceptions = importlib.import_module("nacl.exceptions")
        accel = _Accel(
            f"libsodium (PyNaCl {getattr(nacl, '__version__', '?')})",
            bindings.crypto_core_ed25519_is_valid_point,
            bindings.crypto_sign_open,
            exceptions.BadSignatureError,
        )
        if not bindings.has_crypto_core_ed25519:
            return None
    except (ImportError, AttributeError):
        return None
    try:
        ok = accel.is_valid_point(_RFC8032_KEY) and not any(
            accel.is_valid_point(k) or _check_key_math(k) is None for k in _self_test_keys()
        )
        ok = ok and accel.sign_open(_RFC8032_SIG, _RFC8032_KEY) == b""
        try:
            accel.sign_open(_RFC8032_SIG[:63] + b"\x0c", _RFC8032_KEY)
            ok = False
        except accel.error:
            pass
    except Exception:  # any surprise from a foreign library: do without it
        return None
    return accel if ok else None


_accel_state: list[_Accel | None] = []  # [] until first use, then [the accelerator or None]


def _accelerator() -> _Accel | None:
    if not _accel_state:
        _accel_state.append(_load_accelerator())
    return _accel_state[0]


def use_accelerator(enabled: bool) -> bool:
    """Use the accelerator if ``enabled`` and available (the default), or never.

    Returns whether it is now in use. For tests and benchmarks; clears the key cache.
    """
    _accel_state.clear()
    _accel_state.append(_load_accelerator() if enabled else None)
    _verdict.cache_clear()
    return _accel_state[0] is not None


def backend() -> str:
    """Which implementation checks the equation (step 7): "cryptography" or "libsodium (...)"."""
    accel = _accelerator()
    return "cryptography" if accel is None else accel.name


# --- the rule --------------------------------------------------------------------------


@functools.lru_cache(maxsize=KEY_CACHE_SIZE)
def _verdict(public_key: bytes) -> Ed25519PublicKey | str:
    """The cryptography key object of an acceptable key, or why it is rejected (cached)."""
    accel = _accelerator()
    if accel is None or len(public_key) != 32 or not accel.is_valid_point(public_key):
        reason = _check_key_math(public_key)
        if reason is not None:
            return reason
    return Ed25519PublicKey.from_public_bytes(public_key)


def check_public_key(public_key: bytes) -> Ed25519PublicKey:
    """Apply steps 1-4 of the acceptance rule; return the key ready to verify with.

    Raises :class:`SignatureError` naming the failed step.
    """
    verdict = _verdict(bytes(public_key))
    if isinstance(verdict, str):
        raise SignatureError(verdict, field="public_key")
    return verdict


def verify(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Check ``signature`` of ``message`` by ``public_key`` under the acceptance rule.

    Returns nothing; raises :class:`SignatureError` if the key or the signature is
    not acceptable.
    """
    if type(public_key) is not bytes:  # the cache and the set lookup need hashable bytes
        public_key = bytes(public_key)
    if type(signature) is not bytes:
        signature = bytes(signature)
    verdict = _verdict(public_key)
    if isinstance(verdict, str):
        raise SignatureError(verdict, field="public_key")
    if len(signature) != 64:
        raise SignatureError(
            "signature must be 64 bytes", field="signature", expected=64, found=len(signature)
        )
    # S < 2^252 < L when the top byte is below 0x10: the integer compare is rarely needed.
    if signature[63] >= 0x10 and int.from_bytes(signature[32:64], "little") >= L:
        raise SignatureError("signature S is not reduced (S >= L)", field="signature")
    if signature[:32] in SMALL_ORDER_ENCODINGS:
        raise SignatureError("signature R is a small-order point", field="signature")
    accel = _accel_state[0] if _accel_state else _accelerator()
    if accel is not None:
        try:
            accel.sign_open(signature + message, public_key)
        except accel.error:
            raise SignatureError("signature does not verify", field="signature") from None
        return
    try:
        verdict.verify(signature, message)
    except InvalidSignature:
        raise SignatureError("signature does not verify", field="signature") from None


def key_hash(public_key: bytes) -> bytes:
    """SHA-256 of the raw 32-byte key: the signatory id of docs/spec.md, "Key hash"."""
    if len(public_key) != 32:
        raise FormatError(
            "public key must be 32 bytes", field="public_key", expected=32, found=len(public_key)
        )
    return hashlib.sha256(public_key).digest()
