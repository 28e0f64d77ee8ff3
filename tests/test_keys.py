"""The signer's side: key files, passphrases, OpenSSH import, Signer and the log key."""

from __future__ import annotations

import base64
import copy
import errno
import hashlib
import io
import os
import pickle
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

import keys.ssh
import ledger.core.ed25519
from keys import (
    PASSPHRASE_ENV,
    EmptyPassphraseError,
    InsecureKeyFileWarning,
    InsecurePermissionsError,
    KeyFileError,
    KeyFileExistsError,
    KeyFileNotFoundError,
    KeyNotEncryptedError,
    MissingDependencyError,
    NotAKeyError,
    PassphraseError,
    PassphraseRequiredError,
    Signer,
    UnsupportedKeyTypeError,
    WrongPassphraseError,
    check_key_file_permissions,
    generate_private_key,
    import_ssh_key,
    key_file_is_encrypted,
    load_or_create_log_key,
    load_private_key,
    public_key_b64,
    read_ssh_private_key,
    resolve_passphrase,
    save_private_key,
    ssh_key_is_encrypted,
)
from keys.pkcs8 import DEFAULT_WORK_FACTOR
from ledger.core.ed25519 import key_hash
from ledger.core.errors import FormatError
from ledger.core.note import check_key_name, key_id, make_vkey

FAST = 10  # scrypt N = 2^10: keeps tests quick; the default (2^17) is tested once
PASSPHRASE = b"correct horse battery staple"
SEED = bytes(range(32))
ORIGIN = "ledger.example.org/paris-call"
# docs/spec.md "Log key" and tests/vectors/records: the example log key's seed and vkey.
LOG_SEED = hashlib.sha256(b"endorsement-ledger example log key").digest()
LOG_VKEY = "ledger.example.org/paris-call+862f1e68+AWzr2KAlxRMQXlnjRueosC84ZigS4Xy0UvIsmb9bl/Jg"
SSH_KEYGEN = shutil.which("ssh-keygen")
OPENSSL = shutil.which("openssl")


def raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes_raw()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def secrets_of(signer_seed: bytes) -> list[str]:
    """Every spelling of a private key that must never appear in text."""
    return [signer_seed.hex(), base64.b64encode(signer_seed).decode(), repr(signer_seed)]


@pytest.fixture(autouse=True)
def _no_env_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)


# --- key files: save and load ---------------------------------------------------------------


def test_encrypted_round_trip(tmp_path: Path) -> None:
    key = generate_private_key()
    path = tmp_path / "signer.key"
    save_private_key(path, key, PASSPHRASE, work_factor=FAST)
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert key_file_is_encrypted(path)
    loaded = load_private_key(path, PASSPHRASE)
    assert raw_private(loaded) == raw_private(key)
    loaded.public_key().verify(loaded.sign(b"m"), b"m")
    assert sorted(os.listdir(tmp_path)) == ["signer.key"]  # no temporary file left


def _der_of(pem: bytes) -> bytes:
    body = b"".join(pem.splitlines()[1:-1])
    return base64.b64decode(body, validate=True)


def test_default_encryption_is_pbes2_scrypt_aes256(tmp_path: Path) -> None:
    path = tmp_path / "k"
    key = generate_private_key()
    save_private_key(path, key, PASSPHRASE)  # the default work factor, once
    der = _der_of(path.read_bytes())
    assert bytes.fromhex("06092a864886f70d01050d") in der  # PBES2
    assert bytes.fromhex("06092b06010401da47040b") in der  # id-scrypt
    assert bytes.fromhex("060960864801650304012a") in der  # aes256-CBC
    assert DEFAULT_WORK_FACTOR == 17
    assert bytes.fromhex("0203020000") in der  # costParameter N = 2^17
    assert raw_private(load_private_key(path, PASSPHRASE)) == raw_private(key)


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_openssl_reads_our_key_file(tmp_path: Path) -> None:
    assert OPENSSL is not None
    path = tmp_path / "k"
    signer = Signer.generate()
    signer.save(path, PASSPHRASE, work_factor=14)  # OpenSSL 3 caps scrypt at 32 MiB
    out = subprocess.run(
        [OPENSSL, "pkey", "-in", str(path), "-passin", "env:PW", "-pubout", "-outform", "DER"],
        capture_output=True,
        env={**os.environ, "PW": PASSPHRASE.decode()},
        check=True,
    ).stdout
    assert out[-32:] == signer.public_key


@pytest.mark.parametrize("passphrase", [None, b""])
def test_unencrypted_needs_explicit_opt_in(tmp_path: Path, passphrase: bytes | None) -> None:
    path = tmp_path / "k"
    key = generate_private_key()
    with pytest.raises(EmptyPassphraseError):
        save_private_key(path, key, passphrase)
    assert not path.exists()
    save_private_key(path, key, passphrase, allow_unencrypted=True)
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert not key_file_is_encrypted(path)
    assert raw_private(load_private_key(path, None)) == raw_private(key)


def test_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k"
    save_private_key(path, generate_private_key(), PASSPHRASE, work_factor=FAST)
    before = path.read_bytes()
    with pytest.raises(KeyFileExistsError, match="refusing to overwrite"):
        save_private_key(path, generate_private_key(), PASSPHRASE, work_factor=FAST)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["k"]


def test_never_writes_through_a_symlink(tmp_path: Path) -> None:
    link = tmp_path / "k"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KeyFileExistsError):
        save_private_key(link, generate_private_key(), PASSPHRASE, work_factor=FAST)
    assert not (tmp_path / "elsewhere").exists()


def test_lost_race_at_link_is_a_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The name appears between the early check and the link: link() is the guard."""
    path = tmp_path / "k"
    winner = b"winner's file"
    real_link = os.link

    def link_after_rival(src: str, dst: str) -> None:
        Path(dst).write_bytes(winner)
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_after_rival)
    with pytest.raises(KeyFileExistsError):
        save_private_key(path, generate_private_key(), PASSPHRASE, work_factor=FAST)
    assert path.read_bytes() == winner
    assert sorted(os.listdir(tmp_path)) == ["k"]


def test_without_hard_links_writes_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "k"
    key = generate_private_key()
    save_private_key(path, key, PASSPHRASE, work_factor=FAST)
    assert mode(path) == 0o600
    assert raw_private(load_private_key(path, PASSPHRASE)) == raw_private(key)
    assert sorted(os.listdir(tmp_path)) == ["k"]
    with pytest.raises(KeyFileExistsError):
        save_private_key(path, key, PASSPHRASE, work_factor=FAST)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_mode_is_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "k"
    old = os.umask(umask)
    try:
        save_private_key(path, generate_private_key(), PASSPHRASE, work_factor=FAST)
    finally:
        os.umask(old)
    assert mode(path) == 0o600


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="directory does not exist"):
        save_private_key(tmp_path / "no" / "k", generate_private_key(), PASSPHRASE)


def test_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k"
    save_private_key(path, generate_private_key(), PASSPHRASE, work_factor=FAST)
    with pytest.raises(WrongPassphraseError) as info:
        load_private_key(path, b"not it")
    message = str(info.value)
    assert "\n" not in message
    assert "wrong passphrase" in message
    assert "not it" not in message
    assert info.value.code == "wrong_passphrase"


def test_encrypted_key_without_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k"
    save_private_key(path, generate_private_key(), PASSPHRASE, work_factor=FAST)
    with pytest.raises(PassphraseRequiredError):
        load_private_key(path, None)


def test_passphrase_given_for_unencrypted_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    save_private_key(path, generate_private_key(), None, allow_unencrypted=True)
    with pytest.raises(KeyNotEncryptedError):
        load_private_key(path, PASSPHRASE)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def test_files_that_are_not_keys(tmp_path: Path) -> None:
    pub_pem = (
        generate_private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    good = generate_private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    damaged = good.replace(good.splitlines()[1][:8], b"!!!!!!!!")
    cases = {
        "text": b"hello\n",
        "empty": b"",
        "public": pub_pem,
        "damaged": damaged,
        "two-blocks": good + good,
        "garbage-der": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "unterminated": good.split(b"-----END")[0],
    }
    for name, data in cases.items():
        with pytest.raises(NotAKeyError):
            load_private_key(_write(tmp_path / name, data), None)
    with pytest.raises(NotAKeyError, match="regular file"):
        load_private_key(tmp_path, None)
    with pytest.raises(NotAKeyError, match="too large"):
        load_private_key(_write(tmp_path / "big", b"x" * 70000), None)
    with pytest.raises(KeyFileNotFoundError):
        load_private_key(tmp_path / "missing", None)


def test_openssh_file_given_to_the_key_file_loader(tmp_path: Path) -> None:
    data = generate_private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    with pytest.raises(NotAKeyError, match="OpenSSH"):
        load_private_key(_write(tmp_path / "id", data), None)


def test_other_key_types_are_refused(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    others = {
        "ec-pkcs8": ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "ed448-pkcs8": ed448.Ed448PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "ec-traditional": ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    }
    for name, data in others.items():
        with pytest.raises(UnsupportedKeyTypeError, match="only Ed25519"):
            load_private_key(_write(tmp_path / name, data), None)
    encrypted = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE),
    )
    with pytest.raises(UnsupportedKeyTypeError, match="EC secp256r1"):
        load_private_key(_write(tmp_path / "ec-enc", encrypted), PASSPHRASE)


def test_loose_permissions_warn_or_refuse(tmp_path: Path) -> None:
    path = tmp_path / "k"
    key = generate_private_key()
    save_private_key(path, key, PASSPHRASE, work_factor=FAST)
    check_key_file_permissions(path)  # 0600: fine
    path.chmod(0o644)
    with pytest.warns(InsecureKeyFileWarning, match="chmod 600"):
        loaded = load_private_key(path, PASSPHRASE)
    assert raw_private(loaded) == raw_private(key)
    with pytest.raises(InsecurePermissionsError, match="0644"):
        load_private_key(path, PASSPHRASE, strict_permissions=True)
    with pytest.raises(InsecurePermissionsError):
        check_key_file_permissions(path)
    path.chmod(0o620)  # group-writable only: still too open
    with pytest.raises(InsecurePermissionsError):
        check_key_file_permissions(path)


# --- passphrase sources -----------------------------------------------------------------------


def test_explicit_passphrase_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pw_file = tmp_path / "pw"
    pw_file.write_bytes(b"from file\n")
    monkeypatch.setenv(PASSPHRASE_ENV, "from env")
    assert resolve_passphrase(b"explicit", passphrase_file=pw_file) == b"explicit"
    assert resolve_passphrase("caf\u00e9") == "caf\u00e9".encode()
    assert resolve_passphrase(passphrase_file=pw_file) == b"from file"
    assert resolve_passphrase() == b"from env"
    with pytest.raises(PassphraseError):
        resolve_passphrase(b"")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"pw", b"pw"),
        (b"pw\n", b"pw"),
        (b"pw\r\n", b"pw"),
        (b"pw\n\n", b"pw\n"),  # one newline only
        (b" pw \n", b" pw "),
    ],
)
def test_passphrase_file_strips_one_newline(
    tmp_path: Path, content: bytes, expected: bytes
) -> None:
    pw_file = tmp_path / "pw"
    pw_file.write_bytes(content)
    assert resolve_passphrase(passphrase_file=pw_file) == expected


def test_bad_passphrase_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n")
    with pytest.raises(PassphraseError, match="empty"):
        resolve_passphrase(passphrase_file=empty)
    with pytest.raises(KeyFileError, match="does not exist"):
        resolve_passphrase(passphrase_file=tmp_path / "missing")


def test_env_passphrase_opens_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k"
    save_private_key(path, generate_private_key(), PASSPHRASE, work_factor=FAST)
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE.decode())
    load_private_key(path, resolve_passphrase())
    monkeypatch.setenv(PASSPHRASE_ENV, "")
    with pytest.raises(PassphraseError, match="empty"):
        resolve_passphrase()


def test_no_terminal_no_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("typed\n"))

    def must_not_prompt(prompt: str = "") -> str:
        raise AssertionError("prompted without a terminal")

    monkeypatch.setattr("getpass.getpass", must_not_prompt)
    with pytest.raises(PassphraseRequiredError, match=PASSPHRASE_ENV):
        resolve_passphrase()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _answers(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    prompts: list[str] = []
    queue = list(answers)

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return queue.pop(0)

    monkeypatch.setattr(sys, "stdin", _Tty())
    monkeypatch.setattr("getpass.getpass", fake_getpass)
    return prompts


def test_prompt_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = _answers(monkeypatch, "typed")
    assert resolve_passphrase(prompt="Key passphrase: ") == b"typed"
    assert prompts == ["Key passphrase: "]


def test_prompt_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    _answers(monkeypatch, "one", "one")
    assert resolve_passphrase(confirm=True) == b"one"
    _answers(monkeypatch, "one", "two")
    with pytest.raises(PassphraseError, match="do not match"):
        resolve_passphrase(confirm=True)
    _answers(monkeypatch, "")
    with pytest.raises(PassphraseError, match="empty"):
        resolve_passphrase()


# --- OpenSSH import ---------------------------------------------------------------------------

_HAVE_BCRYPT = keys.ssh._bcrypt_available()


def make_ssh_key(directory: Path, kind: str, passphrase: bytes | None) -> Path:
    """An OpenSSH private key file from ssh-keygen, or from cryptography if it is missing."""
    path = directory / f"id_{kind}{'_enc' if passphrase else ''}"
    if SSH_KEYGEN is not None:
        args = [SSH_KEYGEN, "-q", "-t", kind, "-C", "test@example", "-f", str(path)]
        args += ["-N", (passphrase or b"").decode()]
        if kind == "rsa":
            args += ["-b", "2048"]
        subprocess.run(args, check=True, capture_output=True)
        return path
    generated: Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "ed25519":
        generated = Ed25519PrivateKey.generate()
    elif kind == "rsa":
        generated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        generated = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    path.write_bytes(
        generated.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
        )
    )
    path.chmod(0o600)
    path.with_name(path.name + ".pub").write_bytes(
        generated.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    )
    return path


def ssh_public_key(path: Path) -> bytes:
    """The raw Ed25519 key of an OpenSSH ``.pub`` line (string type, string key)."""
    blob = base64.b64decode(path.with_name(path.name + ".pub").read_text().split()[1])
    assert blob[:15] == b"\x00\x00\x00\x0bssh-ed25519"
    return blob[-32:]


def test_import_plain_ssh_key(tmp_path: Path) -> None:
    ssh = make_ssh_key(tmp_path, "ed25519", None)
    assert not ssh_key_is_encrypted(ssh)
    out = tmp_path / "imported.key"
    signer = import_ssh_key(ssh, out, PASSPHRASE, work_factor=FAST)
    assert signer.public_key == ssh_public_key(ssh)
    assert mode(out) == 0o600
    assert key_file_is_encrypted(out)
    assert Signer.load(out, PASSPHRASE).public_key == signer.public_key
    with pytest.raises(KeyFileExistsError):
        import_ssh_key(ssh, out, PASSPHRASE, work_factor=FAST)
    with pytest.raises(EmptyPassphraseError):
        import_ssh_key(ssh, tmp_path / "plain.key", None)
    assert not (tmp_path / "plain.key").exists()
    with pytest.raises(KeyNotEncryptedError):
        read_ssh_private_key(ssh, b"unneeded")


@pytest.mark.skipif(not _HAVE_BCRYPT, reason="bcrypt not installed")
def test_import_encrypted_ssh_key(tmp_path: Path) -> None:
    ssh_pw = b"ssh secret"
    ssh = make_ssh_key(tmp_path, "ed25519", ssh_pw)
    assert ssh_key_is_encrypted(ssh)
    with pytest.raises(PassphraseRequiredError):
        read_ssh_private_key(ssh, None)
    with pytest.raises(WrongPassphraseError):
        read_ssh_private_key(ssh, b"wrong")
    out = tmp_path / "imported.key"
    signer = import_ssh_key(ssh, out, PASSPHRASE, ssh_passphrase=ssh_pw, work_factor=FAST)
    assert signer.public_key == ssh_public_key(ssh)
    assert Signer.load(out, PASSPHRASE).public_key == signer.public_key


def test_encrypted_ssh_key_without_bcrypt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if _HAVE_BCRYPT:
        ssh = make_ssh_key(tmp_path, "ed25519", b"ssh secret")
    else:  # written by hand: only the header is read before the check
        ssh = tmp_path / "id"
        header = b"openssh-key-v1\x00"
        for s in (b"aes256-ctr", b"bcrypt", b"\x00" * 4):
            header += len(s).to_bytes(4, "big") + s
        pub = b"\x00\x00\x00\x0bssh-ed25519" + b"\x00\x00\x00\x20" + b"\x01" * 32
        header += (1).to_bytes(4, "big") + len(pub).to_bytes(4, "big") + pub
        header += (0).to_bytes(4, "big")
        body = base64.b64encode(header)
        _write(
            ssh,
            b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
            + body
            + b"\n-----END OPENSSH PRIVATE KEY-----\n",
        )
    monkeypatch.setattr(keys.ssh, "_bcrypt_available", lambda: False)
    with pytest.raises(MissingDependencyError, match="bcrypt"):
        read_ssh_private_key(ssh, b"ssh secret")


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
def test_other_ssh_key_types_are_refused(tmp_path: Path, kind: str) -> None:
    ssh = make_ssh_key(tmp_path, kind, None)
    with pytest.raises(UnsupportedKeyTypeError, match="only ssh-ed25519") as info:
        import_ssh_key(ssh, tmp_path / "out", PASSPHRASE, work_factor=FAST)
    assert ("ssh-rsa" if kind == "rsa" else "ecdsa-sha2-nistp256") in str(info.value)
    assert not (tmp_path / "out").exists()


def test_not_an_ssh_key(tmp_path: Path) -> None:
    with pytest.raises(NotAKeyError):
        read_ssh_private_key(_write(tmp_path / "x", b"ssh-ed25519 AAAA comment\n"), None)
    truncated = b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
    truncated += base64.b64encode(b"openssh-key-v1\x00\x00\x00\x00\x04no")
    truncated += b"\n-----END OPENSSH PRIVATE KEY-----\n"
    with pytest.raises(NotAKeyError, match="truncated"):
        read_ssh_private_key(_write(tmp_path / "t", truncated), None)


# --- public forms and the Signer ----------------------------------------------------------------


def test_key_id_matches_the_signed_note_example() -> None:
    vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
    encoded = base64.b64decode(vkey.split("+")[2])
    assert encoded[0] == 0x01
    pub = encoded[1:]
    assert key_id("example.com/foo", pub).hex() == "530d903a"
    assert make_vkey("example.com/foo", pub) == vkey
    assert key_id("example.com/bar", pub).hex() != "530d903a"


def test_example_log_key_of_the_spec() -> None:
    signer = Signer.from_seed(LOG_SEED, name=ORIGIN)
    note_signer = signer.note_signer()
    assert note_signer.vkey == LOG_VKEY
    assert signer.vkey() == LOG_VKEY
    assert note_signer.key_id.hex() == "862f1e68"
    # tests/vectors/records/checkpoint.txt: Ed25519 is deterministic, so the line is too.
    text = f"{ORIGIN}\n8\n82bE9qotd25D+kjENwyBsC2ty3HK/8KhWvNRET4A/4M=\n".encode()
    line = base64.b64encode(note_signer.key_id + note_signer.sign(text)).decode()
    assert line == (
        "hi8eaJ0p0GVhQKj4WEnfPD4JC7PLd3HTlvj3V0t/7E4yJqmR/WvNB3bVHQT1PdfUV2pWsq4xhIfhYpvFP6RcagMDgAQ="
    )


def test_from_seed_is_deterministic() -> None:
    a, b = Signer.from_seed(SEED), Signer.from_seed(SEED)
    assert a.public_key == b.public_key
    assert a.sign(b"msg") == b.sign(b"msg")
    assert Signer.from_seed(bytes(32)).public_key != a.public_key
    # RFC 8032 section 7.1, TEST 1: the seed 9d61b19d... has this public key.
    rfc = Signer.from_seed(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    )
    assert rfc.public_key.hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(FormatError):
            Signer.from_seed(bad)


def test_signer_public_parts_and_signature() -> None:
    signer = Signer.generate()
    assert len(signer.public_key) == 32
    assert (
        signer.key_hash == hashlib.sha256(signer.public_key).digest() == key_hash(signer.public_key)
    )
    assert signer.public_key_b64 == public_key_b64(signer.public_key)
    assert base64.b64decode(signer.public_key_b64) == signer.public_key
    sig = signer.sign(b"message")
    assert len(sig) == 64
    Ed25519PublicKey.from_public_bytes(signer.public_key).verify(sig, b"message")
    ledger.core.ed25519.verify(signer.public_key, sig, b"message")  # the spec's acceptance rule
    with pytest.raises(FormatError):
        key_hash(b"short")


def test_note_signer_names() -> None:
    signer = Signer.from_seed(SEED)
    note_signer = signer.note_signer("example.com/log")
    assert note_signer.name == "example.com/log"
    expected = hashlib.sha256(b"example.com/log\n\x01" + signer.public_key).digest()[:4]
    assert note_signer.key_id == expected
    assert note_signer.sign(b"text\n") == signer.sign(b"text\n")
    for bad in ("", "has space", "a+b", "tab\there", "nbsp\u00a0here", "nl\n"):
        with pytest.raises(FormatError):
            signer.note_signer(bad)
    with pytest.raises(ValueError, match="no key name"):
        signer.note_signer()


def test_save_and_load_a_signer(tmp_path: Path) -> None:
    signer = Signer.from_seed(SEED)
    signer.save(tmp_path / "k", PASSPHRASE, work_factor=FAST)
    loaded = Signer.load(tmp_path / "k", PASSPHRASE, name="example.com/me")
    assert loaded.public_key == signer.public_key
    assert loaded.name == "example.com/me"


def test_nothing_secret_in_repr_str_pickle_or_errors(tmp_path: Path) -> None:
    signer = Signer.from_seed(SEED, name="example.com/me")
    note_signer = signer.note_signer()
    texts = [repr(signer), str(signer), repr(note_signer), str(note_signer)]
    assert signer.key_hash.hex() in repr(signer)
    for obj in (signer, note_signer):
        with pytest.raises(TypeError):
            pickle.dumps(obj)
        with pytest.raises(TypeError):
            copy.copy(obj)
        with pytest.raises(TypeError):
            copy.deepcopy(obj)
    path = tmp_path / "k"
    signer.save(path, PASSPHRASE, work_factor=FAST)
    attempts: list[Callable[[], object]] = [
        lambda: load_private_key(path, b"guess"),
        lambda: load_private_key(path, None),
        lambda: signer.save(path, PASSPHRASE),
        lambda: Signer.from_seed(SEED[:31]),
    ]
    for attempt in attempts:
        with pytest.raises(Exception) as info:  # any error: its text is what we read
            attempt()
        texts += [str(info.value), repr(info.value)]
    for text in texts:
        for secret in [*secrets_of(SEED), PASSPHRASE.decode(), "guess"]:
            assert secret not in text, text


# --- the log key --------------------------------------------------------------------------------


def test_log_key_created_once_then_loaded(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    first = load_or_create_log_key(path, ORIGIN)
    assert mode(path) == 0o600
    assert not key_file_is_encrypted(path)  # a server starts unattended
    assert first.name == ORIGIN
    assert first.note_signer().name == ORIGIN
    again = load_or_create_log_key(path, ORIGIN)
    assert again.public_key == first.public_key
    assert again.vkey() == first.vkey()


def test_encrypted_log_key(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    first = load_or_create_log_key(path, ORIGIN, PASSPHRASE, work_factor=FAST)
    assert key_file_is_encrypted(path)
    assert load_or_create_log_key(path, ORIGIN, PASSPHRASE).public_key == first.public_key
    with pytest.raises(PassphraseRequiredError):
        load_or_create_log_key(path, ORIGIN)
    with pytest.raises(WrongPassphraseError):
        load_or_create_log_key(path, ORIGIN, b"wrong")
    plain = tmp_path / "plain.key"
    load_or_create_log_key(plain, ORIGIN)
    with pytest.raises(KeyNotEncryptedError):
        load_or_create_log_key(plain, ORIGIN, PASSPHRASE)


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o660, 0o700 | 0o004])
def test_log_key_with_loose_permissions_is_refused(tmp_path: Path, loose: int) -> None:
    path = tmp_path / "log.key"
    load_or_create_log_key(path, ORIGIN)
    before = path.read_bytes()
    path.chmod(loose)
    with pytest.raises(InsecurePermissionsError, match="chmod 600"):
        load_or_create_log_key(path, ORIGIN)
    assert path.read_bytes() == before  # refused, never replaced


def test_log_key_origin_must_be_a_key_name(tmp_path: Path) -> None:
    with pytest.raises(FormatError):
        load_or_create_log_key(tmp_path / "k", "not an origin")
    assert not (tmp_path / "k").exists()


def test_log_key_lost_race_loads_the_winner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process creates the file between our failed load and our save."""
    path = tmp_path / "log.key"
    winner = Signer.from_seed(SEED)
    real_save = save_private_key

    def rival_first(p: Path, key: Ed25519PrivateKey, pw: bytes | None, **kw: object) -> None:
        winner.save(p, None, allow_unencrypted=True)
        real_save(p, key, pw, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr("keys.logkey.save_private_key", rival_first)
    got = load_or_create_log_key(path, ORIGIN)
    assert got.public_key == winner.public_key


def _race(path: Path, n: int) -> list[bytes]:
    """n threads released together, each loading or creating the log key at path."""
    barrier = threading.Barrier(n)
    results: list[bytes] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait()
            results.append(load_or_create_log_key(path, ORIGIN).public_key)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_log_key_race_between_threads(tmp_path: Path) -> None:
    for round_ in range(5):
        path = tmp_path / f"log{round_}.key"
        results = _race(path, 8)
        assert len(results) == 8
        assert len(set(results)) == 1
        assert Signer.load(path, None).public_key == results[0]
    assert sorted(os.listdir(tmp_path)) == [f"log{i}.key" for i in range(5)]


def test_log_key_race_between_processes(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        "from keys import load_or_create_log_key\n"
        "while not os.path.exists(sys.argv[2]):\n"
        "    time.sleep(0.001)\n"
        "print(load_or_create_log_key(sys.argv[1], sys.argv[3]).public_key.hex())\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path), str(go), ORIGIN],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    go.touch()
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        outputs.append(out.decode().strip())
    assert len(set(outputs)) == 1
    assert Signer.load(path, None).public_key.hex() == outputs[0]


@pytest.mark.parametrize("name", ["ok\x7fname", "ok\x85name", "a\tb", "a b", "a+b", ""])
def test_key_names_follow_the_one_signed_note_rule(name: str) -> None:
    """keys/ has no key-name rule of its own: it accepts exactly what ledger.core.note does.

    C2SP signed-note forbids only controls below U+0020, spaces and '+': DEL is allowed.
    """
    try:
        check_key_name(name)
        core_accepts = True
    except FormatError:
        core_accepts = False
    try:
        Signer.generate(name=name)
        keys_accepts = True
    except FormatError:
        keys_accepts = False
    assert keys_accepts == core_accepts
    assert core_accepts == (name in ("ok\x7fname",))
