"""The ``ledger`` CLI without a server: help, keys, offline drafts and signing, inputs.

The commands run in-process through click's runner, with a fresh client config
directory each; end-to-end tests against a real server are in test_cli_server.py.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.settings import Settings
from cli.errors import (
    EXIT_KEY,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    EXIT_VERIFY,
)
from cli.main import cli as ledger_cli
from cli.receipts import entry_path_for
from cli.serve_cmd import NOT_OPTIONS, OPTIONS, build_settings
from ledger.core.ed25519 import key_hash
from ledger.core.encoding import b64encode
from ledger.core.records import Statement, parse_record, verify_signatures

ORIGIN = "ledger.test/offline"
Run = Callable[..., Result]


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """Run ``ledger`` in tmp_path with a fresh config dir and no LEDGER_* from outside."""
    for name in list(os.environ):
        if name.startswith("LEDGER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    base_env = {
        "LEDGER_CONFIG_DIR": str(tmp_path / "config"),
        "LEDGER_SERVER": f"http://127.0.0.1:{closed_port()}",
    }

    def invoke(*args: object, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(
            ledger_cli,
            [str(a) for a in args],
            env={**base_env, **(env or {})},
            catch_exceptions=False,
        )

    yield invoke


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt to open an HTTP client."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("this command must not use the network")

    monkeypatch.setattr(httpx, "Client", refuse)


def one_error_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("ledger: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def make_key(run: Run, path: str) -> str:
    """A throwaway key; returns its key hash."""
    result = run("key", "generate", path, "--no-encrypt", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    return str(doc["key_hash"])


# --- help --------------------------------------------------------------------------------


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_help_lists_commands_and_exit_codes(run: Run) -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("serve", "key", "register", "statement", "endorse", "withdraw", "sign",
                    "submit", "receipt", "statements", "signatory", "import-signatories",
                    "demo"):  # fmt: skip
        assert f"  {command} " in result.stdout
    assert "Exit codes" in result.stdout
    for code in range(7):
        assert f"  {code}  " in result.stdout


@pytest.mark.parametrize("path", list(_commands(ledger_cli)), ids=" ".join)
def test_every_command_has_help_with_an_example(run: Run, path: tuple[str, ...]) -> None:
    result = run(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Example:" in result.stdout
    assert "ledger" in result.stdout.split("Example:", 1)[1]


# --- keys --------------------------------------------------------------------------------


def test_key_generate_unencrypted(run: Run, tmp_path: Path) -> None:
    result = run("key", "generate", "a.key", "--no-encrypt")
    assert result.exit_code == 0, result.output
    key = tmp_path / "a.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in key.read_bytes()
    assert "not encrypted" in result.stderr
    pub = (tmp_path / "a.key.pub").read_text().strip()
    kh = key_hash(base64.b64decode(pub)).hex()
    assert f"signatory id: {kh}" in result.stdout

    shown = run("key", "show", "a.key.pub", "--json")
    doc = json.loads(shown.stdout)
    assert doc["public_key"] == pub and doc["key_hash"] == kh
    assert doc["vkey"].startswith(f"{kh}+")
    assert json.loads(run("key", "show", pub, "--json").stdout)["key_hash"] == kh


def test_key_generate_never_overwrites(run: Run, tmp_path: Path) -> None:
    make_key(run, "a.key")
    before = (tmp_path / "a.key").read_bytes()
    result = run("key", "generate", "a.key", "--no-encrypt")
    assert result.exit_code == EXIT_KEY
    assert "already exists" in one_error_line(result)
    assert (tmp_path / "a.key").read_bytes() == before


def test_encrypted_key_and_passphrases(run: Run, tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("correct horse\n")
    (tmp_path / "wrong").write_text("wrong horse\n")
    result = run("key", "generate", "e.key", "--passphrase-file", "pass", "--json")
    assert result.exit_code == 0, result.output
    kh = json.loads(result.stdout)["key_hash"]
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "e.key").read_bytes()
    # With its .pub beside it, show needs no passphrase.
    assert json.loads(run("key", "show", "e.key", "--json").stdout)["key_hash"] == kh
    (tmp_path / "e.key.pub").unlink()

    wrong = run("key", "show", "e.key", "--passphrase-file", "wrong")
    assert wrong.exit_code == EXIT_KEY
    assert "wrong passphrase" in one_error_line(wrong)

    missing = run("key", "show", "e.key")  # no file, no variable, not a terminal
    assert missing.exit_code == EXIT_KEY
    assert "LEDGER_KEY_PASSPHRASE" in one_error_line(missing)

    by_env = run("key", "show", "e.key", "--json", env={"LEDGER_KEY_PASSPHRASE": "correct horse"})
    assert by_env.exit_code == 0, by_env.output
    assert json.loads(by_env.stdout)["key_hash"] == kh


def test_no_encrypt_and_passphrase_file_conflict(run: Run, tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("x")
    result = run("key", "generate", "k.key", "--no-encrypt", "--passphrase-file", "pass")
    assert result.exit_code == EXIT_USAGE
    assert not (tmp_path / "k.key").exists()


def test_key_import_ssh(run: Run, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "id_ed25519").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "id_ed25519").chmod(0o600)
    result = run("key", "import-ssh", "id_ed25519", "me.key", "--no-encrypt", "--json")
    assert result.exit_code == 0, result.output
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert json.loads(result.stdout)["key_hash"] == key_hash(pub).hex()
    assert (tmp_path / "me.key.pub").read_text().strip() == b64encode(pub)


def test_an_openssh_key_is_not_a_key_file(run: Run, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "id").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "id").chmod(0o600)
    result = run("key", "show", "id")
    assert result.exit_code == EXIT_KEY
    assert "import it" in one_error_line(result)


# --- offline drafts and signatures ----------------------------------------------------------


def _text(tmp_path: Path, content: bytes = b"We call on everyone.\n\nSigned.\n") -> str:
    (tmp_path / "call.txt").write_bytes(content)
    return "call.txt"


def test_offline_draft_and_sign_in_any_order(run: Run, tmp_path: Path, no_network: None) -> None:
    a = make_key(run, "a.key")
    b = make_key(run, "b.key")
    result = run(
        "statement", "draft", "--title", "A call", "--text-file", _text(tmp_path),
        "--author", "a.key.pub", "--author", b, "--out", "call.draft", "--origin", ORIGIN,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    draft = parse_record((tmp_path / "call.draft").read_bytes(), allow_draft=True)
    assert isinstance(draft.body, Statement)
    assert [x.hex() for x in draft.body.authors] == [a, b]
    assert draft.body.log == ORIGIN and not draft.signatures
    assert f"statement id: {draft.record_id.hex()}" in result.stdout

    # The second author signs first: the signatures still end up in author order.
    first = run("sign", "call.draft", "--key", "b.key")
    assert first.exit_code == 0, first.output
    assert "1 of 2 signatures" in first.stdout and f"author {a}" in first.stdout
    again = run("sign", "call.draft", "--key", "b.key")
    assert again.exit_code == 0 and "already signed" in again.stderr
    second = run("sign", "call.draft", "--key", "a.key")
    assert second.exit_code == 0, second.output
    assert "complete (2 of 2)" in second.stdout

    record = parse_record((tmp_path / "call.draft").read_bytes())
    assert record.record_id == draft.record_id
    assert [key_hash(s.public_key).hex() for s in record.signatures] == [a, b]
    verify_signatures(record)


def test_sign_refuses_a_key_that_is_no_author(run: Run, tmp_path: Path, no_network: None) -> None:
    a = make_key(run, "a.key")
    make_key(run, "other.key")
    run("statement", "draft", "--title", "T", "--text-file", _text(tmp_path), "--author", a,
        "--out", "d", "--origin", ORIGIN)  # fmt: skip
    result = run("sign", "d", "--key", "other.key")
    assert result.exit_code == EXIT_USAGE
    assert "not the registration key of an author" in one_error_line(result)
    assert parse_record((tmp_path / "d").read_bytes(), allow_draft=True).signatures == ()


def test_sign_detects_a_draft_changed_after_signing(run: Run, tmp_path: Path) -> None:
    a = make_key(run, "a.key")
    b = make_key(run, "b.key")
    run("statement", "draft", "--title", "Original", "--text-file", _text(tmp_path),
        "--author", a, "--author", b, "--out", "d", "--origin", ORIGIN)  # fmt: skip
    assert run("sign", "d", "--key", "a.key").exit_code == 0
    path = tmp_path / "d"
    path.write_bytes(path.read_bytes().replace(b"title Original", b"title Altered!"))
    result = run("sign", "d", "--key", "b.key")
    assert result.exit_code == EXIT_VERIFY
    assert "changed after it was signed" in one_error_line(result)


def test_submit_refuses_an_incomplete_draft_before_any_network(
    run: Run, tmp_path: Path, no_network: None
) -> None:
    a = make_key(run, "a.key")
    b = make_key(run, "b.key")
    run("statement", "draft", "--title", "T", "--text-file", _text(tmp_path), "--author", a,
        "--author", b, "--out", "d", "--origin", ORIGIN)  # fmt: skip
    run("sign", "d", "--key", "a.key")
    result = run("submit", "d")
    assert result.exit_code == EXIT_USAGE
    line = one_error_line(result)
    assert "1 of 2 signatures" in line and f"author {b}" in line


def test_drafts_of_other_records_offline(run: Run, tmp_path: Path, no_network: None) -> None:
    a = make_key(run, "a.key")
    make_key(run, "a2.key")
    statement = "ab" * 32
    cases = [
        ("register", ["register", "--key", "a.key.pub", "--name", "Example Org",
                      "--kind", "civil-society", "--domain", "example.org"]),
        ("endorse", ["endorse", statement, "--key", "a.key.pub", "--comment", "Yes."]),
        ("withdraw", ["withdraw", statement, "--key", "a.key"]),
        ("rotate", ["key", "rotate", "--key", "a.key", "--new-key", "a2.key"]),
        ("revoke", ["key", "revoke", "--key", "a.key", "--reason", "lost"]),
    ]  # fmt: skip
    for kind, args in cases:
        result = run(*args, "--draft", f"{kind}.draft", "--origin", ORIGIN)
        assert result.exit_code == 0, (kind, result.output)
        record = parse_record((tmp_path / f"{kind}.draft").read_bytes(), allow_draft=True)
        assert kind == record.body.TYPE and record.body.log == ORIGIN
        assert getattr(record.body, "signatory", None) in (None, bytes.fromhex(a))
    # A rotation is signed by both keys, the new one last whatever the order of signing.
    assert run("sign", "rotate.draft", "--key", "a2.key").exit_code == 0
    assert run("sign", "rotate.draft", "--key", "a.key").exit_code == 0
    rotation = parse_record((tmp_path / "rotate.draft").read_bytes())
    assert key_hash(rotation.signatures[0].public_key).hex() == a
    verify_signatures(rotation)
    # A registration is signed by the key it registers, and only by it.
    wrong = run("sign", "register.draft", "--key", "a2.key")
    assert wrong.exit_code == EXIT_USAGE
    assert run("sign", "register.draft", "--key", "a.key").exit_code == 0


def test_offline_needs_a_full_statement_id(run: Run, no_network: None) -> None:
    make_key(run, "a.key")
    result = run("endorse", "abcdef12", "--key", "a.key", "--draft", "x", "--origin", ORIGIN)
    assert result.exit_code == EXIT_USAGE
    assert "full id" in one_error_line(result)


def test_text_files_become_lf_and_nfc(run: Run, tmp_path: Path, no_network: None) -> None:
    a = make_key(run, "a.key")
    text = _text(tmp_path, "Cafe\u0301 au lait.\r\nSecond line.\r\n".encode())
    result = run("statement", "draft", "--title", "T", "--text-file", text, "--author", a,
                 "--out", "d", "--origin", ORIGIN)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "CRLF" in result.stderr and "NFC" in result.stderr
    body = parse_record((tmp_path / "d").read_bytes(), allow_draft=True).body
    assert isinstance(body, Statement)
    assert body.text == "Caf\u00e9 au lait.\nSecond line.\n"


def test_invalid_field_is_one_line(run: Run, tmp_path: Path, no_network: None) -> None:
    make_key(run, "a.key")
    result = run("register", "--key", "a.key", "--name", "X", "--kind", "state",
                 "--country", "France", "--draft", "d", "--origin", ORIGIN)  # fmt: skip
    assert result.exit_code == EXIT_USAGE
    assert "country" in one_error_line(result)


# --- the server is unreachable; inputs ---------------------------------------------------------


def test_unreachable_server(run: Run) -> None:
    make_key(run, "a.key")
    for args in (["statements"], ["register", "--key", "a.key", "--name", "N", "--kind", "other"]):
        result = run(*args)
        assert result.exit_code == EXIT_UNREACHABLE, result.output
        line = one_error_line(result)
        assert "cannot reach the server" in line and "LEDGER_SERVER" in line


def test_unreachable_server_exit_code_of_the_real_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_CONFIG_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "cli", "statements", "--server", f"127.0.0.1:{closed_port()}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == EXIT_UNREACHABLE
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("ledger: error: cannot reach")


def test_bad_server_url(run: Run) -> None:
    result = run("statements", "--server", "ftp://example.org")
    assert result.exit_code == EXIT_USAGE
    assert "not an http(s) URL" in one_error_line(result)


def test_import_csv_errors_name_the_line(run: Run, tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("name,kind\nGood Org,company\nBad Org,government\n")
    result = run("import-signatories", "s.csv")
    assert result.exit_code == EXIT_USAGE
    assert "line 3" in one_error_line(result) and "government" in one_error_line(result)


def test_receipt_argument_is_checked(run: Run) -> None:
    result = run("receipt", "not-an-index")
    assert result.exit_code == EXIT_USAGE


def test_entry_file_beside_its_receipt() -> None:
    assert entry_path_for(Path("r/entry-17.tlog-proof")) == Path("r/entry-17.txt")
    assert entry_path_for(Path("mine")) == Path("mine.entry.txt")


# --- serve --------------------------------------------------------------------------------------


def test_serve_has_an_option_for_every_setting() -> None:
    fields = {field for _, field, _, _ in OPTIONS} | set(NOT_OPTIONS)
    assert fields == set(Settings.model_fields)


def test_serve_reports_an_invalid_setting_in_one_line(run: Run, tmp_path: Path) -> None:
    result = run("serve", "--data-dir", tmp_path / "d", "--origin", "https://ledger.example.org")
    assert result.exit_code == EXIT_USAGE
    line = one_error_line(result)
    assert "--origin" in line and "scheme" in line
    port = run("serve", "--data-dir", tmp_path / "d", "--port", "eighty")
    assert port.exit_code == EXIT_USAGE and "--port" in one_error_line(port)
    assert not (tmp_path / "d").exists()


def test_serve_reads_the_environment(run: Run, tmp_path: Path) -> None:
    result = run("serve", env={"LEDGER_WORKERS": "0", "LEDGER_DATA_DIR": str(tmp_path / "d")})
    assert result.exit_code == EXIT_USAGE
    assert "LEDGER_WORKERS" in one_error_line(result)


def test_serve_options_become_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LEDGER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LEDGER_WORKERS", "3")
    (tmp_path / "pass").write_text("log key words\n")
    settings = build_settings(
        {
            "data_dir": str(tmp_path / "d"),
            "port": "8123",
            "max_age_s": "none",
            "trusted_proxies": "10.0.0.0/8,::1",
            "log_key_passphrase_file": tmp_path / "pass",
            "origin": None,
        }
    )
    assert settings.port == 8123 and settings.max_age_s is None
    assert settings.workers == 3  # from the environment
    assert settings.origin == "localhost/ledger"  # the default
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    assert settings.log_key_passphrase.get_secret_value() == "log key words"


def test_signatory_commands_need_no_server_packages(tmp_path: Path) -> None:
    """With fastapi, pydantic, sqlmodel, uvicorn and api/ unimportable, keys and drafts
    still work, and 'ledger serve' says what to install."""
    blocked = ["fastapi", "starlette", "sqlmodel", "sqlalchemy", "pydantic",
               "pydantic_settings", "uvicorn", "alembic", "psycopg", "api"]  # fmt: skip
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "from cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}

    def ledger(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
        )  # fmt: skip

    made = ledger("key", "generate", "k.key", "--no-encrypt")
    assert made.returncode == 0, made.stderr
    (tmp_path / "t.txt").write_text("Text.\n")
    drafted = ledger("statement", "draft", "--title", "T", "--text-file", "t.txt",
                     "--author", "k.key.pub", "--out", "d", "--origin", ORIGIN)  # fmt: skip
    assert drafted.returncode == 0, drafted.stderr
    assert ledger("sign", "d", "--key", "k.key").returncode == 0
    served = ledger("serve")
    assert served.returncode == EXIT_USAGE
    assert "endorsement-ledger[server]" in served.stderr
