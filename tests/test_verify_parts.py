"""The verifier's parts: the tile-by-tile tree, fork evidence, trust, the saved state."""

from __future__ import annotations

import base64
import contextlib
import gc
import hashlib
import json
import random
import threading
from pathlib import Path

import pytest
from logfactory import (
    ORIGIN,
    LogFactory,
    LogKey,
    private_key,
    public_bytes,
    sign_record,
    write_static_log,
)

from ledger.core import merkle, tiles
from ledger.core.entry import parse_entry
from ledger.core.errors import (
    FormatError,
    LedgerError,
    ProofError,
    RootMismatchError,
    SignatureError,
)
from ledger.core.fork import check_evidence, evidence_bytes, evidence_path, fork_evidence
from ledger.core.note import ALG_COSIGNATURE_V1, make_vkey
from ledger.core.records import (
    Kind,
    Registration,
    Rotation,
    SignedRecord,
    Statement,
    check_signers,
    encode_body,
    parse_record,
    verify_signatures,
)
from ledger.core.state import MemoryState, PairTable
from ledger.verify import statecodec
from ledger.verify import verifier as verify
from ledger.verify.errors import LocatedError
from ledger.verify.pipeline import YOUNG_GC_THRESHOLD, verify_triples, worker_for
from ledger.verify.source import DirectorySource, NotFoundError
from ledger.verify.statefile import StateError, VerifierState, load_state, save_state
from ledger.verify.tiletree import TileTree
from ledger.verify.trust import Trust
from ledger.verify.verifier import verify_log


def _tiles_of(store: merkle.MemoryHashStore, size: int) -> dict[str, bytes]:
    return {t.path: tiles.read_tile_data(t, store) for t in tiles.tiles_for_size(size)}


def _store(size: int) -> merkle.MemoryHashStore:
    store = merkle.MemoryHashStore()
    for i in range(size):
        store.append(merkle.leaf_hash(i.to_bytes(4, "big")))
    return store


SIZES = [*range(0, 20), 255, 256, 257, 511, 512, 513, 65535, 65536, 65537, 70000]


@pytest.mark.parametrize("size", SIZES)
def test_tile_tree_root_and_every_tile(size: int) -> None:
    store = _store(size)
    files = _tiles_of(store, size)
    read: list[str] = []

    def fetch(path: str) -> bytes:
        read.append(path)
        return files[path]

    tree = TileTree(fetch)
    for i in range(size):
        tree.add(merkle.leaf_hash(i.to_bytes(4, "big")))
    assert tree.finish() == store.root()
    assert sorted(read) == sorted(files)  # every tile of the tree, each once
    assert tree.tiles_checked == len(files)


@pytest.mark.parametrize(("first", "second"), [(0, 5), (100, 300), (256, 257), (300, 65600)])
def test_tile_tree_resumes_from_its_levels(first: int, second: int) -> None:
    store = _store(second)
    files = _tiles_of(store, second)
    tree = TileTree(files.__getitem__)
    for i in range(first):
        tree.add(merkle.leaf_hash(i.to_bytes(4, "big")))
    assert tree.root() == merkle.tree_hash(first, store)
    again = TileTree(files.__getitem__, first, tree.levels)
    for i in range(first, second):
        again.add(merkle.leaf_hash(i.to_bytes(4, "big")))
    assert again.finish() == store.root()


def test_tile_tree_rejects_inconsistent_levels() -> None:
    with pytest.raises(FormatError, match="wrong number of hashes"):
        TileTree(lambda p: b"", 300, [[bytes(32)] * 43])
    with pytest.raises(FormatError, match="lacks upper levels"):
        TileTree(lambda p: b"", 300, [[bytes(32)] * 44])


def test_tile_tree_names_the_bad_hash() -> None:
    store = _store(70000)
    files = _tiles_of(store, 70000)
    bad = bytearray(files["tile/1/000"])
    bad[32 * 200] ^= 1
    files["tile/1/000"] = bytes(bad)
    tree = TileTree(files.__getitem__)
    with pytest.raises(RootMismatchError) as e:
        for i in range(70000):
            tree.add(merkle.leaf_hash(i.to_bytes(4, "big")))
    assert e.value.field == "tile/1/000"
    assert e.value.index == 200 * 256
    assert "hash 200 (entries 51200..51455)" in str(e.value)


def test_tile_tree_falls_back_to_the_full_tile() -> None:
    store = _store(768)  # the log grew to 768 and dropped the partial tile of 600
    files = _tiles_of(store, 600)
    del files["tile/0/002.p/88"]
    files["tile/0/002"] = _tiles_of(store, 768)["tile/0/002"]
    tree = TileTree(lambda p: files[p] if p in files else _missing(p))
    for i in range(600):
        tree.add(merkle.leaf_hash(i.to_bytes(4, "big")))
    assert tree.finish() == merkle.tree_hash(600, store)


def _missing(path: str) -> bytes:
    raise NotFoundError(f"{path}: no such file")


def test_evidence_paths_give_both_roots() -> None:
    rng = random.Random(6962)
    store = _store(300)
    for _ in range(300):
        n = rng.randrange(2, 301)
        m = rng.randrange(1, n)
        path = evidence_path(m, n, store)
        proof = merkle.consistency_proof(m, n, store)
        assert path == ([merkle.tree_hash(m, store), *proof] if m & (m - 1) == 0 else proof)
        assert merkle.consistency_path_roots(m, n, path) == (
            merkle.tree_hash(m, store),
            merkle.tree_hash(n, store),
        )
    with pytest.raises(ProofError):
        merkle.consistency_path_roots(3, 7, [])
    with pytest.raises(ProofError):
        merkle.consistency_path_roots(3, 7, [bytes(32)] * 10)


def test_fork_evidence_checks() -> None:
    a = LogFactory()
    a.grow(40)
    b = LogFactory(seed="other history")
    b.grow(60)
    trust = Trust.from_vkeys([a.log_key.vkey])
    # same size, different roots
    ev = fork_evidence(a.checkpoint(20), b.checkpoint(20), [])
    one, two = check_evidence(evidence_bytes(ev), trust)
    assert one.size == two.size == 20
    # different sizes: the path is built from the larger tree
    proof = merkle.consistency_proof(20, 60, b.store)
    ev = fork_evidence(a.checkpoint(20), b.checkpoint(60), proof)
    check_evidence(evidence_bytes(ev), trust)
    # the same path does not prove that b's own checkpoints fork
    ev = fork_evidence(b.checkpoint(20), b.checkpoint(60), proof)
    with pytest.raises(Exception, match="no fork"):
        check_evidence(evidence_bytes(ev), trust)
    # a checkpoint signed by another key is not evidence against this log
    other = LogKey.for_origin(ORIGIN, label="stranger")
    ev = fork_evidence(a.checkpoint(20), other.sign(20, b.root(20)), [])
    with pytest.raises(Exception, match="no valid signature"):
        check_evidence(evidence_bytes(ev), trust)
    with pytest.raises(FormatError):
        check_evidence(b"{}", trust)
    with pytest.raises(FormatError):
        check_evidence(json.dumps({"format": "x"}).encode(), trust)


def test_trust_from_vkeys() -> None:
    key = LogKey.for_origin()
    trust = Trust.from_vkeys([key.vkey])
    assert trust.origin == ORIGIN
    other = LogKey.for_origin("other.example/log")
    with pytest.raises(FormatError, match="different names"):
        Trust.from_vkeys([key.vkey, other.vkey])
    assert Trust.from_vkeys([key.vkey, other.vkey], ORIGIN).origin == ORIGIN
    witness = make_vkey(ORIGIN, public_bytes(private_key("w")), ALG_COSIGNATURE_V1)
    with pytest.raises(FormatError, match="not a witness cosignature key"):
        Trust.from_vkeys([witness])
    with pytest.raises(FormatError):
        Trust.from_vkeys([])


def _split_verdict(record: SignedRecord) -> tuple[str, str] | None:
    """What the verifier's split check (signers here, Ed25519 in workers) says."""
    try:
        check_signers(record)
        for n, sig in enumerate(record.signatures):
            verdict = verify_triples([(0, n, sig.public_key, sig.signature, record.body_bytes)])
            if verdict is not None:
                raise verdict[2]
    except LedgerError as e:
        return type(e).__name__, str(e)
    return None


def _whole_verdict(record: SignedRecord) -> tuple[str, str] | None:
    try:
        verify_signatures(record)
    except LedgerError as e:
        return type(e).__name__, str(e)
    return None


def _variants() -> list[SignedRecord]:
    """Valid records of every type, and ones that break each signature rule."""
    f = LogFactory()
    f.grow(400)
    records = [parse_entry(e).record for e in f.entries]
    vectors = Path(__file__).parent / "vectors" / "records" / "mutations.json"
    for m in json.loads(vectors.read_text()):
        with contextlib.suppress(LedgerError):  # parse-stage mutations never get here
            records.append(parse_record(base64.b64decode(m["data_b64"])))
    k1, k2 = private_key("one"), private_key("two")
    reg = Registration(ORIGIN, 1, public_bytes(k1), "N", Kind.OTHER)
    rot = Rotation(ORIGIN, 1, bytes(32), public_bytes(k2))
    st = Statement(ORIGIN, 1, "T", (bytes(32), bytes(range(32))), "x\n")
    records += [
        sign_record(reg, [k2]),  # registration signed by another key
        sign_record(rot, [k1, k1]),  # one key twice
        sign_record(rot, [k2, k1]),  # second signature not by new_key
        sign_record(st, [k1, k2]),
        sign_record(st, [k2, k2]),
        SignedRecord(reg, encode_body(reg), ()),  # a draft
        SignedRecord(st, encode_body(st), sign_record(st, [k1, k2]).signatures[:1]),
    ]
    return records


def test_split_signature_check_agrees_with_verify_signatures() -> None:
    verdicts = [(_split_verdict(r), _whole_verdict(r)) for r in _variants()]
    assert all(split == whole for split, whole in verdicts), [v for v in verdicts if v[0] != v[1]]
    assert sum(whole is not None for _, whole in verdicts) >= 10  # the cases do fail


def test_each_key_goes_to_one_worker() -> None:
    f = LogFactory()
    f.grow(300)
    keys = [s.public_key for e in f.entries for s in parse_entry(e).record.signatures]
    assert all(worker_for(k, 2) == worker_for(k, 2) for k in keys)
    counts = [sum(worker_for(k, 2) == w for k in set(keys)) for w in (0, 1)]
    assert min(counts) > len(set(keys)) // 4


def _replayed(n: int) -> tuple[LogFactory, MemoryState]:
    """A generated log of ``n`` entries and its replayed state."""
    f = LogFactory()
    f.grow(n)
    st = MemoryState(ORIGIN, max_age_s=None)
    for data in f.entries:
        st.append(parse_entry(data), merkle.leaf_hash(data))
    return f, st


def test_memory_state_round_trip() -> None:
    f, st = _replayed(1000)
    copy = MemoryState.from_dict(json.loads(json.dumps(st.to_dict())))
    assert copy.summary() == st.summary()
    assert copy.to_dict() == st.to_dict()
    # the copy goes on exactly as the original
    f.grow(200)
    for data in f.entries[1000:]:
        e = parse_entry(data)
        assert copy.append(e, merkle.leaf_hash(data)) == st.append(e, merkle.leaf_hash(data))
    assert copy.summary() == st.summary()


def test_pair_table_is_a_map(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PairTable, "MERGE_AT", 7)  # merge often
    rng = random.Random(2)
    table, model = PairTable(), {}
    for _ in range(3000):
        key, value = rng.randrange(500) << 32 | rng.randrange(50), rng.randrange(2**64)
        table[key] = value
        model[key] = value
        probe = rng.randrange(500) << 32 | rng.randrange(50)
        assert table.get(probe) == model.get(probe)
    assert len(table) == len(model)
    keys, values = table.arrays()
    assert list(keys) == sorted(model)
    assert dict(zip(keys, values, strict=True)) == model
    again = PairTable.from_arrays(keys, values)
    assert all(again.get(k) == v for k, v in model.items())
    with pytest.raises(ValueError, match="strictly increasing"):
        PairTable.from_arrays(keys[::-1], values)


def test_memory_state_bytes_round_trip() -> None:
    """Rotated and revoked keys, inactive signatories, withdrawn pairs survive bytes."""
    f, st = _replayed(1000)
    d = st.to_dict()
    assert d["revoked_keys"] and any(len(s[6]) > 1 for s in d["signatories"])
    assert any(not s.active for s in st.signatories.values())
    pairs = [(sig, stmt) for sig in st.signatories for stmt in st.statements]
    infos = [st.get_pair(sig, stmt) for sig, stmt in pairs]
    assert any(i is not None and not i.active for i in infos)
    for max_age_s in (None, 3600):
        st.max_age_s = max_age_s
        copy = statecodec.decode(statecodec.encode(st))
        assert copy.max_age_s == max_age_s
        assert copy.to_dict() == st.to_dict()
        assert copy.summary() == st.summary()
        assert statecodec.encode(copy) == statecodec.encode(st)
    assert [copy.get_pair(sig, stmt) for sig, stmt in pairs] == infos
    for kh in st._keys:
        assert copy.get_key(kh) == st.get_key(kh)
    # the copy goes on exactly as the original
    st.max_age_s = copy.max_age_s = None
    f.grow(200)
    for data in f.entries[1000:]:
        e = parse_entry(data)
        assert copy.append(e, merkle.leaf_hash(data)) == st.append(e, merkle.leaf_hash(data))
    assert copy.to_dict() == st.to_dict()
    assert statecodec.decode(statecodec.encode(MemoryState(ORIGIN))).to_dict() == (
        MemoryState(ORIGIN).to_dict()
    )


_SMALL_STATE: list[VerifierState] = []


def _small_state(tmp_path: Path) -> VerifierState:
    if not _SMALL_STATE:
        f = LogFactory()
        f.grow(300)
        result = verify_log(
            DirectorySource(f.write(tmp_path / "log")), Trust.from_vkeys([f.log_key.vkey])
        )
        assert result.state is not None
        _SMALL_STATE.append(result.state)
    return _SMALL_STATE[0]


def _split(data: bytes) -> tuple[dict[str, object], bytes]:
    """A v2 state file's header, parsed, and its body."""
    end = data.index(b"\n") + 1
    return json.loads(data[:end]), data[end:-32]


def _seal(header: dict[str, object], body: bytes) -> bytes:
    """A v2 state file of that header and body, with the right SHA-256."""
    line = json.dumps(header).encode() + b"\n"
    return line + body + hashlib.sha256(line + body).digest()


def _refused(data: bytes, field: str | None = None) -> StateError:
    with pytest.raises(StateError) as info:
        VerifierState.from_bytes(data)
    if field is not None:
        assert info.value.field == field, info.value
    return info.value


def test_state_file_round_trip(tmp_path: Path) -> None:
    state = _small_state(tmp_path)
    data = state.to_bytes()
    assert data.startswith(b'{"format":"endorsement-ledger/verifier-state/v2",')
    header, body = _split(data)
    assert header["body_length"] == len(body) and body == statecodec.encode(state.replay)
    again = VerifierState.from_bytes(data)
    assert again.to_bytes() == data
    assert again.replay.to_dict() == state.replay.to_dict()
    save_state(tmp_path / "state", state)
    assert (tmp_path / "state").read_bytes() == data
    loaded = load_state(tmp_path / "state")
    assert loaded is not None and loaded.to_bytes() == data
    assert load_state(tmp_path / "nothing") is None


def test_state_file_v1_is_refused(tmp_path: Path) -> None:
    """The JSON v1 format of the development releases is not read any more."""
    state = _small_state(tmp_path)
    doc = {
        "format": "endorsement-ledger/verifier-state/v1",
        "origin": state.origin,
        "checkpoint": state.checkpoint.decode(),
        "size": state.size,
        "root": state.root.hex(),
        "tiles": [[h.hex() for h in level] for level in state.tiles],
        "replay": state.replay.to_dict(),
    }
    v1 = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
    assert _refused(v1, "format").found == "endorsement-ledger/verifier-state/v1"
    # longer than a header may be: no header line at all
    doc["origin_padding"] = "x" * (1 << 20)
    (tmp_path / "old").write_bytes(json.dumps(doc).encode() + b"\n")
    with pytest.raises(StateError, match="no header line"):
        load_state(tmp_path / "old")


def test_state_file_rejects_garbage() -> None:
    for data in (
        b"",
        b"\n",
        b"[]",
        b"[]\n",
        b'{"format": "other"}',
        b'{"format": "other"}\n',
        b'{"format": "endorsement-ledger/verifier-state/v1"}',
        b'{"format": "endorsement-ledger/verifier-state/v2"}\n',
        b"[" * 100_000 + b"\n",
        b"\xff\n",
    ):
        _refused(data)


def test_state_file_truncated_or_extended(tmp_path: Path) -> None:
    data = _small_state(tmp_path).to_bytes()
    for n in range(len(data)):
        _refused(data[:n])
    for extra in (b"\0", b"\n", data):
        _refused(data + extra, "body_length")


def test_state_file_any_flipped_byte(tmp_path: Path) -> None:
    data = bytearray(_small_state(tmp_path).to_bytes())
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            data[i] ^= bit
            _refused(bytes(data))
            data[i] ^= bit


def test_state_file_header_checks(tmp_path: Path) -> None:
    data = _small_state(tmp_path).to_bytes()
    header, body = _split(data)
    _refused(data[:-1] + bytes([data[-1] ^ 1]), "sha256")
    for name, value, field in (
        ("body_length", len(body) + 1, "body_length"),
        ("body_length", len(body) - 1, "body_length"),
        ("body_length", float(len(body)), "body_length"),
        ("body_length", str(len(body)), "body_length"),
        ("size", True, "size"),
        ("size", header["size"] + 1, "replay"),  # type: ignore[operator]
        ("origin", "another.example/log", "replay"),
        ("format", "endorsement-ledger/verifier-state/v3", "format"),
        ("root", "00" * 31, "root"),
        ("root", 7, "root"),
        ("tiles", [["00" * 32] * 256], "tiles"),
        ("tiles", [[1]], "tiles"),
        ("checkpoint", None, "checkpoint"),
        ("checkpoint", "\udc80", "checkpoint"),
        ("extra", 1, "header"),
    ):
        changed = {**header, name: value}
        _refused(_seal(changed, body), field)
    # a body that the header's hash vouches for is still decoded carefully
    for cut in (0, 1, 16, len(body) // 2, len(body) - 8):
        changed = {**header, "body_length": cut}
        _refused(_seal(changed, body[:cut]), "body")
    assert VerifierState.from_bytes(_seal(header, body)).to_bytes() == data


def test_workers_also_start_while_threads_run(tmp_path: Path) -> None:
    """With other threads alive, workers come from forkserver/spawn rather than fork."""
    f = LogFactory()
    f.grow(1100)
    log = f.write(tmp_path / "log")
    trust = Trust.from_vkeys([f.log_key.vkey])
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        result = verify_log(DirectorySource(log), trust, jobs=2)
    finally:
        stop.set()
        t.join()
    assert result.entries_checked == 1100
    assert result.checkpoint.root == f.root()


def test_collection_thresholds_are_raised_while_checking_then_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify_log collects the young generation less often while it checks entries
    (ledger.verify.pipeline.YOUNG_GC_THRESHOLD), and leaves the process's thresholds as it
    found them, after a valid log and after an invalid one."""
    f = LogFactory()
    f.grow(40)
    log = f.write(tmp_path / "log")
    trust = Trust.from_vkeys([f.log_key.vkey])
    seen: list[tuple[int, int, int]] = []
    settle = verify._EntryChecker._settle

    def spy(self: verify._EntryChecker, bundle: verify._Bundle) -> None:
        seen.append(gc.get_threshold())
        settle(self, bundle)

    monkeypatch.setattr(verify._EntryChecker, "_settle", spy)
    old = gc.get_threshold()
    try:
        gc.set_threshold(700, 7, 9)
        verify_log(DirectorySource(log), trust)
        assert seen and all(t == (YOUNG_GC_THRESHOLD, 7, 9) for t in seen)
        assert gc.get_threshold() == (700, 7, 9)
        bundle = log / "tile" / "entries" / "000.p" / "40"
        data = bytearray(bundle.read_bytes())
        data[-10] ^= 1
        bundle.write_bytes(bytes(data))
        with pytest.raises(LedgerError):
            verify_log(DirectorySource(log), trust)
        assert gc.get_threshold() == (700, 7, 9)
    finally:
        gc.set_threshold(*old)


@pytest.mark.parametrize("jobs", [1, 2])
def test_failures_are_placed_by_wrapping_not_by_changing_them(tmp_path: Path, jobs: int) -> None:
    """A signature that fails (in this process or in a worker) and an entry that does not
    parse are raised as LocatedError at their place in the log; the core's error is the
    cause, untouched, and the text reads as the cause's would at that index."""
    f = LogFactory()
    f.grow(600)
    head, _, b64 = f.entries[300].rstrip(b"\n").rpartition(b" ")
    sig = bytearray(base64.b64decode(b64))
    sig[10] ^= 0x01
    entries = list(f.entries)
    entries[300] = head + b" " + base64.b64encode(bytes(sig)) + b"\n"
    log = write_static_log(tmp_path / "sig", entries, f.log_key)
    trust = Trust.from_vkeys([f.log_key.vkey])
    with pytest.raises(LocatedError) as info:
        verify_log(DirectorySource(log), trust, jobs=jobs)
    e, cause = info.value, info.value.__cause__
    assert isinstance(cause, SignatureError) and cause.index is None
    assert (e.index, e.code, e.field, e.message) == (300, cause.code, cause.field, cause.message)
    assert str(e).startswith("entry 300, ") and str(e).endswith(str(cause))

    entries[300] = entries[300].replace(b"index 300\n", b"index 0300\n")
    log = write_static_log(tmp_path / "parse", entries, f.log_key)
    with pytest.raises(LocatedError) as info:
        verify_log(DirectorySource(log), trust, jobs=jobs)
    e, cause = info.value, info.value.__cause__
    assert isinstance(cause, FormatError) and cause.index is None
    assert (e.index, e.code, e.field) == (300, cause.code, "index")


def test_verify_log_reads_full_files_where_the_partial_ones_are_gone(tmp_path: Path) -> None:
    """tlog-tiles lets a log delete a partial bundle or tile once the full one exists:
    a checkpoint of 300 entries still verifies against a log that has grown to 512."""
    f = LogFactory()
    f.grow(512)
    log = f.write(tmp_path / "log", size=300)
    f.write(log)
    for gone in (tiles.entries_path(1, 44), tiles.tile_path(0, 1, 44)):
        (log / gone).unlink()
    (log / "checkpoint").write_bytes(f.checkpoint(300))

    paths: list[str] = []

    class Counting(DirectorySource):
        def fetch(self, path: str) -> bytes:
            paths.append(path)
            return super().fetch(path)

    result = verify_log(Counting(log), Trust.from_vkeys([f.log_key.vkey]))
    assert (result.checkpoint.size, result.checkpoint.root) == (300, f.root(300))
    for partial, full in [
        (tiles.entries_path(1, 44), tiles.entries_path(1)),
        (tiles.tile_path(0, 1, 44), tiles.tile_path(0, 1)),
    ]:
        assert paths.index(partial) < paths.index(full)
    # a damaged full file is named as what was read
    bundle = log / tiles.entries_path(1)
    bundle.write_bytes(bundle.read_bytes()[:-5])
    with pytest.raises(FormatError) as e:
        verify_log(DirectorySource(log), Trust.from_vkeys([f.log_key.vkey]))
    assert e.value.field == tiles.entries_path(1)
    assert "entries 256..511" in e.value.message
