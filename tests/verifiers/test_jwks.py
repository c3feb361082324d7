"""JwksCache against a real aiohttp JWKS server on a loopback port that counts its requests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.verifiers.tokens import (
    ISSUER,
    NOW,
    Signer,
    context,
    good_claims,
    make_signer,
    presentation,
    pyjwt_token,
)
from verifiers import jwks as jwks_module
from verifiers.age_token import AgeTokenVerifier
from verifiers.base import VerificationError, VerifierServices
from verifiers.jwks import JwksCache, parse_jwks


@dataclass
class JwksServer:
    """What the provider answers, changeable mid-test, and how often it was asked."""

    keys: list[dict[str, Any]]
    headers: dict[str, str] = field(default_factory=lambda: {"Cache-Control": "max-age=300"})
    status: int = 200
    body: bytes | None = None
    requests: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.status != 200:
            return web.Response(status=self.status, text="provider down")
        body = self.body if self.body is not None else json.dumps({"keys": self.keys}).encode()
        return web.Response(body=body, headers=self.headers, content_type="application/json")


async def _moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/jwks.json")


@pytest.fixture
async def server(signers: dict[str, Signer]) -> AsyncIterator[JwksServer]:
    state = JwksServer(keys=[s.public_jwk for s in signers.values()])
    app = web.Application()
    app.router.add_get("/jwks.json", state.handle)
    app.router.add_get("/moved", _moved)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}/jwks.json"
    yield state
    await runner.cleanup()


@pytest.fixture
async def cache(server: JwksServer) -> AsyncIterator[JwksCache]:
    keys = JwksCache(uri=server.url, max_stale=3600)
    yield keys
    await keys.close()


async def test_warm_keys_make_no_request(server: JwksServer, signer: Signer) -> None:
    async with aiohttp.ClientSession() as http:
        verifier = AgeTokenVerifier(
            "p", {"issuer": ISSUER, "jwks_uri": server.url}, VerifierServices(http=http)
        )
        for _ in range(50):
            token = pyjwt_token(signer, good_claims())
            await verifier.verify(presentation(token), context())
        assert server.requests == 1
        await verifier.aclose()
        assert not http.closed  # a session the gateway lent us is not ours to close


async def test_warm_up_fetches_before_the_first_request(server: JwksServer, signer: Signer) -> None:
    verifier = AgeTokenVerifier("p", {"issuer": ISSUER, "jwks_uri": server.url}, VerifierServices())
    await verifier.warm()
    assert server.requests == 1
    await verifier.verify(presentation(pyjwt_token(signer, good_claims())), context())
    assert server.requests == 1
    await verifier.aclose()


async def test_cache_control_max_age_is_honoured(
    server: JwksServer, cache: JwksCache, signer: Signer
) -> None:
    server.headers = {"Cache-Control": "public, max-age=120"}
    await cache.get(signer.kid, NOW)
    await cache.get(signer.kid, NOW + 119)
    assert server.requests == 1
    await cache.get(signer.kid, NOW + 121)
    assert server.requests == 2


async def test_age_header_counts_against_max_age(
    server: JwksServer, cache: JwksCache, signer: Signer
) -> None:
    server.headers = {"Cache-Control": "max-age=200", "Age": "100"}
    await cache.get(signer.kid, NOW)
    await cache.get(signer.kid, NOW + 99)
    assert server.requests == 1
    await cache.get(signer.kid, NOW + 101)
    assert server.requests == 2


@pytest.mark.parametrize(
    "headers",
    [
        {"Cache-Control": "max-age=120", "Age": "soon"},
        {"Expires": "not a date"},
        {"Expires": "Mon, 01 Jan 2035 00:10:00 GMT", "Date": "garbage"},
        {"Cache-Control": "max-age=-5"},
    ],
)
async def test_odd_cache_headers_do_not_break_the_fetch(
    server: JwksServer, cache: JwksCache, signer: Signer, headers: dict[str, str]
) -> None:
    server.headers = headers
    assert (await cache.get(signer.kid, NOW)).kid == signer.kid
    await cache.get(signer.kid, NOW + 59)  # floored at a minute whatever the headers say
    assert server.requests == 1


async def test_expires_header_is_honoured(
    server: JwksServer, cache: JwksCache, signer: Signer
) -> None:
    server.headers = {
        "Date": "Mon, 01 Jan 2035 00:00:00 GMT",
        "Expires": "Mon, 01 Jan 2035 00:10:00 GMT",
    }
    await cache.get(signer.kid, NOW)
    await cache.get(signer.kid, NOW + 599)
    assert server.requests == 1
    await cache.get(signer.kid, NOW + 601)
    assert server.requests == 2


async def test_no_cache_is_floored_to_a_minute(
    server: JwksServer, cache: JwksCache, signer: Signer
) -> None:
    server.headers = {"Cache-Control": "no-cache"}
    for offset in range(0, 60, 5):
        await cache.get(signer.kid, NOW + offset)
    assert server.requests == 1


async def test_unknown_kid_refreshes_at_most_once_a_minute(
    server: JwksServer, cache: JwksCache, signer: Signer
) -> None:
    await cache.get(signer.kid, NOW)
    for offset in range(5):
        with pytest.raises(VerificationError) as caught:
            await cache.get(f"made-up-{offset}", NOW + offset)
        assert caught.value.reason == "unknown_kid"
    assert server.requests == 2  # the first fetch and one refresh for all unknown kids
    rotated = make_signer("ES256")
    server.keys = [*server.keys, rotated.public_jwk]
    with pytest.raises(VerificationError):
        await cache.get(rotated.kid, NOW + 59)
    assert server.requests == 2
    assert (await cache.get(rotated.kid, NOW + 65)).kid == rotated.kid
    assert server.requests == 3


async def test_stale_keys_served_up_to_max_stale_then_fail_closed(
    server: JwksServer, signer: Signer
) -> None:
    cache = JwksCache(uri=server.url, max_stale=600)
    server.headers = {"Cache-Control": "max-age=100"}
    await cache.get(signer.kid, NOW)
    server.status = 503
    assert (await cache.get(signer.kid, NOW + 150)).kid == signer.kid  # stale, provider down
    assert (await cache.get(signer.kid, NOW + 155)).kid == signer.kid
    assert server.requests == 2  # one failed attempt, then a back-off: not one per request
    assert (await cache.get(signer.kid, NOW + 699)).kid == signer.kid
    with pytest.raises(VerificationError) as caught:
        await cache.get(signer.kid, NOW + 701)
    assert caught.value.reason == "jwks_unavailable"
    server.status = 200
    assert (await cache.get(signer.kid, NOW + 720)).kid == signer.kid  # recovers
    await cache.close()


async def test_provider_down_from_the_start_fails_closed(
    server: JwksServer, cache: JwksCache, signer: Signer
) -> None:
    server.status = 500
    with pytest.raises(VerificationError) as caught:
        await cache.get(signer.kid, NOW)
    assert caught.value.reason == "jwks_unavailable"


async def test_verifier_reports_jwks_unavailable(server: JwksServer, signer: Signer) -> None:
    server.status = 503
    verifier = AgeTokenVerifier("p", {"issuer": ISSUER, "jwks_uri": server.url}, VerifierServices())
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(presentation(pyjwt_token(signer, good_claims())), context())
    assert caught.value.reason == "jwks_unavailable"
    await verifier.aclose()


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"keys": 3}', b"x" * 300_000, b"[" * 100_000 + b"]" * 100_000]
)
async def test_bad_documents_are_unavailable(
    server: JwksServer, cache: JwksCache, signer: Signer, body: bytes
) -> None:
    server.body = body
    with pytest.raises(VerificationError) as caught:
        await cache.get(signer.kid, NOW)
    assert caught.value.reason == "jwks_unavailable"


async def test_redirects_are_not_followed(server: JwksServer, signer: Signer) -> None:
    cache = JwksCache(uri=server.url.replace("/jwks.json", "/moved"))
    with pytest.raises(VerificationError) as caught:
        await cache.get(signer.kid, NOW)
    assert caught.value.reason == "jwks_unavailable"
    await cache.close()


async def test_key_set_is_bounded(server: JwksServer, signer: Signer) -> None:
    server.keys = [make_signer("ES256", kid=f"k{i}").public_jwk for i in range(40)]
    cache = JwksCache(uri=server.url, max_keys=32)
    await cache.refresh(NOW)
    assert (await cache.get("k31", NOW)).kid == "k31"
    with pytest.raises(VerificationError):
        await cache.get("k32", NOW)
    assert len(cache.problems) == 8
    await cache.close()


async def test_file_source(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [signer.public_jwk]}))
    cache = JwksCache(file=path)
    assert (await cache.get(signer.kid, NOW)).kid == signer.kid
    assert cache.fetches == 1
    path.unlink()
    assert (await cache.get(signer.kid, NOW + 30)).kid == signer.kid  # fresh: not re-read


def test_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JwksCache()
    with pytest.raises(ValueError, match="exactly one"):
        JwksCache(uri="https://a.example/jwks", file="jwks.json")


def test_parse_jwks_skips_unusable_keys(signer: Signer) -> None:
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    document = {
        "keys": [
            signer.public_jwk,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            signer.private_jwk | {"kid": "private"},
            {k: v for k, v in signer.public_jwk.items() if k != "kid"},
            signer.public_jwk | {"kid": "enc", "use": "enc"},
            signer.public_jwk | {"kid": "ops", "key_ops": ["encrypt"]},
            signer.public_jwk | {"kid": "bad-point", "x": "AAAA"},
            json.loads(RSAAlgorithm.to_jwk(small_rsa)) | {"kid": "rsa1024"},
            signer.public_jwk | {"kid": "hs-alg", "alg": "HS256"},
            signer.public_jwk,  # duplicate kid
            "not an object",
        ]
    }
    keys, problems = parse_jwks(document)
    assert list(keys) == [signer.kid]
    assert len(problems) == 10
    assert not any(signer.public_jwk["x"] in line for line in problems)  # no key material


def test_key_type_must_match_alg(signers: dict[str, Signer]) -> None:
    keys, _ = parse_jwks({"keys": [s.public_jwk for s in signers.values()]})
    es256, eddsa, ps256 = (keys[signers[a].kid] for a in ("ES256", "EdDSA", "PS256"))
    assert es256.accepts("ES256") and not es256.accepts("ES384") and not es256.accepts("PS256")
    assert eddsa.accepts("EdDSA") and not eddsa.accepts("ES256")
    assert ps256.accepts("PS256") and ps256.accepts("RS256") and not ps256.accepts("HS256")


def test_public_names_import() -> None:
    for name in jwks_module.__all__:
        assert getattr(jwks_module, name) is not None
