"""``ledger key``: generate, show, import-ssh, rotate, revoke."""

from __future__ import annotations

from pathlib import Path

import click

from cli.errors import InputError, KeyProblemError
from cli.flows import confirm, drafting, session_for, user_text, write_draft
from cli.keyio import (
    is_hex_id,
    load_signer,
    make_key_directory,
    new_passphrase,
    pub_path,
    read_public_key,
    refuse_existing,
    write_public_key,
)
from cli.options import (
    OrderedGroup,
    draft_options,
    json_option,
    passphrase_option,
    receipt_option,
    server_options,
    signed_at_option,
)
from cli.output import emit_json, note, warn
from cli.session import ServerOptions
from cli.submit import draft_of, now, report, sign, signatory_of, submit_record
from keys.passphrase import resolve_passphrase
from keys.signer import Signer
from keys.ssh import import_ssh_key, ssh_key_is_encrypted
from ledger.core.ed25519 import key_hash
from ledger.core.encoding import b64encode
from ledger.core.note import make_vkey
from ledger.core.records import Revocation, Rotation

KEY_PATH = click.Path(dir_okay=False, path_type=Path)
EXISTING_KEY = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group("key", cls=OrderedGroup)
def key_group() -> None:
    """Make and manage signing keys (Ed25519).

    A key file is encrypted with a passphrase unless you ask for --no-encrypt;
    beside it, KEY.pub holds the public key, which you can share.

    \b
    Example:
      ledger key generate alice.key
      ledger key show alice.key.pub
    """


def _describe(path: Path, signer_pub: bytes, *, encrypted: bool) -> None:
    click.echo(f"key file:     {path} ({'encrypted' if encrypted else 'NOT encrypted'})")
    click.echo(f"public key:   {b64encode(signer_pub)}")
    click.echo(f"signatory id: {key_hash(signer_pub).hex()}  (the key hash)")
    click.echo(f"public file:  {pub_path(path)}")


@key_group.command("generate")
@click.argument("path", type=KEY_PATH)
@click.option(
    "--no-encrypt",
    is_flag=True,
    help="Store the key without a passphrase. Only for throwaway keys (tests, demos).",
)
@passphrase_option
@json_option
def generate(path: Path, no_encrypt: bool, passphrase_file: Path | None, as_json: bool) -> None:
    """Generate a new signing key.

    The key goes to PATH (mode 0600), its public half to PATH.pub.

    The passphrase comes from --passphrase-file, LEDGER_KEY_PASSPHRASE or a prompt.
    An existing file is never overwritten.

    \b
    Example:
      ledger key generate ministry.key
      LEDGER_KEY_PASSPHRASE=... ledger key generate ngo.key
      ledger key generate throwaway.key --no-encrypt
    """
    refuse_existing(path)
    refuse_existing(pub_path(path))
    passphrase = new_passphrase(path, no_encrypt=no_encrypt, passphrase_file=passphrase_file)
    make_key_directory(path)
    signer = Signer.generate()
    signer.save(path, passphrase, allow_unencrypted=no_encrypt)
    write_public_key(path, signer.public_key)
    if as_json:
        emit_json(_key_doc(path, signer.public_key, encrypted=not no_encrypt))
        return
    _describe(path, signer.public_key, encrypted=not no_encrypt)
    if no_encrypt:
        warn(f"{path} is not encrypted: anyone who can read it can sign as you")
    note(
        f"Next: ledger register --key {path} --name NAME --kind KIND\n"
        f"  (or, to replace a signatory's key: ledger key rotate --key OLD --new-key {path})"
    )


def _key_doc(
    path: Path | None, pub: bytes, *, encrypted: bool | None = None, name: str | None = None
) -> dict[str, object]:
    doc: dict[str, object] = {
        "public_key": b64encode(pub),
        "key_hash": key_hash(pub).hex(),
        "vkey": make_vkey(name or key_hash(pub).hex(), pub),
    }
    if path is not None:
        doc["path"] = str(path)
        doc["public_file"] = str(pub_path(path))
    if encrypted is not None:
        doc["encrypted"] = encrypted
    return doc


@key_group.command("show")
@click.argument("path", metavar="KEY")
@click.option(
    "--name",
    "vkey_name",
    default=None,
    metavar="NAME",
    help="The signed-note key name of the vkey shown (default: the key hash).",
)
@passphrase_option
@json_option
def show(path: str, vkey_name: str | None, passphrase_file: Path | None, as_json: bool) -> None:
    """Show a key's hash, public key and vkey.

    The key hash is the signatory id of a signatory registered with this key.

    KEY is a key file (its KEY.pub is read if present: no passphrase needed), a
    .pub file, or a base64 public key.

    \b
    Example:
      ledger key show alice.key
      ledger key show alice.key.pub --json
    """
    pub = read_public_key(path, passphrase_file)
    try:
        doc = _key_doc(None, pub, name=vkey_name)
    except ValueError as e:
        raise InputError(f"--name {vkey_name!r}: {e}") from None
    if as_json:
        emit_json(doc)
        return
    click.echo(f"key hash:   {doc['key_hash']}  (the signatory id of a key registered with it)")
    click.echo(f"public key: {doc['public_key']}")
    click.echo(f"vkey:       {doc['vkey']}")


@key_group.command("import-ssh")
@click.argument("ssh_key", type=EXISTING_KEY)
@click.argument("path", type=KEY_PATH)
@click.option("--no-encrypt", is_flag=True, help="Store the imported key without a passphrase.")
@passphrase_option
@click.option(
    "--ssh-passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The OpenSSH key's passphrase, if it has one (else LEDGER_KEY_PASSPHRASE or a prompt).",
)
@json_option
def import_ssh(
    *,
    ssh_key: Path,
    path: Path,
    no_encrypt: bool,
    passphrase_file: Path | None,
    ssh_passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Import an OpenSSH Ed25519 key into a key file.

    The key is one made with ssh-keygen -t ed25519.

    \b
    Example:
      ledger key import-ssh ~/.ssh/id_ed25519 me.key
    """
    refuse_existing(path)
    refuse_existing(pub_path(path))
    ssh_passphrase = None
    if ssh_key_is_encrypted(ssh_key):
        ssh_passphrase = resolve_passphrase(
            passphrase_file=ssh_passphrase_file, prompt=f"Passphrase of {ssh_key}: "
        )
    passphrase = new_passphrase(path, no_encrypt=no_encrypt, passphrase_file=passphrase_file)
    make_key_directory(path)
    signer = import_ssh_key(
        ssh_key, path, passphrase, ssh_passphrase=ssh_passphrase, allow_unencrypted=no_encrypt
    )
    write_public_key(path, signer.public_key)
    if as_json:
        emit_json(_key_doc(path, signer.public_key, encrypted=not no_encrypt))
        return
    _describe(path, signer.public_key, encrypted=not no_encrypt)


# --- rotate and revoke: records ---------------------------------------------------------


@key_group.command("rotate")
@click.option(
    "--key", "key", required=True, metavar="OLD", help="The signatory's current key file."
)
@click.option(
    "--new-key",
    required=True,
    metavar="NEW",
    help="The new key file (make it first with 'ledger key generate').",
)
@click.option(
    "--new-passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The new key's passphrase, if it differs from the old one's.",
)
@passphrase_option
@server_options
@receipt_option
@draft_options
@signed_at_option
@json_option
def rotate(
    *,
    key: str,
    new_key: str,
    new_passphrase_file: Path | None,
    passphrase_file: Path | None,
    conn: ServerOptions,
    receipt_path: Path | None,
    draft_path: Path | None,
    origin: str | None,
    signed_at: int | None,
    as_json: bool,
) -> None:
    """Replace a signatory's key by a new one.

    The rotation is signed by both keys.

    The signatory keeps its id; from then on only NEW signs for it. The old key
    can still revoke itself ('ledger key revoke --key OLD').

    \b
    Example:
      ledger key generate alice-2025.key
      ledger key rotate --key alice.key --new-key alice-2025.key
    """
    for p in (key, new_key):
        if draft_path is None and not Path(p).exists():
            raise KeyProblemError(
                f"{p} does not exist"
                + (" (generate it first: ledger key generate " + p + ")" if p == new_key else "")
            )
    if draft_path is not None:
        with drafting(conn, origin) as ctx:
            old_pub = read_public_key(key, passphrase_file)
            new_pub = read_public_key(new_key, new_passphrase_file or passphrase_file)
            body = Rotation(
                ctx.origin, signed_at or now(), signatory_of(ctx.client, old_pub), new_pub
            )
            write_draft(draft_path, draft_of(body))
        return
    with session_for(conn, for_write=True) as session:
        old = load_signer(Path(key), passphrase_file)
        new = load_signer(Path(new_key), new_passphrase_file or passphrase_file)
        if old.public_key == new.public_key:
            raise KeyProblemError("--key and --new-key are the same key")
        sid = signatory_of(session.client, old.public_key)
        body = Rotation(session.origin, signed_at or now(), sid, new.public_key)
        record = sign(sign(body, old), new)
        saved = submit_record(session, record, receipt_path=receipt_path)
        report(
            saved,
            as_json=as_json,
            origin=session.origin,
            extra={"signatory": sid.hex(), "new_key_hash": key_hash(new.public_key).hex()},
        )


@key_group.command("revoke")
@click.option(
    "--key",
    "key",
    required=True,
    metavar="KEY",
    help="The key file that signs the revocation: the key revoked itself, or the "
    "signatory's current key.",
)
@click.option(
    "--revoked-key",
    default=None,
    metavar="PUBKEY",
    help="The key to revoke, if not --key itself: a .pub file, key file or base64 key "
    "(a former key of the signatory, say one that leaked).",
)
@click.option("--reason", default=None, help="Why, in one line (published in the log).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@passphrase_option
@server_options
@receipt_option
@draft_options
@signed_at_option
@json_option
def revoke(
    *,
    key: str,
    revoked_key: str | None,
    reason: str | None,
    yes: bool,
    passphrase_file: Path | None,
    conn: ServerOptions,
    receipt_path: Path | None,
    draft_path: Path | None,
    origin: str | None,
    signed_at: int | None,
    as_json: bool,
) -> None:
    """Revoke a key, for good.

    Revoking the signatory's current key deactivates the signatory: it can sign
    nothing more, ever (its endorsements made before stay counted). Revoking a
    former key records that it was compromised.

    \b
    Example:
      ledger key revoke --key alice.key --reason "laptop stolen"
      ledger key revoke --key alice-2025.key --revoked-key alice.key.pub
    """
    reason_text = user_text(reason, "--reason") if reason is not None else None
    if revoked_key is not None and is_hex_id(revoked_key):
        raise KeyProblemError(
            "--revoked-key takes a public key (base64, .pub or key file), not a hash"
        )
    if draft_path is not None:
        with drafting(conn, origin) as ctx:
            signer_pub = read_public_key(key, passphrase_file)
            target = read_public_key(revoked_key, passphrase_file) if revoked_key else signer_pub
            body = Revocation(
                ctx.origin,
                signed_at or now(),
                signatory_of(ctx.client, target),
                target,
                reason_text,
            )
            write_draft(draft_path, draft_of(body))
        return
    if not Path(key).exists():
        raise KeyProblemError(f"{key} does not exist")
    with session_for(conn, for_write=True) as session:
        signer = load_signer(Path(key), passphrase_file)
        target = read_public_key(revoked_key, passphrase_file) if revoked_key else signer.public_key
        confirm(
            f"Revoke key {key_hash(target).hex()}? This cannot be undone; if it is the "
            "signatory's current key, the signatory can sign nothing more.",
            yes=yes,
        )
        sid = signatory_of(session.client, target)
        body = Revocation(session.origin, signed_at or now(), sid, target, reason_text)
        saved = submit_record(session, sign(body, signer), receipt_path=receipt_path)
        report(
            saved,
            as_json=as_json,
            origin=session.origin,
            extra={"signatory": sid.hex(), "revoked_key_hash": key_hash(target).hex()},
        )


__all__ = ["key_group"]
