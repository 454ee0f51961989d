"""Writes an age v1 file encrypted to a passphrase with a small scrypt work
factor, which stock `age` cannot be told to use (it tunes the factor to
about a second): the fuzz target's passphrase mode skips larger ones.
Built from the specification (age-encryption.org/v1) on pyca/cryptography
primitives; `fuzz/make-seeds` checks that stock `age -d` opens it.

    make_age_scrypt.py PASSPHRASE LOG2N < plaintext > file.age
"""
import base64
import os
import sys

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt


def b64(data):
    return base64.b64encode(data).rstrip(b"=")


def hkdf(ikm, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def main():
    passphrase, log2n = sys.argv[1].encode(), int(sys.argv[2])
    plain = sys.stdin.buffer.read()
    file_key = os.urandom(16)
    salt = os.urandom(16)
    wrap = Scrypt(salt=b"age-encryption.org/v1/scrypt" + salt, length=32,
                  n=1 << log2n, r=8, p=1).derive(passphrase)
    body = b64(ChaCha20Poly1305(wrap).encrypt(b"\0" * 12, file_key, None))
    lines = [body[i:i + 64] for i in range(0, len(body), 64)] or [b""]
    if len(lines[-1]) == 64:
        lines.append(b"")
    header = b"age-encryption.org/v1\n-> scrypt " + b64(salt) + b" %d\n" % log2n
    header += b"\n".join(lines) + b"\n---"
    mac = hmac.HMAC(hkdf(file_key, b"", b"header"), hashes.SHA256())
    mac.update(header)
    out = header + b" " + b64(mac.finalize()) + b"\n"
    nonce = os.urandom(16)
    out += nonce
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    chunks = [plain[i:i + 65536] for i in range(0, len(plain), 65536)] or [b""]
    for n, chunk in enumerate(chunks):
        last = n == len(chunks) - 1
        out += aead.encrypt(n.to_bytes(11, "big") + (b"\1" if last else b"\0"), chunk, None)
    sys.stdout.buffer.write(out)


main()
