"""Create the log key of docker-compose.yml's ``log_key`` secret, or print its vkey.

deploy/init-secrets.sh runs this file inside the ledger image (``python - ARGS <
deploy/log_key.py``), so that the key is made and read by the same code as the
server's (``keys.logkey``)::

    python log_key.py create PATH ORIGIN [--owner UID:GID]
    python log_key.py vkey PATH ORIGIN

``create`` writes a new Ed25519 key to PATH (PKCS#8, unencrypted: the server must
start unattended, see keys/logkey.py), refuses to replace an existing file (a new
key is a new log identity), makes it mode 0400 and, with ``--owner``, gives it to
the server's user (the image's uid 10001), since a Docker secret keeps the owner and
mode of its file. Both commands print the log's vkey: ``<origin>+<key id>+<key>``,
the public key that verifiers, mirrors and witnesses must be given.
"""

from __future__ import annotations

import argparse
import os
import sys

from keys.errors import KeysError
from keys.logkey import load_or_create_log_key
from keys.signer import Signer


def _owner(text: str) -> tuple[int, int]:
    uid, _, gid = text.partition(":")
    if not (uid.isdigit() and gid.isdigit()):
        raise argparse.ArgumentTypeError(f"--owner {text!r}: write UID:GID, such as 10001:10001")
    return int(uid), int(gid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="log_key.py", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("create", "vkey"))
    parser.add_argument("path", help="the key file")
    parser.add_argument("origin", help="the log's origin, such as ledger.example.org/name")
    parser.add_argument("--owner", type=_owner, help="UID:GID to give the new key file to")
    args = parser.parse_args(argv)
    try:
        if args.command == "create":
            if os.path.lexists(args.path):
                print(f"log_key.py: {args.path} exists; not replacing it", file=sys.stderr)
                return 1
            signer = load_or_create_log_key(args.path, args.origin)
            os.chmod(args.path, 0o400)
            if args.owner is not None:
                os.chown(args.path, *args.owner)
        else:
            signer = Signer.load(args.path, None, name=args.origin, strict_permissions=True)
    except (KeysError, OSError, ValueError) as e:
        print(f"log_key.py: {e}", file=sys.stderr)
        return 1
    print(signer.vkey())
    return 0


if __name__ == "__main__":
    sys.exit(main())
