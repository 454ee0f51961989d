# Recomputes the known-answer vectors of tresor-crypto with independent
# implementations (Python hmac/hashlib, argon2-cffi, PyNaCl/libsodium).
# Run: python3 -m venv v && v/bin/pip install argon2-cffi pynacl && v/bin/python make_vectors.py
import hmac, hashlib
from argon2.low_level import hash_secret_raw, Type
import nacl.bindings as nb
def hkdf(ikm, salt, info, n=32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:n]
mk = bytes(range(32)); vid = bytes(0xa0+i for i in range(16))
idx = hkdf(mk, vid, b"tresor v1 index"); aud = hkdf(mk, vid, b"tresor v1 audit")
print("INDEX", idx.hex()); print("AUDIT", aud.hex())
print("WRAP", hkdf(mk, vid, b"tresor v1 data-key wrap").hex())
print("FP", hkdf(mk, vid, b"tresor v1 fingerprint").hex())
print("BIDX", hmac.new(idx, b"openai/api_key", hashlib.sha256).hexdigest())
print("AMAC", hmac.new(aud, bytes(32)+(1).to_bytes(8,'big')+(1700000000000).to_bytes(8,'big')+b"body", hashlib.sha256).hexdigest())
print("ARGON2", hash_secret_raw(b"password", b"\x11"*16, time_cost=1, memory_cost=8192, parallelism=1, hash_len=32, type=Type.ID, version=19).hex())
print("KEYFILE", hkdf(b"\x22"*32, b"\x33"*16, b"tresor v1 key-file slot").hex())
print("PKCS11", hkdf(b"\x22"*32, b"\x33"*16, b"tresor v1 pkcs11 slot").hex())
nonce = bytes(range(24))
ct = nb.crypto_aead_xchacha20poly1305_ietf_encrypt(b"tresor", b"aad", nonce, b"\x42"*32)
print("BLOB", (nonce+ct).hex())
print("AUDIT_HEAD", hmac.new(aud, b"tresor v1 audit head" + (7).to_bytes(8,"big") + b"\x5a"*32, hashlib.sha256).hexdigest())
