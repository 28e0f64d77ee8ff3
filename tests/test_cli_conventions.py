"""The CLI conventions of issue 14 that need no server (minisign, age, cosign style).

- ``ledger`` without the cli extra names the extra to install (exit 2, no traceback);
- ``ledger-verify --log-key`` takes a file as ``ledger --log-key`` does, and
  ``LEDGER_LOG_KEY`` is the default; ``-`` is standard input;
- OpenSSH public keys (``id_ed25519.pub``) are public keys;
- times are ISO 8601 dates, counts agree in number;
- ``ledger completion bash|zsh|fish`` completes in a real bash;
- the demo's counts are those its example holds.

The server-side ones (``ledger statements`` warns about another log key, stdin and
stdout through a real submission) are in tests/test_cli_server.py.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import re
import shutil
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from cli.demo import EXAMPLE
from cli.entry import CLI_EXTRA_MODULES
from cli.errors import EXIT_USAGE
from cli.main import cli as ledger_cli
from ledger.core import merkle
from ledger.core.ed25519 import key_hash
from ledger.core.encoding import b64encode
from ledger.core.entry import parse_entry
from ledger.core.receipt import Receipt
from ledger.core.records import Statement, parse_record
from ledger.verify import cli as verify_cli
from tests.logfactory import LogFactory

ROOT = Path(__file__).resolve().parent.parent
Run = Callable[..., Result]
VRun = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    for name in list(os.environ):
        if name.startswith("LEDGER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LEDGER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: object, input: str | bytes | None = None) -> Result:
        return runner.invoke(
            ledger_cli, [str(a) for a in args], input=input, catch_exceptions=False
        )

    return invoke


@pytest.fixture
def vrun(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[VRun]:
    """``ledger-verify`` in-process: (exit code, stdout, stderr); ``stdin=`` bytes."""
    monkeypatch.delenv(verify_cli.LOG_KEY_ENV, raising=False)

    def _run(*args: str | Path, stdin: bytes | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = verify_cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    yield _run


# --- the base install -------------------------------------------------------------------


@pytest.mark.parametrize("module", ["click", "rich", "httpx"])
def test_ledger_without_the_cli_extra_names_it(module: str) -> None:
    # A base install lacks the cli extra's packages: None in sys.modules blocks an import.
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from cli.entry import main\n"
        "sys.exit(main(['--help']))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert r.returncode == EXIT_USAGE, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert module in CLI_EXTRA_MODULES
    assert f"({module} is not installed)" in line
    assert "pip install 'endorsement-ledger[cli]'" in line


def test_another_missing_module_is_not_hidden() -> None:
    code = (
        "import sys; sys.modules['cli.bulk'] = None\n"
        "from cli.entry import main\n"
        "sys.exit(main(['--help']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert r.returncode == 1 and "ModuleNotFoundError" in r.stderr  # a bug, not an extra


# --- ledger-verify: the log key, standard input, dates ----------------------------------


def _receipt(f: LogFactory, index: int) -> bytes:
    proof = merkle.inclusion_proof(index, f.size, f.store)
    return Receipt(index, proof, f.checkpoint(), None).encode()


@pytest.fixture
def small_log(tmp_path: Path) -> tuple[LogFactory, Path, Path, Path]:
    f = LogFactory(seed="conventions")
    f.grow(40)
    receipt = tmp_path / "r.tlog-proof"
    receipt.write_bytes(_receipt(f, 7))
    entry = tmp_path / "entry-7.txt"
    entry.write_bytes(f.entries[7])
    vkey_file = tmp_path / "log.vkey"
    vkey_file.write_text(f.log_key.vkey + "\n")
    return f, receipt, entry, vkey_file


def test_verify_log_key_from_a_file_or_the_environment(
    vrun: VRun, small_log: tuple[LogFactory, Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    f, receipt, entry, vkey_file = small_log
    assert vrun("receipt", receipt, "--entry", entry, "--log-key", vkey_file)[0] == 0
    code, _, err = vrun("receipt", receipt, "--entry", entry, "--log-key", "nonexistent.vkey")
    assert code == 2 and "neither a verifier key nor a readable file" in err
    # No --log-key, no --policy: LEDGER_LOG_KEY, itself a key or a file.
    code, _, err = vrun("receipt", receipt, "--entry", entry)
    assert code == 2 and "LEDGER_LOG_KEY" in err
    for value in (f.log_key.vkey, str(vkey_file)):
        monkeypatch.setenv("LEDGER_LOG_KEY", value)
        assert vrun("receipt", receipt, "--entry", entry)[0] == 0
    # --log-key wins over the environment (here: a wrong key in the environment).
    monkeypatch.setenv("LEDGER_LOG_KEY", "other.example+00000000+" + "A" * 44)
    assert vrun("receipt", receipt, "--entry", entry, "--log-key", vkey_file)[0] == 0
    assert vrun("log", f.write(vkey_file.parent / "log"), "-q")[0] == 2  # the bad env key


def test_verify_reads_standard_input(
    vrun: VRun, small_log: tuple[LogFactory, Path, Path, Path]
) -> None:
    _, receipt, entry, vkey_file = small_log
    code, out, err = vrun("receipt", "-", "--entry", entry, "--log-key", vkey_file,
                          stdin=receipt.read_bytes())  # fmt: skip
    assert code == 0, err
    assert out.startswith("VALID receipt: entry 7")
    code, out, _ = vrun("receipt", receipt, "--entry", "-", "--log-key", vkey_file,
                        stdin=entry.read_bytes())  # fmt: skip
    assert code == 0
    code, _, err = vrun("receipt", "-", "--entry", "-", "--log-key", vkey_file, stdin=b"")
    assert code == 2 and "only one input can be '-'" in err
    code, _, err = vrun("receipt", "-", "--entry", entry, "--log-key", vkey_file, stdin=b"junk")
    assert code == 1 and "INVALID receipt" in err


def test_verify_shows_dates_not_milliseconds(
    vrun: VRun, small_log: tuple[LogFactory, Path, Path, Path]
) -> None:
    _, receipt, entry, vkey_file = small_log
    time_ms = parse_entry(entry.read_bytes()).time_ms
    code, out, _ = vrun("receipt", receipt, "--entry", entry, "--log-key", vkey_file)
    assert code == 0
    assert f"logged at {verify_cli.format_time_ms(time_ms)};" in out
    assert re.search(r"logged at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z;", out)
    assert str(time_ms) not in out
    code, out, _ = vrun("receipt", receipt, "--entry", entry, "--log-key", vkey_file, "--json")
    assert f'"time_ms":{time_ms}' in out  # machines keep the format's milliseconds


def test_format_time_ms_is_exact() -> None:
    assert verify_cli.format_time_ms(0) == "1970-01-01T00:00:00.000Z"
    assert verify_cli.format_time_ms(1767232801234) == "2026-01-01T02:00:01.234Z"
    assert verify_cli.format_time_ms(1767232801999) == "2026-01-01T02:00:01.999Z"


def test_counts_agree_in_number(vrun: VRun, tmp_path: Path) -> None:
    assert verify_cli.counted(1, "signatory", "signatories") == "1 signatory"
    assert verify_cli.counted(0, "signatory", "signatories") == "0 signatories"
    assert verify_cli.counted(2, "tile") == "2 tiles"
    f = LogFactory(seed="one")
    f.grow(1)
    code, out, _ = vrun("log", f.write(tmp_path / "one"), "--log-key", f.log_key.vkey)
    assert code == 0
    assert "checked: entry 0 (1 entry, 1 signature, 1 tile)" in out, out


# --- OpenSSH public keys ------------------------------------------------------------------


def _ssh_pair(tmp_path: Path) -> tuple[bytes, Path]:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    line = pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    path = tmp_path / "id_ed25519.pub"
    path.write_bytes(line + b" someone@example\n")
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw, path


def test_openssh_public_keys_are_public_keys(run: Run, tmp_path: Path) -> None:
    raw, path = _ssh_pair(tmp_path)
    for spec in (str(path), path.read_text().strip()):  # a file, or the line itself
        result = run("key", "show", spec, "--json")
        assert result.exit_code == 0, result.output
        assert f'"key_hash": "{key_hash(raw).hex()}"' in result.stdout
        assert b64encode(raw) in result.stdout


def test_other_openssh_keys_are_refused_in_one_line(run: Run, tmp_path: Path) -> None:
    rsa = generate_private_key(public_exponent=65537, key_size=2048).public_key()
    line = rsa.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    (tmp_path / "id_rsa.pub").write_bytes(line + b"\n")
    result = run("key", "show", "id_rsa.pub")
    assert result.exit_code == EXIT_USAGE
    assert "is an OpenSSH ssh-rsa key, not an Ed25519 key" in result.stderr
    # An ssh-ed25519 line whose blob is not RFC 8709's encoding.
    name = b"ssh-ed25519"
    blob = struct.pack(">I", len(name)) + name + struct.pack(">I", 31) + bytes(31)
    (tmp_path / "bad.pub").write_text("ssh-ed25519 " + base64.b64encode(blob).decode() + "\n")
    result = run("key", "show", "bad.pub")
    assert result.exit_code == EXIT_USAGE
    assert "RFC 8709" in result.stderr and "Traceback" not in result.output


# --- standard input and output --------------------------------------------------------------


def test_text_file_and_out_may_be_dashes(run: Run, tmp_path: Path) -> None:
    run("key", "generate", "a.key", "--no-encrypt")
    text = "We call on everyone.\r\n"  # CRLF from a pipe becomes LF, as from a file
    result = run(
        "statement", "draft", "--title", "T", "--text-file", "-", "--author", "a.key.pub",
        "--out", "-", "--origin", "example.org/log", input=text,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    draft = parse_record(result.stdout.encode(), allow_draft=True)
    assert isinstance(draft.body, Statement) and draft.body.text == "We call on everyone.\n"
    assert "statement id:" in result.stderr  # the draft alone is on standard output
    signed = run("sign", "-", "--key", "a.key", input=result.stdout)
    assert signed.exit_code == 0, signed.output
    complete = parse_record(signed.stdout.encode())
    assert complete.record_id == draft.record_id and not complete.is_draft
    assert "signed the draft: complete" in signed.stderr
    assert not list(tmp_path.glob("-"))  # no file named "-"


def test_import_signatories_reads_standard_input(run: Run) -> None:
    # Every row is checked before any network: the error names standard input's line.
    bad = "name,kind\nDemo A,state\n,company\n"
    result = run("import-signatories", "-", "--server", "http://127.0.0.1:9", input=bad)
    assert result.exit_code == EXIT_USAGE
    assert "standard input, line 3: empty name" in result.stderr


# --- shell completion ---------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_completion_in_a_real_bash(run: Run, tmp_path: Path) -> None:
    for shell in ("bash", "zsh", "fish"):
        result = run("completion", shell)
        assert result.exit_code == 0 and "_LEDGER_COMPLETE" in result.stdout
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ledger"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m cli "$@"\n')
    wrapper.chmod(0o755)
    script = (
        'eval "$(ledger completion bash)"\n'
        "COMPREPLY=(); COMP_WORDS=(ledger stat); COMP_CWORD=1; _ledger_completion ledger\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
        "COMPREPLY=(); COMP_WORDS=(ledger completion ''); COMP_CWORD=2; _ledger_completion ledger\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        ["bash", "--norc", "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["statement", "statements", "bash", "zsh", "fish"]


# --- the demo says what its example holds ---------------------------------------------------


def test_the_demo_counts_are_those_of_its_example(run: Run) -> None:
    with (EXAMPLE / "signatories.csv").open(encoding="utf-8") as f:
        kinds = Counter(row["kind"] for row in csv.DictReader(f))
    total = sum(kinds.values())
    sentence = (
        f"{total} demo signatories ({kinds['state']} fictional states, "
        f"{kinds['company']} companies and {kinds['civil-society']} NGOs"
    )
    help_text = " ".join(run("demo", "--help").stdout.split())
    assert sentence in help_text
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert sentence in readme
