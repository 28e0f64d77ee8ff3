"""The optional Ed25519 accelerator (libsodium through PyNaCl) gives the rule's answers.

``ledger.core.ed25519`` uses libsodium, when installed, for two things: accepting keys
(``crypto_core_ed25519_is_valid_point``, steps 2-4 of the rule) and checking the
equation (``crypto_sign_open``, step 7). These tests compare the rule with the
accelerator and the rule with ``cryptography`` alone on every edge case: the
committed vectors, small-order keys and R, non-canonical keys, R and S, S >= L,
mixed-order keys and R (the classes of "Taming the many EdDSAs": signatures that
pass the cofactored equation only, or pass with an unreduced S or a non-canonical
R or A), bit flips, and random input. Both must give the same verdict, with the
same error. They are skipped when PyNaCl is not installed (it is not a dependency).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import ed25519
from ledger.core.errors import SignatureError

nacl_bindings = pytest.importorskip("nacl.bindings")

VECTORS_DIR = Path(__file__).resolve().parent / "vectors" / "ed25519"
VECTORS: list[dict[str, Any]] = json.loads((VECTORS_DIR / "vectors.json").read_text("utf-8"))
P = 2**255 - 19
L = ed25519.L


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ed25519_vectors", VECTORS_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
TORSION = GEN.small_order_points()  # TORSION[1] has order 8
SIGNER = GEN.Signer(hashlib.sha256(b"test_ed25519_accel").digest())
MSG = b"an endorsement body\n"
SIG = SIGNER.sign(MSG)

Outcome = tuple[str, str | None] | None


def _outcome(key: bytes, sig: bytes, msg: bytes) -> Outcome:
    try:
        ed25519.verify(key, sig, msg)
    except SignatureError as e:
        return (e.message, e.field)
    return None


def _both(key: bytes, sig: bytes, msg: bytes) -> tuple[Outcome, Outcome]:
    """The verdict of the rule with cryptography alone, then with the accelerator."""
    assert not ed25519.use_accelerator(False)
    plain = _outcome(key, sig, msg)
    assert ed25519.use_accelerator(True), "PyNaCl is installed but the accelerator is not used"
    return plain, _outcome(key, sig, msg)


@pytest.fixture(autouse=True)
def _restore_backend() -> Iterator[None]:
    yield
    ed25519.use_accelerator(True)


def _cofactored_only(pub_point: Any, a: int, torsion: Any, msg: bytes) -> tuple[bytes, bytes]:
    """(key, signature) whose cofactored equation holds and cofactorless fails:
    R = [r]B + T with T of small order, S = r + h a."""
    r = 12345678901234567890
    r_enc = GEN.enc(GEN.add(GEN.mul(r, GEN.BASE), torsion))
    pub = GEN.enc(pub_point)
    h = GEN.sha512_int(r_enc, pub, msg) % L
    return pub, r_enc + ((r + h * a) % L).to_bytes(32, "little")


# --- the key check (steps 2-4) ------------------------------------------------------


def _non_canonical_encodings() -> list[bytes]:
    """Every encoding with y >= p (y - p in 0..18), both signs."""
    return [((P + k) | s << 255).to_bytes(32, "little") for k in range(19) for s in (0, 1)]


def _edge_keys() -> list[bytes]:
    keys = sorted(ed25519.SMALL_ORDER_ENCODINGS) + _non_canonical_encodings()
    for j in range(1, 8):  # mixed order: a prime-order point plus each torsion point
        keys.append(GEN.enc(GEN.add(SIGNER.point, TORSION[j])))
    for y in range(0, 40):  # small y: on the curve or not, both signs, x = 0 with sign set
        keys.extend((y | s << 255).to_bytes(32, "little") for s in (0, 1))
    keys.append(SIGNER.pub)
    keys.append(bytes(32))
    keys.append(b"\xff" * 32)
    return keys


@pytest.mark.parametrize("key", _edge_keys(), ids=bytes.hex)
def test_libsodium_key_check_agrees_on_edge_keys(key: bytes) -> None:
    assert nacl_bindings.crypto_core_ed25519_is_valid_point(key) == (
        ed25519._check_key_math(key) is None
    )


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**256), st.integers(min_value=0, max_value=7))
def test_libsodium_key_check_agrees_on_prime_and_mixed_order_points(k: int, j: int) -> None:
    key = GEN.enc(GEN.add(GEN.mul(k, GEN.BASE), TORSION[j]))
    assert nacl_bindings.crypto_core_ed25519_is_valid_point(key) == (
        ed25519._check_key_math(key) is None
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_libsodium_key_check_agrees_on_random_bytes(key: bytes) -> None:
    assert nacl_bindings.crypto_core_ed25519_is_valid_point(key) == (
        ed25519._check_key_math(key) is None
    )


# --- the whole rule, both backends ----------------------------------------------------


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_backends_agree_on_committed_vectors(v: dict[str, Any]) -> None:
    key, sig, msg = (bytes.fromhex(v[f]) for f in ("key", "sig", "msg"))
    plain, accel = _both(key, sig, msg)
    assert plain == accel
    assert (plain is None) == (v["expected"] == "accept")


def _edge_cases() -> Iterator[tuple[str, bytes, bytes, bytes]]:
    pub, r_enc, s = SIGNER.pub, SIG[:32], int.from_bytes(SIG[32:], "little")
    yield "valid", pub, SIG, MSG
    for enc in sorted(ed25519.SMALL_ORDER_ENCODINGS):
        yield f"small-order-key-{enc.hex()}", enc, SIG, MSG
        yield f"small-order-r-{enc.hex()}", pub, enc + SIG[32:], MSG
        yield f"small-order-key-and-r-s0-{enc.hex()}", enc, enc + bytes(32), MSG
    for enc in _non_canonical_encodings():
        yield f"non-canonical-key-{enc.hex()}", enc, SIG, MSG
        yield f"non-canonical-r-{enc.hex()}", pub, enc + SIG[32:], MSG
    for bad in (s + L, L, L + 1, 2**253, 2**256 - 1, s + 15 * L):
        yield f"s-unreduced-{bad:x}", pub, r_enc + (bad % 2**256).to_bytes(32, "little"), MSG
    yield "s-l-minus-1", pub, r_enc + (L - 1).to_bytes(32, "little"), MSG
    yield "s-zero", pub, r_enc + bytes(32), MSG
    negated_r = bytes(r_enc[:31]) + bytes([r_enc[31] ^ 0x80])
    yield "r-negated", pub, negated_r + SIG[32:], MSG
    for j in range(1, 8):
        # Prime-order key, mixed-order R: the cofactored equation holds, ours must not.
        key, sig = _cofactored_only(SIGNER.point, SIGNER.a, TORSION[j], MSG)
        yield f"mixed-order-r-{j}", key, sig, MSG
        # Mixed-order key with R carrying torsion: a cheater's signature.
        mixed = GEN.add(SIGNER.point, TORSION[j])
        key, sig = _cofactored_only(mixed, SIGNER.a, TORSION[j], MSG)
        yield f"mixed-order-key-and-r-{j}", key, sig, MSG
        key = GEN.enc(mixed)
        yield f"mixed-order-key-own-hash-{j}", key, SIGNER.sign(MSG, key), MSG
    # Non-canonical R spelling a real point (y + p for y < 19): a point with such a
    # small y has an unknown logarithm, so the equation fails; both must say so.
    for y in range(19):
        if GEN.recover_x(y, 0) is not None:
            yield f"r-y-plus-p-{y}", pub, (y + P).to_bytes(32, "little") + SIG[32:], MSG
    other = GEN.Signer(hashlib.sha256(b"another key").digest())
    yield "wrong-key", other.pub, SIG, MSG
    yield "empty-message", pub, SIGNER.sign(b""), b""
    yield "long-message", pub, SIGNER.sign(MSG * 500), MSG * 500


EDGE_CASES = list(_edge_cases())


@pytest.mark.parametrize(
    ("key", "sig", "msg"), [c[1:] for c in EDGE_CASES], ids=[c[0] for c in EDGE_CASES]
)
def test_backends_agree_on_edge_cases(key: bytes, sig: bytes, msg: bytes) -> None:
    plain, accel = _both(key, sig, msg)
    assert plain == accel


def test_edge_cases_exercise_both_verdicts() -> None:
    verdicts = [_both(k, s, m)[0] for _, k, s, m in EDGE_CASES]
    assert verdicts.count(None) >= 3  # valid, empty and long message
    reasons = {v[0] for v in verdicts if v is not None}
    assert {
        "public key has small order",
        "signature R is a small-order point",
        "signature S is not reduced (S >= L)",
        "signature does not verify",
        "public key is not in the prime-order subgroup (mixed order)",
    } <= reasons


@pytest.mark.parametrize("bit", range(0, 512, 3))
def test_backends_agree_on_signature_bit_flips(bit: int) -> None:
    sig = bytearray(SIG)
    sig[bit // 8] ^= 1 << (bit % 8)
    plain, accel = _both(SIGNER.pub, bytes(sig), MSG)
    assert plain == accel
    assert plain is not None


@settings(max_examples=100, deadline=None)
@given(
    st.binary(min_size=32, max_size=32),
    st.binary(max_size=300),
    st.sampled_from(["none", "r", "s", "msg", "random-r"]),
    st.integers(min_value=0, max_value=255),
)
def test_backends_agree_on_random_signatures(seed: bytes, msg: bytes, damage: str, n: int) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    pub = key.public_key().public_bytes_raw()
    sig = key.sign(msg)
    if damage == "r":
        sig = bytes([sig[0] ^ (n | 1)]) + sig[1:]
    elif damage == "s":
        sig = sig[:32] + bytes([sig[32] ^ (n | 1)]) + sig[33:]
    elif damage == "msg":
        msg = msg + bytes([n])
    elif damage == "random-r":
        sig = hashlib.sha256(seed + bytes([n])).digest() + sig[32:]
    plain, accel = _both(pub, sig, msg)
    assert plain == accel
    assert (plain is None) == (damage == "none")


def test_accelerator_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ed25519.ACCEL_ENV, "0")
    assert not ed25519.use_accelerator(True)
    assert ed25519.backend() == "cryptography"
    monkeypatch.delenv(ed25519.ACCEL_ENV)
    assert ed25519.use_accelerator(True)
    assert ed25519.backend().startswith("libsodium")
