"""The ``ledger`` CLI end to end against a real server process.

One ``ledger serve`` runs for the session (a subprocess on a free port, SQLite in
a temporary data directory, no rate limit). Each test gets its own working
directory and client config directory (so its own pinned log key), and creates its
own signatories, so that the tests do not depend on one another's order.
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cli.demo import free_port, local_server
from cli.errors import (
    EXIT_KEY,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_VERIFY,
)
from cli.main import cli as ledger_cli
from keys.signer import Signer
from ledger.core.ed25519 import key_hash
from ledger.core.entry import parse_entry
from ledger.core.records import Statement
from ledger.verify import cli as verify_cli

ORIGIN = "ledger.test/cli"
Run = Callable[..., Result]


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path

    @property
    def vkey(self) -> str:
        return (self.data_dir / "log.vkey").read_text().strip()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("cli-server")
    # Small batches: bulk imports must split theirs (see test_import_signatories_from_csv).
    with local_server(
        data_dir, free_port(), origin=ORIGIN, args=["--max-batch-records", "2"]
    ) as url:
        yield Server(url, data_dir)


@pytest.fixture
def run(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    for name in list(os.environ):
        if name.startswith("LEDGER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    base_env = {"LEDGER_CONFIG_DIR": str(tmp_path / "config"), "LEDGER_SERVER": server.url}

    def invoke(
        *args: object, env: dict[str, str] | None = None, input: str | None = None
    ) -> Result:
        return runner.invoke(
            ledger_cli,
            [str(a) for a in args],
            env={**base_env, **(env or {})},
            input=input,
            catch_exceptions=False,
        )

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def js(result: Result) -> dict:  # type: ignore[type-arg]
    doc = json.loads(ok(result).stdout)
    assert isinstance(doc, dict)
    return doc


def error_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("ledger: error:")]
    assert len(lines) == 1, result.output
    return lines[0]


_counter = iter(range(10**6))


def signatory(run: Run, label: str, kind: str = "civil-society", **fields: str) -> str:
    """Generate an unencrypted key ``<label>.key`` and register it; returns the signatory id."""
    name = f"Test {label} {next(_counter)} {time.time_ns()}"
    ok(run("key", "generate", f"{label}.key", "--no-encrypt"))
    extra = [a for k, v in fields.items() for a in (f"--{k}", v)]
    doc = js(run("register", "--key", f"{label}.key", "--name", name, "--kind", kind,
                 *extra, "--json"))  # fmt: skip
    return str(doc["signatory"])


def statement_by(run: Run, *labels: str, title: str = "A test call") -> str:
    Path("call.txt").write_text("We call on everyone.\n")
    keys = [a for label in labels for a in ("--key", f"{label}.key")]
    doc = js(run("statement", "publish", "--title", title, "--text-file", "call.txt", *keys,
                 "--json"))  # fmt: skip
    return str(doc["statement"])


def verify_receipt(server: Server, receipt: str, entry: str) -> int:
    return verify_cli.main(["receipt", receipt, "--entry", entry, "--log-key", server.vkey])


# --- the full flow ---------------------------------------------------------------------------


def test_full_flow(run: Run, server: Server, tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("a good passphrase\n")
    ok(run("key", "generate", "author.key", "--passphrase-file", "pass"))
    first = run("register", "--key", "author.key", "--passphrase-file", "pass",
                "--name", "Example Ministry", "--kind", "state", "--country", "FR",
                "--domain", "ministry.example")  # fmt: skip
    ok(first)
    assert "First contact" in first.stderr and server.vkey in first.stderr
    assert (tmp_path / "config" / f"127.0.0.1_{server.url.rsplit(':', 1)[1]}.vkey").exists()
    assert first.stdout.startswith("logged: register record at index ")
    index = int(first.stdout.split("index ")[1].split()[0])
    assert (tmp_path / f"entry-{index}.tlog-proof").exists()
    assert verify_receipt(server, f"entry-{index}.tlog-proof", f"entry-{index}.txt") == 0

    coauthor = signatory(run, "coauthor")
    endorser = signatory(run, "endorser", kind="company", country="DE")
    Path("call.txt").write_text("We call on everyone\nto keep the internet open.\n")
    published = js(run("statement", "publish", "--title", "Call for an open internet",
                       "--text-file", "call.txt", "--key", "author.key", "--key", "coauthor.key",
                       "--passphrase-file", "pass", "--json"))  # fmt: skip
    statement = published["statement"]
    assert published["type"] == "statement" and published["existing"] is False

    listed = js(run("statements", "--json"))["items"]
    mine = next(s for s in listed if s["statement"] == statement)
    assert mine["tally"]["total"] == 0 and mine["title"] == "Call for an open internet"

    # Endorse with a prefix of the id; the receipt goes where --receipt says.
    endorsed = js(run("endorse", statement[:12], "--key", "endorser.key",
                      "--comment", "With pleasure.",
                      "--receipt", "proofs/endorse.tlog-proof", "--json"))  # fmt: skip
    assert endorsed["statement"] == statement and endorsed["signatory"] == endorser
    assert Path(endorsed["receipt"]) == Path("proofs/endorse.tlog-proof")
    assert verify_receipt(server, "proofs/endorse.tlog-proof", "proofs/endorse.txt") == 0
    entry = parse_entry(Path("proofs/endorse.txt").read_bytes())
    assert entry.index == endorsed["index"] and entry.record.body.TYPE == "endorse"

    shown = js(run("statement", "show", statement, "--endorsements", "--json"))
    assert shown["tally"]["total"] == 1 and shown["tally"]["by_kind"]["company"] == 1
    assert [a["signatory"] for a in shown["author_details"]] == [
        key_hash(base64.b64decode(Path("author.key.pub").read_text())).hex(),
        coauthor,
    ]
    assert shown["text"] == "We call on everyone\nto keep the internet open.\n"
    assert [e["comment"] for e in shown["endorsements"]] == ["With pleasure."]
    human = ok(run("statement", "show", statement)).stdout
    assert "Call for an open internet" in human and "Example Ministry" in human

    who = js(run("signatory", "show", endorser, "--json"))
    assert who["kind"] == "company" and who["country"] == "DE" and who["active"] is True
    assert js(run("signatory", "show", "endorser.key.pub", "--json"))["signatory"] == endorser
    found = js(run("signatory", "search", "ministry.example", "--json"))["items"]
    assert any(s["name"] == "Example Ministry" for s in found)

    # Withdraw (signed a second later than the endorsement: spec rule 9).
    later = int(time.time()) + 2
    withdrawn = js(run("withdraw", statement, "--key", "endorser.key", "--signed-at", later,
                       "--json"))  # fmt: skip
    assert withdrawn["type"] == "withdraw"
    assert js(run("statement", "show", statement, "--json"))["tally"]["total"] == 0

    # Rotate: the old key may sign nothing more; the new one signs for the same signatory.
    ok(run("key", "generate", "endorser2.key", "--no-encrypt"))
    rotated = js(run("key", "rotate", "--key", "endorser.key", "--new-key", "endorser2.key",
                     "--json"))  # fmt: skip
    assert rotated["signatory"] == endorser
    old = run("endorse", statement, "--key", "endorser.key", "--signed-at", later + 1)
    assert old.exit_code == EXIT_REFUSED
    assert "key_rotated" in error_line(old) and "current key" in error_line(old)
    again = js(run("endorse", statement, "--key", "endorser2.key", "--signed-at", later + 1,
                   "--json"))  # fmt: skip
    assert again["signatory"] == endorser
    assert js(run("signatory", "show", "endorser2.key", "--json"))["signatory"] == endorser

    # Revoke the current key: the signatory can sign nothing more, its endorsement stays.
    revoked = js(run("key", "revoke", "--key", "endorser2.key", "--reason", "lost laptop",
                     "--yes", "--json"))  # fmt: skip
    assert revoked["type"] == "revoke"
    late = run("withdraw", statement, "--key", "endorser2.key", "--signed-at", later + 2)
    assert late.exit_code == EXIT_REFUSED and "key_revoked" in error_line(late)
    assert js(run("signatory", "show", endorser, "--json"))["active"] is False
    assert js(run("statement", "show", statement, "--json"))["tally"]["total"] == 1

    # Receipts fetched later, by index and by leaf hash, verify too.
    by_index = js(run("receipt", str(endorsed["index"]), "--receipt", "later.tlog-proof",
                      "--json"))  # fmt: skip
    assert by_index["leaf_hash"] == endorsed["leaf_hash"]
    assert by_index["tree_size"] > endorsed["tree_size"]
    assert verify_receipt(server, "later.tlog-proof", "later.txt") == 0
    by_leaf = js(run("receipt", endorsed["leaf_hash"], "--json"))
    assert by_leaf["index"] == endorsed["index"]


def test_revoke_a_former_key_with_the_current_one(run: Run) -> None:
    sid = signatory(run, "s")
    ok(run("key", "generate", "s2.key", "--no-encrypt"))
    ok(run("key", "rotate", "--key", "s.key", "--new-key", "s2.key"))
    revoked = js(run("key", "revoke", "--key", "s2.key", "--revoked-key", "s.key.pub",
                     "--reason", "the old laptop was stolen", "--yes", "--json"))  # fmt: skip
    assert revoked["signatory"] == sid
    assert revoked["revoked_key_hash"] == sid  # the first key's hash is the signatory id
    who = js(run("signatory", "show", sid, "--json"))
    assert who["active"] is True and len(who["keys"]) == 2
    again = run("key", "revoke", "--key", "s.key", "--yes")  # once is enough
    assert again.exit_code == EXIT_REFUSED and "already_revoked" in error_line(again)


def test_offline_statement_with_two_authors(
    run: Run, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = signatory(run, "a", kind="state")
    b = signatory(run, "b")
    Path("call.txt").write_text("Drafted online, signed offline.\n")
    ok(run("statement", "draft", "--title", "Offline call", "--text-file", "call.txt",
           "--author", "a.key.pub", "--author", b, "--out", "call.draft",
           "--origin", ORIGIN))  # fmt: skip

    # Each author signs on a machine without network, the second author first.
    unreachable = {"LEDGER_SERVER": "http://127.0.0.1:9"}
    with monkeypatch.context() as m:
        m.setattr(httpx, "Client", None)  # any use of the network would fail
        ok(run("sign", "call.draft", "--key", "b.key", env=unreachable))
        ok(run("sign", "call.draft", "--key", "a.key", env=unreachable))

    submitted = js(run("submit", "call.draft", "--json"))
    assert submitted["type"] == "statement"
    assert verify_receipt(server, submitted["receipt"], submitted["entry"]) == 0
    entry = parse_entry(Path(submitted["entry"]).read_bytes())
    assert isinstance(entry.record.body, Statement)
    assert [x.hex() for x in entry.record.body.authors] == [a, b]
    shown = js(run("statement", "show", submitted["statement"], "--json"))
    assert shown["authors"] == [a, b]

    # Submitting it again appends nothing: same entry.
    again = run("submit", "call.draft", "--receipt", "again.tlog-proof")
    ok(again)
    assert again.stdout.startswith(
        f"already in the log: statement record at index {submitted['index']}"
    )


def test_offline_flow_for_an_endorsement(run: Run, server: Server) -> None:
    signatory(run, "author")
    statement = statement_by(run, "author")
    signatory(run, "e")
    ok(run("endorse", statement, "--key", "e.key.pub", "--draft", "e.draft", "--origin", ORIGIN))
    ok(run("sign", "e.draft", "--key", "e.key"))
    done = js(run("submit", "e.draft", "--json"))
    assert done["type"] == "endorse"
    assert js(run("statement", "show", statement, "--json"))["tally"]["total"] == 1


# --- errors ---------------------------------------------------------------------------------


def test_already_endorsed(run: Run) -> None:
    signatory(run, "a")
    statement = statement_by(run, "a")
    signatory(run, "e")
    ok(run("endorse", statement, "--key", "e.key"))
    twice = run("endorse", statement, "--key", "e.key", "--comment", "Once more.",
                "--signed-at", int(time.time()) + 2)  # fmt: skip
    assert twice.exit_code == EXIT_REFUSED
    line = error_line(twice)
    assert "already_endorsed" in line and "HTTP 409" in line


def test_identical_resubmission_answers_the_existing_entry(run: Run) -> None:
    signatory(run, "a")
    statement = statement_by(run, "a")
    signatory(run, "e")
    t = str(int(time.time()))
    first = js(run("endorse", statement, "--key", "e.key", "--signed-at", t, "--json"))
    again = run("endorse", statement, "--key", "e.key", "--signed-at", t)
    ok(again)
    assert again.stdout.startswith(
        f"already in the log: endorse record at index {first['index']} (nothing was appended)"
    )


def test_unknown_statement(run: Run) -> None:
    signatory(run, "e")
    unknown = "ab" * 32
    result = run("endorse", unknown, "--key", "e.key")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "unknown_statement" in error_line(result)
    shown = run("statement", "show", unknown)
    assert shown.exit_code == EXIT_NOT_FOUND and "unknown statement" in error_line(shown)
    prefix = run("endorse", "abababab", "--key", "e.key")
    assert prefix.exit_code == EXIT_NOT_FOUND


def test_unregistered_key_and_unknown_signatory(run: Run) -> None:
    signatory(run, "a")
    statement = statement_by(run, "a")
    ok(run("key", "generate", "stranger.key", "--no-encrypt"))
    result = run("endorse", statement, "--key", "stranger.key")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "unknown_signatory" in error_line(result) and "ledger register" in error_line(result)
    shown = run("signatory", "show", "stranger.key.pub")
    assert shown.exit_code == EXIT_NOT_FOUND


def test_clock_too_far_off(run: Run) -> None:
    ok(run("key", "generate", "k.key", "--no-encrypt"))
    ahead = run("register", "--key", "k.key", "--name", "Future Org", "--kind", "other",
                "--signed-at", int(time.time()) + 3600)  # fmt: skip
    assert ahead.exit_code == EXIT_REFUSED
    assert "clock_skew" in error_line(ahead) and "clock" in error_line(ahead)
    behind = run("register", "--key", "k.key", "--name", "Past Org", "--kind", "other",
                 "--signed-at", int(time.time()) - 90 * 86400)  # fmt: skip
    assert behind.exit_code == EXIT_REFUSED and "too_old" in error_line(behind)


def test_wrong_passphrase_sends_nothing(run: Run, tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("right\n")
    (tmp_path / "wrong").write_text("wrong\n")
    ok(run("key", "generate", "k.key", "--passphrase-file", "pass"))
    result = run("register", "--key", "k.key", "--name", "N", "--kind", "other",
                 "--passphrase-file", "wrong")  # fmt: skip
    assert result.exit_code == EXIT_KEY
    assert "wrong passphrase" in error_line(result)
    assert not list(tmp_path.glob("entry-*"))


def test_already_registered(run: Run) -> None:
    signatory(run, "a")
    result = run("register", "--key", "a.key", "--name", "Again", "--kind", "other")
    assert result.exit_code == EXIT_REFUSED
    assert "already_registered" in error_line(result)


def test_problem_details_are_shown_with_their_code(run: Run) -> None:
    result = run("receipt", "999999999")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "999999999" in error_line(result)
    missing = run("key", "revoke", "--key", "nope.key", "--yes")
    assert missing.exit_code == EXIT_KEY


def test_revocation_needs_confirmation(run: Run) -> None:
    signatory(run, "a")
    result = run("key", "revoke", "--key", "a.key")
    assert result.exit_code == 2 and "--yes" in error_line(result)


def test_draft_for_another_log_is_refused_before_sending(run: Run) -> None:
    signatory(run, "a")
    ok(run("key", "generate", "n.key", "--no-encrypt"))
    ok(run("register", "--key", "n.key", "--name", "N", "--kind", "other", "--draft", "r",
           "--origin", "another.example/log"))  # fmt: skip
    ok(run("sign", "r", "--key", "n.key"))
    result = run("submit", "r")
    assert result.exit_code == 2 and "another.example/log" in error_line(result)


# --- the pinned log key ----------------------------------------------------------------------


def test_log_key_pinning(run: Run, server: Server, tmp_path: Path) -> None:
    doc = js(run("log", "--json"))
    assert doc["origin"] == ORIGIN and doc["vkey"] == server.vkey
    assert doc["pinned_vkey"] == server.vkey and doc["key_changed"] is False
    pin = Path(doc["pinned_file"])
    assert pin.read_text().strip() == server.vkey

    # Another key pinned for this server: writes are refused, reads warn loudly.
    other = _other_vkey()
    pin.write_text(other + "\n")
    ok(run("key", "generate", "k.key", "--no-encrypt"))
    write = run("register", "--key", "k.key", "--name", "N", "--kind", "other")
    assert write.exit_code == EXIT_VERIFY
    assert "HAS CHANGED" in write.stderr and "refusing to submit" in error_line(write)
    assert not list(tmp_path.glob("entry-*"))
    read = run("log")
    ok(read)
    assert "HAS CHANGED" in read.stderr and "CHANGED" in read.stdout
    receipt = run("receipt", "0")
    assert receipt.exit_code == EXIT_VERIFY and "does not verify" in error_line(receipt)

    # After checking the key out of band, the user pins it again.
    ok(run("log", "--repin", "--log-key", str(server.data_dir / "log.vkey")))
    assert pin.read_text().strip() == server.vkey
    ok(run("register", "--key", "k.key", "--name", f"N {time.time_ns()}", "--kind", "other"))


def _other_vkey() -> str:
    return Signer.generate().vkey(ORIGIN)


def test_explicit_log_key(run: Run, server: Server) -> None:
    ok(run("key", "generate", "k.key", "--no-encrypt"))
    wrong = run("register", "--key", "k.key", "--name", "N", "--kind", "other",
                "--log-key", _other_vkey())  # fmt: skip
    assert wrong.exit_code == EXIT_VERIFY and "nothing was sent" in error_line(wrong)
    right = run("register", "--key", "k.key", "--name", f"N {time.time_ns()}", "--kind",
                "other", "--log-key", server.vkey)  # fmt: skip
    ok(right)
    assert "First contact" not in right.stderr


# --- reads as JSON; bulk import -----------------------------------------------------------------


def test_reads_as_json(run: Run, server: Server) -> None:
    sid = signatory(run, "a", kind="state", country="NL", domain="json.example")
    statement = statement_by(run, "a", title="JSON call")
    items = js(run("statements", "--json"))["items"]
    assert statement in [s["statement"] for s in items]
    assert set(items[0]["tally"]["by_kind"]) == {
        "state", "company", "civil-society", "individual", "other",
    }  # fmt: skip
    detail = js(run("statement", "show", statement, "--json"))
    assert detail["title"] == "JSON call" and detail["authors"] == [sid]
    who = js(run("signatory", "show", sid, "--json"))
    assert who["domain"] == "json.example" and who["keys"] == [sid]
    assert js(run("signatory", "search", "json.example", "--json"))["items"][0]["signatory"] == sid
    log = js(run("log", "--json"))
    assert log["size"] >= detail["index"] + 1
    assert js(run("key", "show", "a.key", "--json"))["key_hash"] == sid


def test_import_signatories_from_csv(run: Run, server: Server, tmp_path: Path) -> None:
    signatory(run, "author")
    statement = statement_by(run, "author", title="Imported call")
    stamp = time.time_ns()
    (tmp_path / "members.csv").write_text(
        "name,kind,country,domain,key\n"
        f"Member State {stamp},state,QM,member-state.example,\n"
        f"Member Company {stamp},company,,member-company.example,\n"
        f"Member NGO {stamp},civil-society,,,\n"
    )
    result = js(run("import-signatories", "members.csv", "--keys-dir", "keys", "--no-encrypt",
                    "--endorse", statement, "--json"))  # fmt: skip
    assert result["registration_counts"] == {"logged": 3, "in_log": 0, "already": 0, "refused": 0}
    assert result["endorsement_counts"]["logged"] == 3
    assert len(list((tmp_path / "keys").glob("*.key"))) == 3
    for doc in result["registrations"] + result["endorsements"]:
        assert verify_receipt(server, doc["receipt"], doc["entry"]) == 0
    tally = js(run("statement", "show", statement, "--json"))["tally"]
    assert tally["total"] == 3 and tally["by_kind"]["state"] == 1

    # Again, later: nothing new, and not a failure.
    again = js(run("import-signatories", "members.csv", "--keys-dir", "keys", "--no-encrypt",
                   "--endorse", statement, "--signed-at", int(time.time()) + 2,
                   "--json"))  # fmt: skip
    assert again["registration_counts"]["already"] == 3
    assert again["endorsement_counts"]["already"] == 3


class _NotALedger(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>nothing here</html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_server_that_is_not_a_ledger(run: Run) -> None:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotALedger)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        for args in (["statements"], ["log"]):
            result = run(*args, "--server", url)
            assert result.exit_code == EXIT_UNREACHABLE
            assert "Endorsement Ledger server" in error_line(result)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# --- conventions (issue 14) -------------------------------------------------------------------


def test_reads_warn_when_the_log_key_is_not_the_pinned_one(run: Run, server: Server) -> None:
    pin = Path(js(run("log", "--json"))["pinned_file"])
    pin.write_text(_other_vkey() + "\n")
    for args in (("statements",), ("signatory", "search", "Test")):
        read = run(*args)
        assert read.exit_code == 0, read.output
        assert "THE LOG KEY OF" in read.stderr and "HAS CHANGED" in read.stderr
    # An explicit key that is not the server's: nothing is shown.
    other = run("statements", "--log-key", _other_vkey())
    assert other.exit_code == EXIT_VERIFY and "not the one given with --log-key" in other.stderr
    # LEDGER_LOG_KEY is the default of --log-key, a key or a file.
    pin.write_text(server.vkey + "\n")
    for value in (server.vkey, str(server.data_dir / "log.vkey")):
        ok(run("statements", env={"LEDGER_LOG_KEY": value}))
    bad = run("statements", env={"LEDGER_LOG_KEY": _other_vkey()})
    assert bad.exit_code == EXIT_VERIFY


def test_a_pipeline_through_standard_input_and_output(
    run: Run, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signatory(run, "piper")
    drafted = run(
        "statement", "draft", "--title", "Piped", "--text-file", "-", "--author", "piper.key.pub",
        "--out", "-", input="We call on pipes.\n",
    )  # fmt: skip
    assert drafted.exit_code == 0, drafted.output
    signed = run("sign", "-", "--key", "piper.key", input=drafted.stdout)
    assert signed.exit_code == 0, signed.output
    submitted = js(run("submit", "-", "--json", input=signed.stdout))
    index = submitted["index"]
    receipt = tmp_path / f"entry-{index}.tlog-proof"
    # ledger-verify reads the receipt from standard input, the key from the server's file.
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(receipt.read_bytes())))
    args = ["receipt", "-", "--entry", f"entry-{index}.txt"]
    assert verify_cli.main([*args, "--log-key", str(server.data_dir / "log.vkey")]) == 0


def test_an_openssh_public_key_names_its_signatory(run: Run, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "id_ed25519").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "id_ed25519").chmod(0o600)
    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    (tmp_path / "id_ed25519.pub").write_bytes(line + b" me@example\n")
    ok(run("key", "import-ssh", "id_ed25519", "me.key", "--no-encrypt"))
    name = f"SSH user {time.time_ns()}"
    sid = js(run("register", "--key", "me.key", "--name", name, "--kind", "individual",
                 "--json"))["signatory"]  # fmt: skip
    # The OpenSSH .pub file, or beside the OpenSSH private key, is the same signatory.
    for spec in ("id_ed25519.pub", "id_ed25519"):
        assert js(run("signatory", "show", spec, "--json"))["signatory"] == sid
    Path("call.txt").write_text("We call on SSH users.\n")
    drafted = run("statement", "draft", "--title", "SSH", "--text-file", "call.txt",
                  "--author", "id_ed25519.pub", "--out", "ssh.draft")  # fmt: skip
    assert drafted.exit_code == 0, drafted.output
