"""The Ed25519 acceptance rule (docs/spec.md, "The Ed25519 acceptance rule").

The vectors in tests/vectors/ed25519/ come from an independent implementation
(generate.py); the property tests compare the key check with that implementation
on random input.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import ed25519
from ledger.core.errors import FormatError, SignatureError

VECTORS_DIR = Path(__file__).resolve().parent / "vectors" / "ed25519"
VECTORS: list[dict[str, Any]] = json.loads((VECTORS_DIR / "vectors.json").read_text("utf-8"))
P = 2**255 - 19


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ed25519_vectors", VECTORS_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()

KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test_ed25519").digest())
PUB = KEY.public_key().public_bytes_raw()
MSG = b"a message\n"
SIG = KEY.sign(MSG)


def test_committed_vectors_are_the_generator_output() -> None:
    assert (VECTORS_DIR / "vectors.json").read_bytes() == GEN.render()


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(v: dict[str, Any]) -> None:
    key, sig, msg = (bytes.fromhex(v[f]) for f in ("key", "sig", "msg"))
    if v["expected"] == "accept":
        ed25519.verify(key, sig, msg)
    else:
        with pytest.raises(SignatureError) as exc:
            ed25519.verify(key, sig, msg)
        assert v["reason"] in str(exc.value)


def test_vectors_cover_the_required_cases() -> None:
    names = {v["name"] for v in VECTORS}
    assert {"rfc8032-test-1", "rfc8032-test-2", "rfc8032-test-3", "valid"} <= names
    assert {
        "identity-key-universal-signature",
        "mixed-order-key",
        "s-plus-l",
        "s-equals-l",
    } <= names
    assert sum(n.startswith("small-order-key-") for n in names) == 14
    assert sum(n.startswith("small-order-r-") for n in names) == 14


# libsodium's blocklist of small-order y coordinates (sign bit masked): 0 and 1, the two y of the
# order-8 points, p - 1, p and p + 1. With both sign bits that is every small-order spelling.
LIBSODIUM_SMALL_ORDER_Y = [
    0,
    1,
    int.from_bytes(
        bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"
    ),
    int.from_bytes(
        bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"), "little"
    ),
    P - 1,
    P,
    P + 1,
]


def test_small_order_encodings_match_libsodium_blocklist() -> None:
    expected = {
        (y | s << 255).to_bytes(32, "little") for y in LIBSODIUM_SMALL_ORDER_Y for s in (0, 1)
    }
    assert expected == ed25519.SMALL_ORDER_ENCODINGS
    assert {e for _, e, _ in GEN.small_order_encodings()} == expected


@pytest.mark.parametrize("encoding", sorted(ed25519.SMALL_ORDER_ENCODINGS), ids=bytes.hex)
def test_small_order_encoding_rejected_as_key_and_as_r(encoding: bytes) -> None:
    with pytest.raises(SignatureError):
        ed25519.check_public_key(encoding)
    with pytest.raises(SignatureError, match="R is a small-order point"):
        ed25519.verify(PUB, encoding + SIG[32:], MSG)


def test_valid_signature_accepted_and_key_returned() -> None:
    ed25519.verify(PUB, SIG, MSG)
    ed25519.verify(bytearray(PUB), memoryview(SIG), MSG)
    ed25519.verify(memoryview(PUB), bytearray(SIG), bytearray(MSG))
    key = ed25519.check_public_key(PUB)
    assert key.public_bytes_raw() == PUB
    key.verify(SIG, MSG)
    assert ed25519.check_public_key(PUB) is key  # the verdict is cached


def test_rejection_is_cached_and_stays_a_rejection() -> None:
    identity = bytes([1]) + bytes(31)
    for _ in range(3):
        with pytest.raises(SignatureError, match="small order") as exc:
            ed25519.verify(identity, identity + bytes(32), b"any message")
        assert exc.value.field == "public_key"


@pytest.mark.parametrize("bit", range(512))
def test_every_signature_bit_flip_rejected(bit: int) -> None:
    sig = bytearray(SIG)
    sig[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SignatureError):
        ed25519.verify(PUB, bytes(sig), MSG)


@pytest.mark.parametrize("bit", range(len(MSG) * 8))
def test_every_message_bit_flip_rejected(bit: int) -> None:
    msg = bytearray(MSG)
    msg[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SignatureError, match="does not verify"):
        ed25519.verify(PUB, SIG, bytes(msg))


def test_s_not_reduced_rejected() -> None:
    s = int.from_bytes(SIG[32:], "little")
    for bad in (s + ed25519.L, ed25519.L, 2**256 - 1):
        with pytest.raises(SignatureError, match="S is not reduced"):
            ed25519.verify(PUB, SIG[:32] + bad.to_bytes(32, "little"), MSG)
    # L - 1 is reduced: the signature then fails only the equation.
    with pytest.raises(SignatureError, match="does not verify"):
        ed25519.verify(PUB, SIG[:32] + (ed25519.L - 1).to_bytes(32, "little"), MSG)


@pytest.mark.parametrize("y", [P, P + 1, P + 18, 2**255 - 1])
def test_non_canonical_key_y_rejected(y: int) -> None:
    for sign in (0, 1):
        with pytest.raises(SignatureError, match="y >= p"):
            ed25519.check_public_key((y | sign << 255).to_bytes(32, "little"))


def test_mixed_order_key_rejected_even_with_an_equation_that_holds() -> None:
    v = next(v for v in VECTORS if v["name"] == "mixed-order-key")
    key, sig, msg = (bytes.fromhex(v[f]) for f in ("key", "sig", "msg"))
    with pytest.raises(SignatureError, match="prime-order subgroup"):
        ed25519.verify(key, sig, msg)


@pytest.mark.parametrize("n", [0, 31, 33, 64])
def test_wrong_key_length_rejected(n: int) -> None:
    with pytest.raises(SignatureError, match="32 bytes"):
        ed25519.verify(PUB[:n] if n <= 32 else PUB + bytes(n - 32), SIG, MSG)


@pytest.mark.parametrize("n", [0, 63, 65, 128])
def test_wrong_signature_length_rejected(n: int) -> None:
    with pytest.raises(SignatureError, match="64 bytes"):
        ed25519.verify(PUB, SIG[:n] if n <= 64 else SIG + bytes(n - 64), MSG)


def test_key_hash() -> None:
    assert ed25519.key_hash(PUB) == hashlib.sha256(PUB).digest()
    with pytest.raises(FormatError):
        ed25519.key_hash(PUB[:31])


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_key_check_agrees_with_independent_implementation(raw: bytes) -> None:
    expected_ok = gen_accepts(raw)
    try:
        ed25519.check_public_key(raw)
    except SignatureError:
        assert not expected_ok
    else:
        assert expected_ok


TORSION = GEN.small_order_points()


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=2**256), st.integers(min_value=0, max_value=7))
def test_key_check_on_prime_and_mixed_order_points(k: int, j: int) -> None:
    point = GEN.add(GEN.mul(k, GEN.BASE), TORSION[j])
    raw = GEN.enc(point)
    accepted = j == 0 and k % ed25519.L != 0
    assert gen_accepts(raw) == accepted
    if accepted:
        assert ed25519.check_public_key(raw).public_bytes_raw() == raw
    else:
        with pytest.raises(SignatureError):
            ed25519.check_public_key(raw)


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=200))
def test_honest_signatures_always_accepted(seed: bytes, msg: bytes) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    pub = key.public_key().public_bytes_raw()
    assert gen_accepts(pub)
    ed25519.verify(pub, key.sign(msg), msg)


def gen_accepts(raw: bytes) -> bool:
    """Steps 1-4 of the rule in the generator's independent arithmetic."""
    n = int.from_bytes(raw, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    if y >= P:
        return False
    x = GEN.recover_x(y, sign)
    if x is None:
        return False
    point = (x, y)
    return bool(GEN.mul(8, point) != GEN.IDENTITY and GEN.mul(ed25519.L, point) == GEN.IDENTITY)
