# Recomputes the known-answer envelopes of tresor-crypto/src/envelope.rs with
# an independent implementation: Python `cryptography` (AES-256-GCM and
# ChaCha20-Poly1305) and a from-the-RFC HChaCha20 for XChaCha20-Poly1305
# (draft-irtf-cfrg-xchacha §2.2: subkey = HChaCha20(key, nonce[0:16]),
# then ChaCha20-Poly1305 with nonce 00000000 ‖ nonce[16:24]).
# Run: python3 make_envelope_vectors.py   (needs the `cryptography` package)
import base64, struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

def rotl(v, c):
    return ((v << c) & 0xffffffff) | (v >> (32 - c))

def quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xffffffff; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xffffffff; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xffffffff; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xffffffff; s[b] = rotl(s[b] ^ s[c], 7)

def hchacha20(key, nonce16):
    s = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13); quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15)
        quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12); quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))

# The draft's HChaCha20 test vector (§2.2.1), to check the implementation.
assert hchacha20(bytes(range(32)), bytes.fromhex("000000090000004a0000000031415927")).hex() == \
    "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"

def envelope(kind, key, name, version, nonce, plaintext):
    aad = b"tresor v1 envelope" + name.encode() + struct.pack(">I", version)
    if kind == "aes":
        ct = AESGCM(key).encrypt(nonce, plaintext, aad)
    else:
        ct = ChaCha20Poly1305(hchacha20(key, nonce[:16])).encrypt(b"\0" * 4 + nonce[16:], plaintext, aad)
    data = base64.urlsafe_b64encode(nonce + ct).rstrip(b"=").decode()
    return f"tresor:v1:{name}:{version}:{data}"

key = b"\x42" * 32
print("KAT_AES", envelope("aes", key, "app/orders", 7, bytes(range(12)), b"tresor envelope"))
print("KAT_XCHACHA", envelope("xchacha", key, "app/orders", 7, bytes(range(24)), b"tresor envelope"))

# A record sealed under format-2 (bound) associated data (aead.rs,
# `known_bound_blob_opens`; VAULT-FORMAT.md, "Records"): kind 2, vault
# a0..af, row 1, version 2, data key 1, record id 5c..5c; blob = nonce ‖ ct ‖ tag.
def bound_aad(kind, vault_id, row, version, key_id, uid):
    return b"tresor v2\0" + bytes([kind]) + vault_id + struct.pack(">QQI", row, version, key_id) + uid

def xchacha_seal(key, nonce, plaintext, aad):
    return nonce + ChaCha20Poly1305(hchacha20(key, nonce[:16])).encrypt(b"\0" * 4 + nonce[16:], plaintext, aad)

aad = bound_aad(2, bytes(0xa0 + i for i in range(16)), 1, 2, 1, b"\x5c" * 16)
print("KAT_BOUND_BLOB", xchacha_seal(key, bytes(range(24)), b"tresor", aad).hex())
# The format-1 blob of make_vectors.py (aad "aad"), as a cross-check of xchacha_seal.
assert xchacha_seal(key, bytes(range(24)), b"tresor", b"aad").hex() == \
    "000102030405060708090a0b0c0d0e0f1011121314151617f88ee194a8d3b2625b7e84902794388e12b7242dd39c"
