"""Stateless API nonces and HKDF key derivation (gateway/session/nonces.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.session.nonces import MAX_FUTURE_SKEW, NonceIssuer, derive_key

KEY = derive_key(b"k" * 32, "api-nonce")
NOW = 1_750_000_000.0


def _decode(nonce: str) -> bytes:
    return base64.urlsafe_b64decode(nonce + "==")


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_public_names_import() -> None:
    module = importlib.import_module("gateway.session.nonces")
    for name in module.__all__:
        assert getattr(module, name) is not None


class TestDeriveKey:
    def test_rfc5869_construction(self) -> None:
        # HKDF-SHA256 by hand (RFC 5869 §2.2-2.3) must agree with ours.
        master, info = b"\x0b" * 32, "api-nonce"
        prk = hmac.new(b"agegate/hkdf/v1", master, hashlib.sha256).digest()
        okm = hmac.new(prk, info.encode() + b"\x01", hashlib.sha256).digest()
        assert derive_key(master, info) == okm

    def test_purposes_give_independent_keys(self) -> None:
        keys = {derive_key(b"m" * 32, p) for p in ("api-nonce", "store-hmac", "challenge")}
        assert len(keys) == 3
        assert all(len(k) == 32 for k in keys)

    def test_deterministic(self) -> None:
        assert derive_key(b"m" * 32, "x") == derive_key(b"m" * 32, "x")
        assert derive_key(b"m" * 32, "x") != derive_key(b"n" * 32, "x")

    def test_empty_inputs_refused(self) -> None:
        with pytest.raises(ValueError):
            derive_key(b"", "x")
        with pytest.raises(ValueError):
            derive_key(b"m", "")


class TestNonceIssuer:
    def test_issue_then_check(self) -> None:
        issuer = NonceIssuer(KEY)
        nonce = issuer.issue(NOW)
        assert issuer.check(nonce, NOW)
        assert issuer.check(nonce, NOW + 299)

    def test_layout(self) -> None:
        nonce = NonceIssuer(KEY).issue(NOW)
        assert len(nonce) == 54 and "=" not in nonce
        raw = _decode(nonce)
        assert len(raw) == 40
        assert struct.unpack(">Q", raw[:8])[0] == int(NOW * 1000)
        tag = hmac.new(KEY, raw[:24], hashlib.sha256).digest()[:16]
        assert raw[24:] == tag

    def test_each_nonce_is_fresh(self) -> None:
        issuer = NonceIssuer(KEY)
        assert len({issuer.issue(NOW) for _ in range(100)}) == 100

    def test_expired(self) -> None:
        issuer = NonceIssuer(KEY)
        nonce = issuer.issue(NOW)
        assert issuer.check(nonce, NOW + 300)
        assert not issuer.check(nonce, NOW + 300.01)

    def test_custom_lifetime(self) -> None:
        issuer = NonceIssuer(KEY, lifetime=10)
        nonce = issuer.issue(NOW)
        assert issuer.check(nonce, NOW + 10)
        assert not issuer.check(nonce, NOW + 11)
        assert issuer.lifetime == 10

    def test_future_within_skew_accepted_beyond_refused(self) -> None:
        issuer = NonceIssuer(KEY)
        nonce = issuer.issue(NOW)
        assert issuer.check(nonce, NOW - MAX_FUTURE_SKEW)
        assert not issuer.check(nonce, NOW - MAX_FUTURE_SKEW - 1)

    def test_other_key_refused(self) -> None:
        nonce = NonceIssuer(derive_key(b"other" * 8, "api-nonce")).issue(NOW)
        assert not NonceIssuer(KEY).check(nonce, NOW)

    def test_every_flipped_bit_refused(self) -> None:
        issuer = NonceIssuer(KEY)
        raw = _decode(issuer.issue(NOW))
        for index in range(len(raw)):
            for bit in range(8):
                forged = bytearray(raw)
                forged[index] ^= 1 << bit
                assert not issuer.check(_encode(bytes(forged)), NOW)

    def test_timestamp_cannot_be_moved(self) -> None:
        issuer = NonceIssuer(KEY)
        raw = _decode(issuer.issue(NOW - 3600))
        forged = struct.pack(">Q", int(NOW * 1000)) + raw[8:]
        assert not issuer.check(_encode(forged), NOW)

    def test_padded_spelling_refused(self) -> None:
        # One nonce, one spelling: a second spelling would be a second store key.
        issuer = NonceIssuer(KEY)
        nonce = issuer.issue(NOW)
        assert not issuer.check(nonce + "==", NOW)

    def test_non_canonical_last_character_refused(self) -> None:
        issuer = NonceIssuer(KEY)
        nonce = issuer.issue(NOW)
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        # 40 bytes -> 54 chars; the last char carries 2 unused low bits.
        last = alphabet.index(nonce[-1])
        for low in range(1, 4):
            twin = nonce[:-1] + alphabet[last ^ low]
            assert _decode(twin) == _decode(nonce)
            assert not issuer.check(twin, NOW)

    @pytest.mark.parametrize(
        "nonce",
        ["", "x", "A" * 53, "A" * 55, "A" * 54, "+" * 54, "/" * 54, " " * 54, "é" * 54, "\x00"],
    )
    def test_garbage_refused(self, nonce: str) -> None:
        assert not NonceIssuer(KEY).check(nonce, NOW)

    def test_non_string_refused(self) -> None:
        assert not NonceIssuer(KEY).check(None, NOW)  # type: ignore[arg-type]
        assert not NonceIssuer(KEY).check(b"x" * 54, NOW)  # type: ignore[arg-type]

    def test_non_finite_now_refused(self) -> None:
        issuer = NonceIssuer(KEY)
        nonce = issuer.issue(NOW)
        assert not issuer.check(nonce, float("nan"))
        assert not issuer.check(nonce, float("inf"))

    def test_expiry_is_issue_time_plus_lifetime(self) -> None:
        issuer = NonceIssuer(KEY)
        nonce = issuer.issue(NOW)
        assert issuer.expiry(nonce, NOW + 5) == pytest.approx(NOW + 300, abs=0.001)
        assert issuer.expiry(nonce, NOW + 301) is None
        assert issuer.expiry("bogus", NOW) is None

    def test_short_key_refused(self) -> None:
        with pytest.raises(ValueError, match="16 bytes"):
            NonceIssuer(b"short")

    @pytest.mark.parametrize("lifetime", [0, -1, float("inf"), float("nan")])
    def test_bad_lifetime_refused(self, lifetime: float) -> None:
        with pytest.raises(ValueError, match="lifetime"):
            NonceIssuer(KEY, lifetime=lifetime)

    @given(st.text(max_size=120), st.floats(allow_nan=True, allow_infinity=True))
    def test_check_never_raises_on_text(self, nonce: str, now: float) -> None:
        assert NonceIssuer(KEY).check(nonce, now) is False

    @given(st.binary(min_size=40, max_size=40))
    def test_check_refuses_random_well_formed_nonces(self, raw: bytes) -> None:
        assert not NonceIssuer(KEY).check(_encode(raw), NOW)

    @given(st.floats(min_value=0, max_value=4e9), st.floats(min_value=0, max_value=300))
    def test_valid_for_its_whole_lifetime(self, issued: float, age: float) -> None:
        issuer = NonceIssuer(KEY)
        nonce = issuer.issue(issued)
        # Millisecond stamps: the nonce is at most 1 ms older than ``issued``.
        assert issuer.check(nonce, issued + age - 0.001)
