"""The ``--state`` file's body (ledger.verify.statecodec): round trips, and the bytes of
the v2 file pinned to what main wrote before the codec left ledger.core.state."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from logfactory import ORIGIN, LogFactory

from ledger.core import merkle
from ledger.core.entry import parse_entry
from ledger.core.errors import FormatError
from ledger.core.state import MemoryState
from ledger.verify import statecodec
from ledger.verify.source import DirectorySource
from ledger.verify.statefile import VerifierState, load_state, save_state
from ledger.verify.trust import Trust
from ledger.verify.verifier import verify_log

#: (length, SHA-256) of the state files that main (commit 940c17f, the codec still in
#: ledger/core/state.py) saved for LogFactory().grow(700): after verifying its first 300
#: entries, then after resuming from that file to all 700 (which is also what a fresh
#: run over the 700 saves).
MAIN_WROTE = {
    300: (8771, "85cda100ac2e476aaa8dcd77e16e6704941d166fa14c33511411c65576b38df9"),
    700: (24764, "f6e1e105bb640dd24b37e749257f61a1e34b9f61c9a567a5cd92b7ec150e4036"),
}


def _digest(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


def test_state_file_bytes_are_the_ones_main_wrote(tmp_path: Path) -> None:
    f = LogFactory()
    f.grow(700)
    log = f.write(tmp_path / "log", size=300)
    trust = Trust.from_vkeys([f.log_key.vkey])
    state = tmp_path / "state"
    save_state(state, verify_log(DirectorySource(log), trust).state)
    assert _digest(state.read_bytes()) == MAIN_WROTE[300]

    f.write(log)
    resumed = verify_log(DirectorySource(log), trust, state=load_state(state))
    assert resumed.previous_size == 300
    save_state(state, resumed.state)
    assert _digest(state.read_bytes()) == MAIN_WROTE[700]
    fresh = verify_log(DirectorySource(log), trust).state
    assert _digest(fresh.to_bytes()) == MAIN_WROTE[700]
    # and it reads back to the same bytes
    again = VerifierState.from_bytes(state.read_bytes())
    assert _digest(again.to_bytes()) == MAIN_WROTE[700]


def _replayed(n: int, seed: str = "test") -> MemoryState:
    f = LogFactory(seed=seed)
    f.grow(n)
    st = MemoryState(ORIGIN, max_age_s=None)
    for data in f.entries:
        st.append(parse_entry(data), merkle.leaf_hash(data))
    return st


@pytest.mark.parametrize("n", [0, 1, 2, 30, 257, 800])
def test_codec_round_trip(n: int) -> None:
    st = _replayed(n, seed=f"codec {n}")
    body = statecodec.encode(st)
    chunks = statecodec.chunks(st)
    assert b"".join(chunks) == body
    assert sum(c.nbytes for c in chunks) == len(body)
    copy = statecodec.decode(body)
    assert statecodec.encode(copy) == body
    assert copy.to_dict() == st.to_dict()
    assert copy.summary() == st.summary()
    assert (copy.size, copy.last_leaf_hash, copy.last_time_ms) == (
        st.size,
        st.last_leaf_hash,
        st.last_time_ms,
    )


def test_codec_reads_from_a_file_and_reports_every_byte() -> None:
    st = _replayed(300)
    body = statecodec.encode(st)
    seen = hashlib.sha256()
    raw = statecodec.read_raw(io.BytesIO(body), len(body), seen.update)
    assert seen.digest() == hashlib.sha256(body).digest()
    assert statecodec.encode(statecodec.decode_raw(raw)) == body


def test_codec_refuses_damage() -> None:
    body = statecodec.encode(_replayed(100))
    with pytest.raises(FormatError, match="truncated"):
        statecodec.decode(body[:10])
    with pytest.raises(FormatError, match="do not add up"):
        statecodec.decode(body[:-1])
    with pytest.raises(FormatError, match="do not add up"):
        statecodec.decode(body + b"\0")
