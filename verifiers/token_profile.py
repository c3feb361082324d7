"""The age-token profile (SPEC §5) as checks: the JWS rules every age token must meet.

Each check is a generator of :class:`Finding` in the profile's order, so the
same code serves two masters: :class:`verifiers.age_token.AgeTokenVerifier`
stops at the first finding (one reason code per refusal), while
:func:`check_token` collects every deviation of a provider's sample token
(``agegate verifier check`` prints them).
The order, as in PyJWT's ``api_jwt``::

    parse (malformed) -> typ (bad_type) -> alg (alg_not_allowed)
    -> kid (unknown_kid) -> signature (bad_signature) -> iss (wrong_issuer)
    -> aud (wrong_audience) -> iat/exp present (missing_claim) -> expired
    -> issued_in_future -> not_yet_valid -> lifetime_too_long -> missing_jti
    -> missing_nonce / wrong_nonce -> identity_claim -> undisclosed_claim
    -> bad_claim / no_age_claim

The header is read without trusting it: only ``typ``, ``alg`` and ``kid`` are
used, and only to pick the key.  Messages name claims, never their values.
"""

from __future__ import annotations

import binascii
import functools
import hmac
import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeGuard

import aiohttp
from cryptography.exceptions import InvalidSignature
from jwt.algorithms import Algorithm, get_default_algorithms

from verifiers.b64url import b64url_decode
from verifiers.base import AssuranceLevel, VerificationError
from verifiers.jwks import (
    KEY_TYPE_FOR_ALG,
    JwkEntry,
    fetch_jwks_document,
    parse_jwks,
    read_jwks_file,
)

__all__ = [
    "DEFAULT_ALGORITHMS",
    "IDENTITY_CLAIMS",
    "PROFILE_CLAIMS",
    "PROFILE_TYPE",
    "SKEW",
    "STRICT_JSON",
    "Finding",
    "ParsedToken",
    "age_thresholds",
    "check_token",
    "claim_findings",
    "decode_payload",
    "header_findings",
    "is_identity_claim",
    "load_jwks",
    "parse_compact",
    "signature_algorithms",
    "unverified_claims",
    "verify_signature",
]

PROFILE_TYPE = "age-token+jwt"
SKEW = 30.0  # seconds, for every time claim (SPEC §5)
DEFAULT_ALGORITHMS = ("ES256", "ES384", "EdDSA", "PS256")
MAX_TOKEN_LENGTH = 16384
MAX_ID_LENGTH = 512  # jti / nonce; longer ones are refused rather than stored

PROFILE_CLAIMS = frozenset(
    {"iss", "aud", "iat", "exp", "nbf", "jti", "nonce", "assurance_level", "age_method"}
)

#: Claims that identify or single out a person (OIDC standard claims, the EU
#: PID / ISO mDL element names, and stable identifiers).  Refused even when an
#: operator lists them in ``allow_claims``.  Compared after lower-casing and
#: mapping ``-`` to ``_``, so spelling tricks do not get past it.
IDENTITY_CLAIMS = frozenset(
    {
        # OpenID Connect Core §5.1 standard claims
        "sub", "name", "given_name", "family_name", "middle_name", "nickname",
        "preferred_username", "profile", "picture", "website", "email",
        "email_verified", "gender", "birthdate", "zoneinfo", "locale",
        "phone_number", "phone_number_verified", "address", "updated_at",
        # EU PID / ISO 18013-5 mDL / eIDAS attribute names
        "birth_date", "birthday", "date_of_birth", "dob", "age_in_years",
        "age_birth_year", "birth_place", "place_of_birth", "birth_family_name",
        "birth_given_name", "family_name_birth", "given_name_birth", "sex",
        "nationality", "nationalities", "resident_address", "resident_country",
        "resident_state", "resident_city", "resident_postal_code",
        "resident_street", "resident_house_number", "portrait", "email_address",
        "mobile_phone_number", "document_number", "personal_administrative_number",
        "driving_privileges", "signature_usual_mark", "biometric_template_face",
        "national_id", "ssn", "passport_number", "tax_id",
        # stable identifiers that link visits even without a name
        "sid", "cnf", "uid", "user_id", "id", "client_ip", "ip", "device_id",
    }
)  # fmt: skip

_AGE_OVER = re.compile(r"age_over_(\d+)")
_AGE_OVER_NN = re.compile(r"[1-9][0-9]?")
_ID = re.compile(r"[\x21-\x7e]+")
_METHOD = re.compile(r"[\x20-\x7e]{1,64}")


@dataclass(frozen=True, slots=True)
class Finding:
    """One deviation from the profile: a reason code and a value-free message."""

    code: str
    message: str

    def error(self) -> VerificationError:
        """The refusal this finding causes."""
        return VerificationError(self.code, self.message)


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A compact JWS split and decoded as far as is safe before the signature check."""

    header: Mapping[str, Any]
    signing_input: bytes
    payload: bytes
    signature: bytes


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers reading different values of a repeated member is a classic
    # JWT confusion; the profile has no use for repeats, so refuse them.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError("non-standard JSON constant")


# One decoder, built once: json.loads with hooks would build a new one per call.
# Shared by every JOSE-based kind (SD-JWT disclosures too).
STRICT_JSON = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def _json_object(data: bytes) -> dict[str, Any]:
    value = STRICT_JSON.decode(data.decode("utf-8"))  # RFC 8259 §8.1: UTF-8 only
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


@functools.lru_cache(maxsize=128)
def _decode_header(segment: str) -> Mapping[str, Any]:
    # A provider signs every token with the same few headers; caching the
    # parsed (read-only) header saves a JSON parse per token.  Bounded.
    return MappingProxyType(_json_object(b64url_decode(segment, canonical=False)))


def parse_compact(token: str) -> ParsedToken:
    """Split a compact JWS and decode its header; ``malformed`` on any problem."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise VerificationError("malformed", "not a compact JWS of acceptable size")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise VerificationError("malformed", "not a compact JWS (three parts)")
    try:
        header = _decode_header(parts[0])
        payload = b64url_decode(parts[1], canonical=False)
        signature = b64url_decode(parts[2], canonical=False)
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError) as error:
        raise VerificationError("malformed", "token is not valid base64url JSON") from error
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return ParsedToken(header, signing_input, payload, signature)


def decode_payload(parsed: ParsedToken) -> dict[str, Any]:
    """The claims object; ``malformed`` if the payload is not a JSON object."""
    try:
        return _json_object(parsed.payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise VerificationError("malformed", "payload is not a JSON object") from error


def unverified_claims(token: object) -> dict[str, Any] | None:
    """The payload object of a compact JWS *without* checking anything else; never raises.

    Only for routing a token before it is verified (e.g. reading its nonce to
    know which check applies), never for trusting it.  The same bounds and
    decoder as :func:`parse_compact`: at most :data:`MAX_TOKEN_LENGTH`
    characters, strict base64url, UTF-8 JSON without duplicate members or
    ``NaN``; ``None`` for anything else, including JSON nested past the
    recursion limit.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        return _json_object(b64url_decode(parts[1], canonical=False))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def signature_algorithms(names: Collection[str]) -> dict[str, Algorithm]:
    """PyJWT algorithm objects for ``names``, built once (never ``none`` or HS*)."""
    library = get_default_algorithms()
    return {name: library[name] for name in names if name in KEY_TYPE_FOR_ALG}


def header_findings(header: Mapping[str, Any], algorithms: Collection[str]) -> Iterator[Finding]:
    """``typ``, ``alg``, ``kid`` presence and ``crit`` of an untrusted header."""
    typ = header.get("typ")
    # RFC 7515 §4.1.9: media types compare case-insensitively, "application/" optional.
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != PROFILE_TYPE:
        yield Finding("bad_type", f"header typ must be {PROFILE_TYPE!r}")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms or alg not in KEY_TYPE_FOR_ALG:
        yield Finding("alg_not_allowed", "header alg is not in the verifier's allowlist")
    if "crit" in header:
        # RFC 7515 §4.1.11: we understand no extensions, so a critical one must fail.
        yield Finding("malformed", "header crit names extensions this verifier does not support")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        yield Finding("unknown_kid", "header kid is required")


def verify_signature(parsed: ParsedToken, algorithm: Algorithm, alg: str, key: JwkEntry) -> bool:
    """True if the signature is valid for ``alg`` with a key of the right type."""
    if not key.accepts(alg):
        return False  # e.g. an RSA kid named in an ES256 token, or a key pinned to another alg
    try:
        return bool(algorithm.verify(parsed.signing_input, key.jwk.key, parsed.signature))
    except (InvalidSignature, ValueError, TypeError):
        return False


def _is_number(value: object) -> TypeGuard[int | float]:
    return type(value) in (int, float)  # not bool, which is an int subclass


def _id_string(value: object) -> bool:
    # Printable ASCII only: ids go to the replay store (HMAC'd as bytes), and
    # a lone surrogate or control character has no business in one.
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_LENGTH
        and _ID.fullmatch(value) is not None
    )


def is_identity_claim(name: str) -> bool:
    """True for a claim that identifies a person, however it is spelt."""
    return name.lower().replace("-", "_") in IDENTITY_CLAIMS


def _time_findings(claims: Mapping[str, Any], now: float, max_lifetime: float) -> Iterator[Finding]:
    iat, exp, nbf = claims.get("iat"), claims.get("exp"), claims.get("nbf")
    for name, value in (("iat", iat), ("exp", exp)):
        if value is None:
            yield Finding("missing_claim", f"{name} is required")
        elif not _is_number(value):
            yield Finding("bad_claim", f"{name} must be a number")
    if nbf is not None and not _is_number(nbf):
        yield Finding("bad_claim", "nbf must be a number")
    if _is_number(exp) and exp <= now - SKEW:
        yield Finding("expired", "token has expired")
    if _is_number(iat) and iat > now + SKEW:
        yield Finding("issued_in_future", "iat is in the future")
    if _is_number(nbf) and nbf > now + SKEW:
        yield Finding("not_yet_valid", "nbf is in the future")
    if _is_number(iat) and _is_number(exp):
        if exp - iat > max_lifetime:
            yield Finding("lifetime_too_long", f"exp - iat exceeds {max_lifetime:g} s")
        elif exp <= iat:
            yield Finding("bad_claim", "exp must be later than iat")


def claim_findings(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    audience: str | None,
    nonce: str | None,
    now: float,
    max_lifetime: float,
    allow_claims: Collection[str] = (),
) -> Iterator[Finding]:
    """Every profile check of a verified payload, in the profile's order.

    ``audience`` / ``nonce`` of ``None`` check presence only (``agegate
    verifier check`` may not know them).
    """
    if claims.get("iss") != issuer:  # a public value: no constant-time compare needed
        yield Finding("wrong_issuer", "iss does not name the configured issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not audiences or not all(isinstance(a, str) for a in audiences):
        yield Finding("wrong_audience", "aud must be a string or an array of strings")
    elif audience is not None and audience not in audiences:
        yield Finding("wrong_audience", f"aud does not contain {audience!r}")
    yield from _time_findings(claims, now, max_lifetime)
    jti = claims.get("jti")
    if jti is None or jti == "":
        yield Finding("missing_jti", "jti is required")
    elif not _id_string(jti):
        yield Finding(
            "bad_claim", f"jti must be at most {MAX_ID_LENGTH} printable ASCII characters"
        )
    token_nonce = claims.get("nonce")
    if token_nonce is None or token_nonce == "":
        yield Finding("missing_nonce", "nonce is required")
    elif not _id_string(token_nonce):
        yield Finding(
            "bad_claim", f"nonce must be at most {MAX_ID_LENGTH} printable ASCII characters"
        )
    elif nonce is not None and not hmac.compare_digest(token_nonce.encode(), nonce.encode()):
        yield Finding("wrong_nonce", "nonce does not echo the challenge nonce")
    yield from _disclosure_findings(claims, allow_claims)


def _disclosure_findings(
    claims: Mapping[str, Any], allow_claims: Collection[str]
) -> Iterator[Finding]:
    extra = [n for n in claims if n not in PROFILE_CLAIMS and not n.startswith("age_over_")]
    identity = [n for n in extra if is_identity_claim(n)]
    for name in identity:  # first: the most serious disclosure
        yield Finding("identity_claim", f"identity claim {name!r} is never accepted")
    for name in extra:
        if name not in allow_claims and name not in identity:
            yield Finding("undisclosed_claim", f"claim {name!r} is not in the profile")
    thresholds = 0
    for name, value in claims.items():
        if not name.startswith("age_over_"):
            continue
        match = _AGE_OVER.fullmatch(name)
        if match is None or not _AGE_OVER_NN.fullmatch(match.group(1)):
            yield Finding("bad_claim", f"{name!r} is not age_over_NN with NN from 1 to 99")
        elif not isinstance(value, bool):
            yield Finding("bad_claim", f"{name!r} must be a boolean")
        else:
            thresholds += 1
    if thresholds == 0:
        yield Finding("no_age_claim", "no age_over_NN claim")
    level = claims.get("assurance_level")
    if level is not None and not _is_level(level):
        yield Finding("bad_claim", "assurance_level is not a known level")
    method = claims.get("age_method")
    if method is not None and not (isinstance(method, str) and _METHOD.fullmatch(method)):
        yield Finding("bad_claim", "age_method must be up to 64 printable ASCII characters")


def _is_level(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        AssuranceLevel.parse(value)
    except ValueError:
        return False
    return True


def age_thresholds(claims: Mapping[str, Any]) -> tuple[frozenset[int], frozenset[int]]:
    """(thresholds proven true, thresholds proven false) of a checked payload."""
    over: set[int] = set()
    under: set[int] = set()
    for name, value in claims.items():
        if isinstance(value, bool) and (match := _AGE_OVER.fullmatch(name)):
            (over if value else under).add(int(match.group(1)))
    return frozenset(over), frozenset(under)


def check_token(
    token: str,
    *,
    issuer: str,
    jwks: Mapping[str, Any],
    audience: str | None,
    nonce: str | None,
    now: float,
    max_lifetime: float = 300,
    algorithms: Collection[str] = DEFAULT_ALGORITHMS,
) -> list[Finding]:
    """Every deviation of ``token`` (and of ``jwks``) from SPEC §5; empty if none."""
    findings: list[Finding] = []
    try:
        keys, problems = parse_jwks(jwks)
    except ValueError as error:
        keys, problems = {}, [str(error)]
    findings += [Finding("jwks_invalid", problem) for problem in problems]
    try:
        parsed = parse_compact(token)
    except VerificationError as error:
        return [*findings, Finding(error.reason, str(error))]
    header = parsed.header
    findings += header_findings(header, algorithms)
    alg, kid = header.get("alg"), header.get("kid")
    entry = keys.get(kid) if isinstance(kid, str) else None
    if isinstance(kid, str) and kid and entry is None:
        findings.append(Finding("unknown_kid", "header kid is not in the JWKS"))
    if entry is not None and isinstance(alg, str) and alg in KEY_TYPE_FOR_ALG:
        algorithm = get_default_algorithms()[alg]
        if not verify_signature(parsed, algorithm, alg, entry):
            findings.append(Finding("bad_signature", "signature does not verify with that kid"))
    try:
        claims = decode_payload(parsed)
    except VerificationError as error:
        return [*findings, Finding(error.reason, str(error))]
    findings += claim_findings(
        claims, issuer=issuer, audience=audience, nonce=nonce, now=now, max_lifetime=max_lifetime
    )
    return findings


async def load_jwks(source: str) -> Mapping[str, Any]:
    """A JWKS document from an ``http(s)://`` URL or a file path.

    For the command line: raises ``ValueError`` saying what went wrong when it
    cannot be fetched, read or parsed (an operator error, exit status 2).
    """
    try:
        if source.startswith(("https://", "http://")):
            async with aiohttp.ClientSession() as http:
                document, _ = await fetch_jwks_document(http, source)
        else:
            document = read_jwks_file(source)
    except VerificationError as error:
        raise ValueError(str(error)) from error
    if not isinstance(document, Mapping):
        raise ValueError("JWKS is not a JSON object")
    return document
