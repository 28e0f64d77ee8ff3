"""Encrypted PKCS#8 with a memory-hard KDF: PBES2, scrypt and AES-256-CBC.

The format is the standard one (RFC 5958, section 3), PEM-armoured with the
label ``ENCRYPTED PRIVATE KEY`` (RFC 7468, section 11)::

    EncryptedPrivateKeyInfo ::= SEQUENCE {
        encryptionAlgorithm  SEQUENCE { OID pkcs5PBES2 (1.2.840.113549.1.5.13),
            PBES2-params ::= SEQUENCE {                                 -- RFC 8018 A.4
                keyDerivationFunc  SEQUENCE { OID id-scrypt (1.3.6.1.4.1.11591.4.11),
                    scrypt-params ::= SEQUENCE {                        -- RFC 7914 7.1
                        salt OCTET STRING, costParameter INTEGER,
                        blockSize INTEGER, parallelizationParameter INTEGER } },
                encryptionScheme   SEQUENCE { OID aes256-CBC-PAD (2.16.840.1.101.3.4.1.42),
                    iv OCTET STRING (16 bytes) } } },
        encryptedData        OCTET STRING }   -- AES-256-CBC of the PrivateKeyInfo, PKCS#7-padded

Why write it ourselves: ``cryptography`` (checked on 50.0) offers no builder for
PKCS#8 (``PrivateFormat.PKCS8.encryption_builder()`` raises: it serves only
OpenSSH and PKCS#12), and its ``BestAvailableEncryption`` writes PBES2 with
PBKDF2-HMAC-SHA256 at 2,048 iterations and AES-256-CBC (read with ``openssl
asn1parse``): a cheap KDF to brute-force offline. scrypt with N = 2^17, r = 8,
p = 1 (128 MiB, the RFC 7914 and OWASP interactive setting) costs a guesser
orders of magnitude more. Only encryption is ours: files are read back with
``cryptography``'s own ``load_pem_private_key`` (which supports scrypt in PBES2).

OpenSSL reads the same files (``openssl pkey -in key.pem``), but its 3.x command
line caps scrypt at 32 MiB, so it opens only files written with
``work_factor=14`` or less (16 MiB, what ``openssl pkcs8 -scrypt`` writes itself).
"""

from __future__ import annotations

import base64
import os
import textwrap

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

PEM_LABEL = "ENCRYPTED PRIVATE KEY"

DEFAULT_WORK_FACTOR = 17
"""log2 of scrypt's N: 2^17 with r = 8 uses 128 MiB and about half a second."""
MIN_WORK_FACTOR = 10
"""Low enough for fast tests; a real key should keep the default."""
MAX_WORK_FACTOR = 20

_SCRYPT_R = 8
_SCRYPT_P = 1
_SALT_LEN = 16
_AES_KEY_LEN = 32
_AES_BLOCK = 16

# DER of the object identifiers, tag and length included.
_OID_PBES2 = bytes.fromhex("06092a864886f70d01050d")  # 1.2.840.113549.1.5.13
_OID_SCRYPT = bytes.fromhex("06092b06010401da47040b")  # 1.3.6.1.4.1.11591.4.11
_OID_AES256_CBC = bytes.fromhex("060960864801650304012a")  # 2.16.840.1.101.3.4.1.42


def _der(tag: int, content: bytes) -> bytes:
    """One DER TLV with a definite, minimal length (X.690 section 8.1.3)."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _seq(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


def _octets(data: bytes) -> bytes:
    return _der(0x04, data)


def _uint(value: int) -> bytes:
    """A non-negative DER INTEGER: minimal two's complement, so a 0x00 before a high bit."""
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def encrypt_pkcs8(
    private_key_info_der: bytes, passphrase: bytes, *, work_factor: int = DEFAULT_WORK_FACTOR
) -> bytes:
    """Wrap an unencrypted PKCS#8 PrivateKeyInfo (DER) into the PEM described above."""
    if not passphrase:
        raise ValueError("an empty passphrase encrypts nothing")
    if not MIN_WORK_FACTOR <= work_factor <= MAX_WORK_FACTOR:
        raise ValueError(f"work factor must be in {MIN_WORK_FACTOR}..{MAX_WORK_FACTOR}")
    salt = os.urandom(_SALT_LEN)
    iv = os.urandom(_AES_BLOCK)
    n = 1 << work_factor
    key = Scrypt(salt=salt, length=_AES_KEY_LEN, n=n, r=_SCRYPT_R, p=_SCRYPT_P).derive(passphrase)
    padder = padding.PKCS7(_AES_BLOCK * 8).padder()
    padded = padder.update(private_key_info_der) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()

    kdf = _seq(_OID_SCRYPT, _seq(_octets(salt), _uint(n), _uint(_SCRYPT_R), _uint(_SCRYPT_P)))
    scheme = _seq(_OID_AES256_CBC, _octets(iv))
    der = _seq(_seq(_OID_PBES2, _seq(kdf, scheme)), _octets(ciphertext))
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN {PEM_LABEL}-----\n{body}\n-----END {PEM_LABEL}-----\n".encode("ascii")
