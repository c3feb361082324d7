"""RSA blind signatures, RFC 9474, variant RSABSSA-SHA384-PSS-Deterministic.

That variant is what RFC 9578 token type 2 uses: SHA-384, MGF1-SHA-384, a
48-byte (random) PSS salt and ``PrepareIdentity`` (the message is signed as is).
The result is an ordinary RSASSA-PSS signature, so :func:`verify` is plain
RSASSA-PSS-VERIFY (done by ``cryptography``); only the blinding, the raw
private operation and EMSA-PSS-ENCODE (which ``cryptography`` does not expose)
are written out here, step for step as the RFC numbers them.

The raw private operation uses Python integers (CRT with ``pow``), which is
not constant-time.  Blinding by the client hides the message from us, but not
the timing of our own exponentiation from a local observer: fine for the
reference issuer (development only); a production issuer should sign in an
HSM or with a constant-time library.
"""

from __future__ import annotations

import hashlib
import math
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "SALT_LENGTH",
    "BlindingError",
    "blind",
    "blind_sign",
    "emsa_pss_encode",
    "finalize",
    "verify",
    "verify_with_key",
]

SALT_LENGTH = 48
_HASH_LENGTH = 48  # SHA-384


class BlindingError(ValueError):
    """A step of RFC 9474 failed (invalid input, signing failure, invalid signature)."""


def _int_to_bytes(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def _mgf1_sha384(seed: bytes, length: int) -> bytes:
    out = b"".join(
        hashlib.sha384(seed + counter.to_bytes(4, "big")).digest()
        for counter in range(math.ceil(length / _HASH_LENGTH))
    )
    return out[:length]


def emsa_pss_encode(message: bytes, em_bits: int, salt: bytes) -> bytes:
    """EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with SHA-384 and MGF1-SHA-384."""
    em_len = math.ceil(em_bits / 8)
    m_hash = hashlib.sha384(message).digest()
    if em_len < _HASH_LENGTH + len(salt) + 2:
        raise BlindingError("encoding error")
    h = hashlib.sha384(b"\x00" * 8 + m_hash + salt).digest()
    ps = b"\x00" * (em_len - len(salt) - _HASH_LENGTH - 2)
    db = ps + b"\x01" + salt
    mask = _mgf1_sha384(h, em_len - _HASH_LENGTH - 1)
    masked = bytearray(a ^ b for a, b in zip(db, mask, strict=True))
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    return bytes(masked) + h + b"\xbc"


def blind(
    n: int, e: int, message: bytes, *, salt: bytes | None = None, r: int | None = None
) -> tuple[bytes, int]:
    """Blind (RFC 9474 §4.2): ``(blinded_msg, inv)``.  ``salt``/``r`` only for test vectors."""
    modulus_len = (n.bit_length() + 7) // 8
    salt = secrets.token_bytes(SALT_LENGTH) if salt is None else salt
    encoded = emsa_pss_encode(message, n.bit_length() - 1, salt)
    m = int.from_bytes(encoded, "big")
    if math.gcd(m, n) != 1:
        raise BlindingError("invalid input")
    while r is None:
        candidate = secrets.randbelow(n - 1) + 1  # uniform in [1, n)
        if math.gcd(candidate, n) == 1:
            r = candidate
    try:
        inv = pow(r, -1, n)
    except ValueError:
        raise BlindingError("blinding error") from None
    z = (m * pow(r, e, n)) % n
    return _int_to_bytes(z, modulus_len), inv


def blind_sign(key: rsa.RSAPrivateKey, blinded_msg: bytes) -> bytes:
    """BlindSign (RFC 9474 §4.3), checking ``s^e == m`` before answering (step 3-4)."""
    numbers = key.private_numbers()
    public = numbers.public_numbers
    n, e = public.n, public.e
    modulus_len = (n.bit_length() + 7) // 8
    if len(blinded_msg) != modulus_len:
        raise BlindingError("unexpected input size")
    m = int.from_bytes(blinded_msg, "big")
    if m >= n:
        raise BlindingError("message representative out of range")
    # RSASP1 with the CRT (RFC 8017 §5.1.2, case 2.b).
    s1 = pow(m, numbers.dmp1, numbers.p)
    s2 = pow(m, numbers.dmq1, numbers.q)
    h = (numbers.iqmp * (s1 - s2)) % numbers.p
    s = s2 + numbers.q * h
    if pow(s, e, n) != m:
        # A fault in the CRT would otherwise hand out a value that factors n.
        raise BlindingError("signing failure")
    return _int_to_bytes(s, modulus_len)


_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=SALT_LENGTH)


def verify(n: int, e: int, message: bytes, signature: bytes) -> bool:
    """RSASSA-PSS-VERIFY with SHA-384, MGF1-SHA-384 and a 48-byte salt."""
    return verify_with_key(rsa.RSAPublicNumbers(e, n).public_key(), message, signature)


def verify_with_key(key: rsa.RSAPublicKey, message: bytes, signature: bytes) -> bool:
    """:func:`verify` with a key object built once (a verifier keeps one per token key)."""
    if len(signature) != (key.key_size + 7) // 8:
        return False
    try:
        key.verify(
            signature,
            message,
            _PSS,
            hashes.SHA384(),
        )
    except InvalidSignature:
        return False
    return True


def finalize(n: int, e: int, message: bytes, blind_sig: bytes, inv: int) -> bytes:
    """Finalize (RFC 9474 §4.4): unblind and verify; :class:`BlindingError` if invalid."""
    modulus_len = (n.bit_length() + 7) // 8
    if len(blind_sig) != modulus_len:
        raise BlindingError("unexpected input size")
    z = int.from_bytes(blind_sig, "big")
    signature = _int_to_bytes((z * inv) % n, modulus_len)
    if not verify(n, e, message, signature):
        raise BlindingError("invalid signature")
    return signature
