"""Session and challenge cookies, and safe return paths (gateway/session/codec.py)."""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import secrets
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

import gateway.session.codec as session_module
from gateway.core.cookies import get_cookie
from gateway.errors import ConfigError
from gateway.policy import parse_policy_text
from gateway.policy.facts import SessionClaims
from gateway.session.codec import (
    CHALLENGE_COOKIE,
    SESSION_COOKIE,
    ChallengeCodec,
    ChallengeState,
    SessionCodec,
    new_session_id,
)
from gateway.session.keys import generate_key_line, key_id, parse_key_lines
from gateway.session.nonces import derive_key
from verifiers.base import AssuranceLevel

AUDIENCE = "https://shop.example"
NOW = 1_750_000_000.0
KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))

CLAIMS = SessionClaims(
    age_over=frozenset({13, 16, 18}),
    age_under=frozenset({21}),
    assurance=AssuranceLevel.STANDARD,
    verifier="reference-token",
    issued_at=NOW,
    expires_at=NOW + 3600,
)
CHALLENGE = ChallengeState(
    nonce="n" * 22,
    state="s" * 22,
    return_path="/wine/red?vintage=2019",
    min_age=18,
    assurance=AssuranceLevel.BASIC,
    verifiers=("reference-token", "reference-pp"),
    expires_at=NOW + 600,
)


_SEALED = frozenset(
    {"age_over", "age_under", "assurance", "verifier", "issued_at", "expires_at", "session_id"}
)


class Reasons:
    """An ``on_invalid`` hook that remembers what it was told."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, reason: str) -> None:
        self.seen.append(reason)


def _codec(
    keys: tuple[bytes, ...] = (KEY_A,), audience: str = AUDIENCE
) -> tuple[SessionCodec, Reasons]:
    reasons = Reasons()
    return SessionCodec(keys, audience, on_invalid=reasons), reasons


def _blob(cookie: str) -> bytes:
    body = cookie.split(".")[2]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _stray_bits(cookie: str) -> str:
    """``cookie`` truncated so its last base64 character carries bits past the data.

    Cutting a fixed number of characters left those bits zero (a valid, shorter
    blob: "tampered") for some random ciphertexts; this cut never does.
    """
    version, kid, body = cookie.split(".")
    cut = body[:-10]
    while len(cut) % 4 not in (2, 3):
        cut = cut[:-1]
    return f"{version}.{kid}.{cut[:-1]}B"  # "B" = 0b000001: the unused low bits are not zero


def _with_blob(cookie: str, blob: bytes) -> str:
    version, kid, _ = cookie.split(".")
    return f"{version}.{kid}.{base64.urlsafe_b64encode(blob).rstrip(b'=').decode()}"


def _decrypt(cookie: str, key: bytes, cookie_name: str, audience: str = AUDIENCE) -> bytes:
    blob = _blob(cookie)
    aead = AESGCM(derive_key(key, f"agegate {cookie_name} aead v1"))
    aad = json.dumps(["v1", cookie_name, audience]).encode()
    return aead.decrypt(blob[:12], blob[12:], aad)


def _seal_raw(payload: bytes, key: bytes = KEY_A, cookie_name: str = SESSION_COOKIE) -> str:
    """A cookie an attacker holding the key could mint, with any plaintext."""
    aead = AESGCM(derive_key(key, f"agegate {cookie_name} aead v1"))
    aad = json.dumps(["v1", cookie_name, AUDIENCE]).encode()
    nonce = secrets.token_bytes(12)
    blob = nonce + aead.encrypt(nonce, payload, aad)
    return f"v1.{key_id(key)}.{base64.urlsafe_b64encode(blob).rstrip(b'=').decode()}"


def test_public_names_import() -> None:
    module = importlib.import_module("gateway.session.codec")
    for name in module.__all__:
        assert getattr(module, name) is not None
    assert SESSION_COOKIE == "__Host-agegate"
    assert CHALLENGE_COOKIE == "__Host-agegate-challenge"


class TestSessionCodec:
    def test_round_trip(self) -> None:
        codec, reasons = _codec()
        assert codec.open(codec.seal(CLAIMS), NOW) == CLAIMS
        assert reasons.seen == []

    def test_the_policys_kept_decisions_are_never_sealed(self) -> None:
        # SessionClaims.decided is the policy's memo, not a claim: a cookie carries the
        # claims alone, and opens with nothing decided yet.
        policy = parse_policy_text(
            "version: 1\ndefaults: {verifiers: [ref]}\nroutes:\n"
            "  - {name: r, path: /**, min_age: 18}\n",
            source="p.yaml",
        )
        check = policy.rules[0].verdicts.default
        assert check is not None
        claims = SessionClaims(**{f: getattr(CLAIMS, f) for f in _SEALED})
        assert check.decide(claims, NOW).outcome.value == "challenge"  # verifier not accepted
        assert claims.decided
        codec, reasons = _codec()
        cookie = codec.seal(claims)
        payload = json.loads(_decrypt(cookie, KEY_A, SESSION_COOKIE))
        assert set(payload) == _SEALED - {"session_id"}
        opened = codec.open(cookie, NOW)
        assert opened == claims and opened is not None and opened.decided == {}
        assert reasons.seen == []

    def test_format(self) -> None:
        cookie = _codec()[0].seal(CLAIMS)
        version, kid, body = cookie.split(".")
        assert version == "v1"
        assert kid == key_id(KEY_A) and len(kid) == 8
        assert "=" not in body and set(body) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
        assert len(cookie) < 400  # far below the ~4 KB a browser keeps

    def test_each_seal_uses_a_fresh_nonce(self) -> None:
        codec = _codec()[0]
        assert codec.seal(CLAIMS) != codec.seal(CLAIMS)

    def test_payload_holds_only_the_claims(self) -> None:
        cookie = _codec()[0].seal(CLAIMS)
        data = json.loads(_decrypt(cookie, KEY_A, SESSION_COOKIE))
        assert set(data) == {
            "age_over",
            "age_under",
            "assurance",
            "verifier",
            "issued_at",
            "expires_at",
        }
        assert data == {
            "age_over": [13, 16, 18],
            "age_under": [21],
            "assurance": "standard",
            "verifier": "reference-token",
            "issued_at": NOW,
            "expires_at": NOW + 3600,
        }

    def test_rotation_old_key_opens_new_key_seals(self) -> None:
        old, _ = _codec((KEY_A,))
        rotated, reasons = _codec((KEY_B, KEY_A))
        old_cookie = old.seal(CLAIMS)
        assert rotated.open(old_cookie, NOW) == CLAIMS
        new_cookie = rotated.seal(CLAIMS)
        assert new_cookie.split(".")[1] == key_id(KEY_B)
        assert rotated.open(new_cookie, NOW) == CLAIMS
        assert reasons.seen == []

    def test_retired_key_is_unknown(self) -> None:
        old_cookie = _codec((KEY_A,))[0].seal(CLAIMS)
        retired, reasons = _codec((KEY_B,))
        assert retired.open(old_cookie, NOW) is None
        assert reasons.seen == ["unknown_key"]

    def test_key_id_collision_tries_each_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(session_module, "key_id", lambda key: "00000000")
        sealer = SessionCodec((KEY_B,), AUDIENCE)
        both = SessionCodec((KEY_A, KEY_B), AUDIENCE)
        assert both.open(sealer.seal(CLAIMS), NOW) == CLAIMS

    def test_every_tampered_byte_is_refused(self) -> None:
        codec, reasons = _codec()
        cookie = codec.seal(CLAIMS)
        blob = _blob(cookie)
        for index in range(len(blob)):
            forged = bytearray(blob)
            forged[index] ^= 0x01
            assert codec.open(_with_blob(cookie, bytes(forged)), NOW) is None
        assert reasons.seen == ["tampered"] * len(blob)

    def test_tampered_character(self) -> None:
        codec, reasons = _codec()
        cookie = codec.seal(CLAIMS)
        middle = len(cookie) - 20
        swapped = "A" if cookie[middle] != "A" else "B"
        assert codec.open(cookie[:middle] + swapped + cookie[middle + 1 :], NOW) is None
        assert reasons.seen == ["tampered"]

    def test_kid_swap_is_refused(self) -> None:
        codec, reasons = _codec((KEY_A, KEY_B))
        cookie = codec.seal(CLAIMS)
        swapped = cookie.replace(key_id(KEY_A), key_id(KEY_B), 1)
        assert codec.open(swapped, NOW) is None
        assert reasons.seen == ["tampered"]

    @pytest.mark.parametrize(
        ("mangle", "reason"),
        [
            (lambda c: _with_blob(c, _blob(c)[:-5]), "tampered"),  # truncated ciphertext
            (_stray_bits, "malformed"),  # truncated text: stray bits in the last group
            (lambda c: c[:25], "malformed"),  # shorter than nonce + tag
            (lambda c: c.split(".", 1)[1], "malformed"),  # no version
            (lambda c: "v2" + c[2:], "malformed"),
            (lambda c: "V1" + c[2:], "malformed"),
            (lambda c: c + ".x", "malformed"),
            (lambda c: c.replace(".", "..", 1), "malformed"),
            (lambda c: c[:12] + "!" + c[13:], "malformed"),  # bad base64 character
            (lambda c: c[:12] + "+" + c[13:], "malformed"),  # standard, not url-safe, alphabet
            (lambda c: c + "===", "malformed"),
            (lambda c: c + "A", "malformed"),  # impossible base64 length
            (lambda c: c.replace(c.split(".")[1], "ffffffff"), "unknown_key"),
            (lambda c: c.replace(c.split(".")[1], "FFFFFFFF"), "malformed"),
            (lambda c: c.replace(c.split(".")[1], "abc"), "malformed"),
            (lambda c: c + "A" * 5000, "malformed"),  # longer than any cookie
            (lambda c: " " + c, "malformed"),
        ],
    )
    def test_malformed(self, mangle: Callable[[str], str], reason: str) -> None:
        codec, reasons = _codec()
        assert codec.open(mangle(codec.seal(CLAIMS)), NOW) is None
        assert reasons.seen == [reason]

    def test_non_canonical_base64_is_malformed(self) -> None:
        codec, reasons = _codec()
        # Pick a verifier name whose cookie body has a partial last group,
        # i.e. unused low bits in its last character.
        cookie = next(
            c
            for n in range(1, 5)
            if len((c := codec.seal(dataclasses.replace(CLAIMS, verifier="v" * n))).split(".")[2])
            % 4
        )
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        twin = cookie[:-1] + alphabet[alphabet.index(cookie[-1]) ^ 1]
        assert _blob(twin) == _blob(cookie)
        assert codec.open(twin, NOW) is None
        assert reasons.seen == ["malformed"]

    def test_padding_is_tolerated(self) -> None:
        codec, reasons = _codec()
        cookie = codec.seal(CLAIMS)
        padded = cookie + "=" * (-len(cookie.split(".")[2]) % 4)
        assert codec.open(padded, NOW) == CLAIMS
        assert codec.open(cookie + "=", NOW) == CLAIMS
        assert reasons.seen == []

    def test_expired(self) -> None:
        codec, reasons = _codec()
        cookie = codec.seal(CLAIMS)
        assert codec.open(cookie, CLAIMS.expires_at - 0.001) == CLAIMS
        assert codec.open(cookie, CLAIMS.expires_at) is None
        assert codec.open(cookie, CLAIMS.expires_at + 86400) is None
        assert reasons.seen == ["expired", "expired"]

    def test_audience_binding(self) -> None:
        shop, _ = _codec(audience="https://shop.example")
        other, reasons = _codec(audience="https://other.example")
        assert other.open(shop.seal(CLAIMS), NOW) is None
        assert reasons.seen == ["tampered"]

    def test_session_cookie_never_opens_as_challenge(self) -> None:
        reasons = Reasons()
        challenges = ChallengeCodec((KEY_A,), AUDIENCE, on_invalid=reasons)
        assert challenges.open(_codec()[0].seal(CLAIMS), NOW) is None
        assert reasons.seen == ["tampered"]

    def test_challenge_cookie_never_opens_as_session(self) -> None:
        sessions, reasons = _codec()
        cookie = ChallengeCodec((KEY_A,), AUDIENCE).seal(CHALLENGE)
        assert sessions.open(cookie, NOW) is None
        assert reasons.seen == ["tampered"]

    def test_absent_is_not_counted(self) -> None:
        codec, reasons = _codec()
        assert codec.open(None, NOW) is None
        assert codec.open("", NOW) is None
        assert reasons.seen == []

    def test_non_string_is_malformed(self) -> None:
        codec, reasons = _codec()
        assert codec.open(b"v1.x.y", NOW) is None  # type: ignore[arg-type]
        assert reasons.seen == ["malformed"]

    @pytest.mark.parametrize(
        "payload",
        [
            b"not json",
            b"[]",
            b"{}",
            b'{"age_over":[18]}',
            b"\xff\xfe",
            b"[" * 100_000,
        ],
    )
    def test_authentic_garbage_is_malformed(self, payload: bytes) -> None:
        codec, reasons = _codec()
        assert codec.open(_seal_raw(payload), NOW) is None
        assert reasons.seen == ["malformed"]

    @pytest.mark.parametrize(
        "change",
        [
            {"extra": "x"},  # a field SessionClaims does not have
            {"age_over": [True]},
            {"age_over": [0]},
            {"age_over": [18.5]},
            {"age_over": "18"},
            {"assurance": "platinum"},
            {"assurance": 2},
            {"verifier": None},
            {"expires_at": "tomorrow"},
            {"issued_at": True},
            {"sid": None},  # present means a real session id
            {"sid": 7},
            {"sid": "short"},
            {"sid": "A" * 21 + "="},
            {"sid": "A" * 23},
        ],
    )
    def test_authentic_bad_fields_are_malformed(self, change: dict[str, object]) -> None:
        codec, reasons = _codec()
        data = json.loads(_decrypt(codec.seal(CLAIMS), KEY_A, SESSION_COOKIE))
        data.update(change)
        assert codec.open(_seal_raw(json.dumps(data).encode()), NOW) is None
        assert reasons.seen == ["malformed"]

    def test_session_id_round_trips_inside_the_seal(self) -> None:
        codec, reasons = _codec()
        claims = dataclasses.replace(CLAIMS, session_id=new_session_id())
        cookie = codec.seal(claims)
        assert codec.open(cookie, NOW) == claims
        assert json.loads(_decrypt(cookie, KEY_A, SESSION_COOKIE))["sid"] == claims.session_id
        assert claims.session_id not in cookie  # sealed, not in clear
        assert reasons.seen == []

    def test_cookie_without_session_id_still_opens(self) -> None:
        # Sealed before session ids existed: honoured; revoked by its whole value.
        codec, reasons = _codec()
        opened = codec.open(codec.seal(CLAIMS), NOW)
        assert opened == CLAIMS and opened.session_id is None
        assert reasons.seen == []

    def test_new_session_ids_are_random_16_bytes(self) -> None:
        ids = {new_session_id() for _ in range(1000)}
        assert len(ids) == 1000
        for sid in ids:
            assert len(base64.urlsafe_b64decode(sid + "==")) == 16 and len(sid) == 22

    def test_non_finite_expiry_is_malformed(self) -> None:
        codec, reasons = _codec()
        payload = _decrypt(codec.seal(CLAIMS), KEY_A, SESSION_COOKIE)
        forged = payload.replace(str(NOW + 3600).encode(), b"Infinity")
        assert b"Infinity" in forged
        assert codec.open(_seal_raw(forged), NOW) is None
        assert reasons.seen == ["malformed"]

    def test_no_keys_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError, match="no session keys"):
            SessionCodec((), AUDIENCE)

    def test_short_key_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError, match="32 bytes"):
            SessionCodec((b"x" * 31,), AUDIENCE)

    @given(st.text(max_size=300))
    def test_random_text_never_raises(self, value: str) -> None:
        codec = SessionCodec((KEY_A,), AUDIENCE)
        assert codec.open(value, NOW) is None

    @given(st.binary(min_size=0, max_size=200), st.sampled_from(["v1", "v0", ""]))
    def test_random_blobs_under_our_kid_never_open(self, blob: bytes, version: str) -> None:
        reasons = Reasons()
        codec = SessionCodec((KEY_A,), AUDIENCE, on_invalid=reasons)
        body = base64.urlsafe_b64encode(blob).rstrip(b"=").decode()
        assert codec.open(f"{version}.{key_id(KEY_A)}.{body}", NOW) is None
        assert len(reasons.seen) == 1 and reasons.seen[0] in {"malformed", "tampered"}

    @given(
        st.frozensets(st.integers(1, 99)),
        st.frozensets(st.integers(1, 99)),
        st.sampled_from(list(AssuranceLevel)),
        st.text(max_size=40),
        st.floats(0, 4e9),
        st.floats(1, 1e6),
    )
    def test_round_trip_property(
        self,
        over: frozenset[int],
        under: frozenset[int],
        level: AssuranceLevel,
        verifier: str,
        issued: float,
        ttl: float,
    ) -> None:
        claims = SessionClaims(over, under, level, verifier, issued, issued + ttl)
        codec = SessionCodec((KEY_A,), AUDIENCE)
        assert codec.open(codec.seal(claims), issued) == claims

    @given(
        st.frozensets(st.integers(1, 99)),
        st.sampled_from(list(AssuranceLevel)),
        st.text(max_size=40),
        st.floats(0, 4e9),
        st.floats(1, 1e6),
        st.binary(min_size=16, max_size=16),
    )
    def test_round_trip_with_session_id_property(
        self,
        over: frozenset[int],
        level: AssuranceLevel,
        verifier: str,
        issued: float,
        ttl: float,
        raw_id: bytes,
    ) -> None:
        sid = base64.urlsafe_b64encode(raw_id).rstrip(b"=").decode()
        claims = SessionClaims(over, frozenset(), level, verifier, issued, issued + ttl, sid)
        codec = SessionCodec((KEY_A,), AUDIENCE)
        cookie = codec.seal(claims)
        assert codec.open(cookie, issued) == claims
        assert cookie.split(".")[:2] == ["v1", key_id(KEY_A)]  # the format is unchanged

    @given(st.text(max_size=30))
    def test_seal_refuses_what_open_would_refuse(self, sid: str) -> None:
        claims = dataclasses.replace(CLAIMS, session_id=sid)
        codec = SessionCodec((KEY_A,), AUDIENCE)
        try:
            cookie = codec.seal(claims)
        except ValueError:
            return
        assert codec.open(cookie, NOW) == claims


class TestChallengeCodec:
    def test_round_trip(self) -> None:
        codec = ChallengeCodec((KEY_A,), AUDIENCE)
        assert codec.open(codec.seal(CHALLENGE), NOW) == CHALLENGE

    def test_payload_fields(self) -> None:
        cookie = ChallengeCodec((KEY_A,), AUDIENCE).seal(CHALLENGE)
        data = json.loads(_decrypt(cookie, KEY_A, CHALLENGE_COOKIE))
        assert set(data) == {
            "nonce",
            "state",
            "return_path",
            "min_age",
            "assurance",
            "verifiers",
            "expires_at",
        }

    def test_rotation(self) -> None:
        cookie = ChallengeCodec((KEY_A,), AUDIENCE).seal(CHALLENGE)
        assert ChallengeCodec((KEY_B, KEY_A), AUDIENCE).open(cookie, NOW) == CHALLENGE

    def test_expired(self) -> None:
        reasons = Reasons()
        codec = ChallengeCodec((KEY_A,), AUDIENCE, on_invalid=reasons)
        cookie = codec.seal(CHALLENGE)
        assert codec.open(cookie, CHALLENGE.expires_at) is None
        assert reasons.seen == ["expired"]

    def test_audience_binding(self) -> None:
        reasons = Reasons()
        cookie = ChallengeCodec((KEY_A,), "https://a.example").seal(CHALLENGE)
        other = ChallengeCodec((KEY_A,), "https://b.example", on_invalid=reasons)
        assert other.open(cookie, NOW) is None
        assert reasons.seen == ["tampered"]

    def test_return_path_is_rechecked_on_open(self) -> None:
        codec = ChallengeCodec((KEY_A,), AUDIENCE)
        unsafe = ChallengeState(
            nonce="n",
            state="s",
            return_path="//evil.example/",
            min_age=18,
            assurance=AssuranceLevel.BASIC,
            verifiers=(),
            expires_at=NOW + 600,
        )
        opened = codec.open(codec.seal(unsafe), NOW)
        assert opened is not None and opened.return_path == "/"

    def test_bad_fields_are_malformed(self) -> None:
        reasons = Reasons()
        codec = ChallengeCodec((KEY_A,), AUDIENCE, on_invalid=reasons)
        data = json.loads(_decrypt(codec.seal(CHALLENGE), KEY_A, CHALLENGE_COOKIE))
        for change in ({"verifiers": "x"}, {"verifiers": [1]}, {"min_age": "18"}, {"x": 1}):
            forged = _seal_raw(
                json.dumps({**data, **change}).encode(), cookie_name=CHALLENGE_COOKIE
            )
            assert codec.open(forged, NOW) is None
        assert reasons.seen == ["malformed"] * 4

    @given(st.text(max_size=300))
    def test_random_text_never_raises(self, value: str) -> None:
        assert ChallengeCodec((KEY_A,), AUDIENCE).open(value, NOW) is None


def test_opened_cookies_are_cached_but_expiry_is_still_checked() -> None:
    # The cache makes a second open of the same value skip decoding; it must not
    # keep an expired session alive nor let a tampered variant in.
    reasons: list[str] = []
    keys = parse_key_lines(generate_key_line())
    codec = SessionCodec(keys, "https://shop.example", on_invalid=reasons.append, cache_size=2)
    now = 1_000_000.0
    claims = SessionClaims(frozenset({18}), frozenset(), AssuranceLevel.BASIC, "v", now, now + 60)
    value = codec.seal(claims)
    assert codec.open(value, now) == claims
    assert codec.open(value, now + 30) == claims  # from the cache
    assert codec.open(value, now + 60) is None  # expired, even though cached
    assert reasons == ["expired"]
    tampered = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    assert codec.open(tampered, now) is None
    others = [
        codec.seal(
            SessionClaims(
                frozenset({18}), frozenset(), AssuranceLevel.BASIC, "v", now, now + 60 + i
            )
        )
        for i in range(5)
    ]
    assert all(codec.open(o, now) is not None for o in others)
    assert len(codec._cache) <= 2  # bounded


def _cache_claims(now: float, ttl: float = 60) -> SessionClaims:
    return SessionClaims(
        frozenset({18}), frozenset(), AssuranceLevel.BASIC, "v", now, now + ttl, new_session_id()
    )


def test_a_cached_cookie_is_not_decrypted_again(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = SessionCodec((KEY_A,), AUDIENCE)
    claims = _cache_claims(NOW)
    value = codec.seal(claims)
    assert codec.open(value, NOW) == claims
    opened: list[bytes] = []
    real = AESGCM.decrypt

    def counting(self: AESGCM, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
        opened.append(nonce)
        return real(self, nonce, data, aad)

    monkeypatch.setattr(AESGCM, "decrypt", counting)
    assert codec.open(value, NOW + 1) == claims
    assert opened == []  # no AEAD open on the second request
    other = codec.seal(_cache_claims(NOW))
    assert codec.open(other, NOW) is not None
    assert len(opened) == 1  # a new value is opened for real


def test_expiry_is_enforced_on_a_cache_hit() -> None:
    reasons = Reasons()
    codec = SessionCodec((KEY_A,), AUDIENCE, on_invalid=reasons)
    value = codec.seal(_cache_claims(NOW, ttl=10))
    assert codec.open(value, NOW) is not None
    assert codec.open(value, NOW + 10) is None
    assert reasons.seen == ["expired"]
    assert codec.cached == 0  # the expired entry is gone


def test_rekey_empties_the_cache_and_old_keys_stop_opening() -> None:
    reasons = Reasons()
    codec = SessionCodec((KEY_A,), AUDIENCE, on_invalid=reasons)
    value = codec.seal(_cache_claims(NOW))
    assert codec.open(value, NOW) is not None
    codec.use_keys((KEY_B,))
    assert codec.cached == 0
    assert codec.open(value, NOW) is None  # KEY_A left the ring: not served from memory
    assert reasons.seen == ["unknown_key"]
    rotated = codec.seal(_cache_claims(NOW))
    codec.use_keys((KEY_A, KEY_B))  # KEY_B still opens after a rotation that keeps it
    assert codec.open(rotated, NOW) is not None


def test_the_cache_is_bounded_and_holds_only_cookies_that_opened() -> None:
    codec = SessionCodec((KEY_A,), AUDIENCE, cache_size=3)
    values = [codec.seal(_cache_claims(NOW, ttl=60 + i)) for i in range(5)]
    for value in values:
        assert codec.open(value, NOW) is not None
    assert codec.cached == 3
    assert set(codec._cache) == set(values[2:])  # oldest out first
    for junk in (
        "x",
        "v1.00000000.AAAA",
        values[0][:-3] + "AAA",
        SessionCodec((KEY_B,), AUDIENCE).seal(_cache_claims(NOW)),
    ):
        assert codec.open(junk, NOW) is None
    assert set(codec._cache) == set(values[2:])  # refusals are never kept
    assert all(isinstance(v, SessionClaims) for v in codec._cache.values())
    with pytest.raises(ValueError, match="cache_size"):
        SessionCodec((KEY_A,), AUDIENCE, cache_size=0)


def test_peek_header_finds_an_opened_cookie_by_its_whole_header_and_nothing_else() -> None:
    # The fast path looks the usual Cookie header (our cookie alone) up whole: it must
    # answer exactly what reading the cookie out of the header and peek() would.
    codec = SessionCodec((KEY_A,), AUDIENCE, cache_size=2)
    claims = _cache_claims(NOW, ttl=10)
    value = codec.seal(claims)
    header = f"{SESSION_COOKIE}={value}".encode()
    assert codec.peek_header(header, NOW) is None  # never opened: peek decrypts nothing
    assert codec.open(value, NOW) == claims
    assert codec.peek_header(header, NOW) == claims
    assert codec.peek_header(header, NOW + 5) == claims  # now from the header's own entry
    assert codec.peek_header(header, NOW + 10) is None  # expiry checked on every hit
    for other in (
        f'{SESSION_COOKIE}="{value}"'.encode(),  # quoted: read by get_cookie, not here
        f"{SESSION_COOKIE}= {value}".encode(),
        f"{SESSION_COOKIE}={value}; theme=dark".encode(),
        f"theme=dark; {SESSION_COOKIE}={value}".encode(),
        f"{CHALLENGE_COOKIE}={value}".encode(),
        f"{SESSION_COOKIE}={value[:-1]}".encode(),
        value.encode(),
        b"",
    ):
        assert codec.peek_header(other, NOW) is None, other
    assert list(codec._headers) == [header]  # only the whole-header form is kept
    alone = codec.alone_headers  # live: what the proxy drops without parsing
    assert header in alone and f"{SESSION_COOKIE}={value}; x=1".encode() not in alone
    codec.use_keys((KEY_B,))
    assert codec.peek_header(header, NOW) is None  # key change: forgotten with the cache
    assert codec._headers == {}
    assert header not in alone


def test_peek_header_entries_are_bounded_like_the_cache() -> None:
    codec = SessionCodec((KEY_A,), AUDIENCE, cache_size=3)
    values = [codec.seal(_cache_claims(NOW, ttl=60 + i)) for i in range(5)]
    headers = [f"{SESSION_COOKIE}={v}".encode() for v in values]
    for value, header in zip(values, headers, strict=True):
        assert codec.open(value, NOW) is not None
        assert codec.peek_header(header, NOW) is not None
    assert list(codec._headers) == headers[2:]  # oldest out first


@given(
    before=st.lists(st.sampled_from(["theme=dark", "a", " ", "", f"{SESSION_COOKIE}=x"])),
    spacing=st.sampled_from(["", " ", "\t", '"']),
    after=st.lists(st.sampled_from(["theme=dark", "", f"{SESSION_COOKIE}=y"])),
)
def test_peek_header_agrees_with_reading_the_cookie(
    before: list[str], spacing: str, after: list[str]
) -> None:
    # Whatever the header around our cookie, peek_header either answers None or
    # exactly what get_cookie + peek answer for it.
    codec = SessionCodec((KEY_A,), AUDIENCE)
    value = codec.seal(_cache_claims(NOW))
    assert codec.open(value, NOW) is not None
    quote = '"' if spacing == '"' else ""
    ours = f"{SESSION_COOKIE}={spacing if not quote else ''}{quote}{value}{quote}"
    header = "; ".join([*before, ours, *after]).encode()
    found = codec.peek_header(header, NOW)
    read = codec.peek(get_cookie([(b"cookie", header)], SESSION_COOKIE), NOW)
    assert found is None or found == read
    if not before and not after and not spacing:
        assert found is not None and found == read  # the usual header is answered here
