"""The reference attester and issuer (ASGI transport): directory, attest, token-request."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx
import pytest

from verifiers.privacy_pass.client import begin_issuance, finish_issuance
from verifiers.privacy_pass.structs import (
    TokenChallenge,
    TokenResponse,
    b64url_decode,
)
from verifiers.reference import ReferenceConfig, build_reference_app
from verifiers.reference.app import ACCESS_LOGGER
from verifiers.reference.issuer import (
    Attestations,
    IssuerKey,
    generate_issuer_key,
    load_issuer_keys,
)

ISSUER = "http://localhost:8081"
NOW = 1_780_000_000.0
REQUEST_TYPE = {"content-type": "application/private-token-request"}


@pytest.fixture
async def client(issuer_keys: dict[int, IssuerKey]) -> AsyncIterator[httpx.AsyncClient]:
    config = ReferenceConfig(
        issuer=ISSUER, clients={}, clock=lambda: NOW, pp_keys=tuple(issuer_keys.values())
    )
    transport = httpx.ASGITransport(app=build_reference_app(config))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        yield http


async def _attestation(client: httpx.AsyncClient, birth_date: str) -> httpx.Response:
    return await client.post("/attest", json={"birth_date": birth_date})


async def test_directory_lists_every_key(
    client: httpx.AsyncClient, issuer_keys: dict[int, IssuerKey]
) -> None:
    response = await client.get("/.well-known/private-token-issuer-directory")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/private-token-issuer-directory"
    body = response.json()
    assert body["issuer-request-uri"] == "/token-request"
    keys = [b64url_decode(entry["token-key"]) for entry in body["token-keys"]]
    assert keys == [k.public.spki for k in issuer_keys.values()]
    assert all(entry["token-type"] == 2 for entry in body["token-keys"])
    assert all(entry["token-key"].endswith("=") or len(entry["token-key"]) % 4 == 0
               for entry in body["token-keys"])  # fmt: skip


async def test_attest_says_only_the_highest_threshold_met(client: httpx.AsyncClient) -> None:
    adult = (await _attestation(client, "1990-01-01")).json()
    assert adult["age_over"] == 21
    assert set(adult) == {"attestation", "age_over", "expires_in"}
    nineteen = (await _attestation(client, "2007-01-01")).json()
    assert nineteen["age_over"] == 18
    child = await _attestation(client, "2015-01-01")
    assert child.status_code == 403 and child.json()["error"] == "under_age"
    for bad in (b"{", b"[]", b'{"birth_date": 5}', b'{"birth_date": "2090-01-01"}'):
        response = await client.post("/attest", content=bad)
        assert response.status_code == 400


async def test_token_request_issues_for_a_covered_key(
    client: httpx.AsyncClient, issuer_keys: dict[int, IssuerKey], caplog: pytest.LogCaptureFixture
) -> None:
    attestation = (await _attestation(client, "2007-01-01")).json()["attestation"]  # over 18 only
    challenge = TokenChallenge(2, "localhost:8081", bytes(32), ("shop.example",)).serialize()
    auth = {**REQUEST_TYPE, "authorization": f"Attestation {attestation}"}
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    request, pending = begin_issuance(challenge, issuer_keys[18].public)
    response = await client.post("/token-request", content=request.serialize(), headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/private-token-response"
    token = finish_issuance(pending, TokenResponse.parse(response.content))
    assert token.token_key_id == issuer_keys[18].public.token_key_id
    # An over-18 attestation does not buy an over-21 token.
    request21, _ = begin_issuance(challenge, issuer_keys[21].public)
    refused = await client.post("/token-request", content=request21.serialize(), headers=auth)
    assert refused.status_code == 403
    assert "shop.example" not in caplog.text


async def test_token_request_refusals(
    client: httpx.AsyncClient, issuer_keys: dict[int, IssuerKey]
) -> None:
    request, _ = begin_issuance(b"challenge", issuer_keys[18].public)
    body = request.serialize()
    assert (
        await client.post("/token-request", content=body, headers=REQUEST_TYPE)
    ).status_code == 401
    forged = {**REQUEST_TYPE, "authorization": "Attestation eyJhZ2Vfb3ZlciI6OTl9.AAAA"}
    assert (await client.post("/token-request", content=body, headers=forged)).status_code == 401
    good = (await _attestation(client, "1990-01-01")).json()["attestation"]
    auth = {**REQUEST_TYPE, "authorization": f"Attestation {good}"}
    no_type = {"authorization": auth["authorization"]}
    assert (await client.post("/token-request", content=body, headers=no_type)).status_code == 415
    for bad in (b"", body[:-1], body + b"\x00", b"\x00\x01" + body[2:], b"x" * 5000):
        response = await client.post("/token-request", content=bad, headers=auth)
        assert response.status_code == 422, bad[:4]
    unknown = bytearray(body)
    unknown[2] ^= 0xFF  # truncated key id of no key (ids are distinct by construction)
    if all(k.public.truncated_id != unknown[2] for k in issuer_keys.values()):
        response = await client.post("/token-request", content=bytes(unknown), headers=auth)
        assert response.status_code == 422


def test_expired_attestation_is_refused() -> None:
    attestations = Attestations(bytes(32), ttl=300)
    credential = attestations.issue(18, NOW)
    assert attestations.check(credential, NOW + 299) == 18
    assert attestations.check(credential, NOW + 301) is None
    assert attestations.check(credential + "x", NOW) is None
    assert attestations.check("garbage", NOW) is None


def test_key_directory_generates_then_reloads(tmp_path: Path) -> None:
    first = load_issuer_keys(tmp_path / "keys", [18])
    assert [k.threshold for k in first] == [18]
    assert (tmp_path / "keys" / "pp-18.spki.pem").is_file()
    assert (tmp_path / "keys" / "pp-18.key.pem").stat().st_mode & 0o077 == 0
    again = load_issuer_keys(tmp_path / "keys", [18])
    assert again[0].public == first[0].public


def test_key_directory_refuses_two_keys_one_token_request_could_not_tell_apart(
    tmp_path: Path,
) -> None:
    # RFC 9578 §6.5: the issuer finds a TokenRequest's key by one byte. The same key
    # under a second name is the simplest pair sharing it; the wrong key would sign.
    directory = tmp_path / "keys"
    load_issuer_keys(directory, [18])
    (directory / "pp-18-copy.key.pem").write_bytes((directory / "pp-18.key.pem").read_bytes())
    with pytest.raises(ValueError, match=r"pp-18.key.pem: its truncated token key id .*pp-18-copy"):
        load_issuer_keys(directory, [18])


def test_a_new_key_avoids_the_truncated_ids_it_is_told_of() -> None:
    # Half of all ids taken: a key drawn without looking would land on one half the time.
    taken = [
        cast(IssuerKey, SimpleNamespace(public=SimpleNamespace(truncated_id=i))) for i in range(128)
    ]
    for _ in range(3):
        assert generate_issuer_key(18, unlike=taken).public.truncated_id >= 128
