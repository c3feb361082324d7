"""Token Status Lists: fetched whole on a schedule, read from memory, failing closed."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.verifiers.sd_jwt_vc.helpers import make_setup
from verifiers.b64url import b64url_encode
from verifiers.base import VerificationError, VerifierServices
from verifiers.reference.sd_jwt_issuer import TEST_VCT, ReferenceSdJwtIssuer
from verifiers.sd_jwt_vc import SdJwtVcVerifier
from verifiers.status_list import StatusList, parse_status_list, status_at

URI = "https://issuer.test/status/1"
NOW = time.time()


class FakeResponse:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.content = self
        self._body = body

    async def iter_chunked(self, size: int) -> Any:
        for start in range(0, len(self._body), size):
            yield self._body[start : start + size]

    async def __aenter__(self) -> FakeResponse:
        return self

    async def __aexit__(
        self, *exc: type[BaseException] | BaseException | TracebackType | None
    ) -> None:
        return None


class FakeHttp:
    """Serves status list tokens by URI and counts fetches (they must never be per credential)."""

    def __init__(self) -> None:
        self.lists: dict[str, str] = {}
        self.fetches: list[str] = []

    def get(self, uri: str, **kwargs: Any) -> FakeResponse:
        self.fetches.append(uri)
        body = self.lists.get(uri)
        return FakeResponse(200, body.encode()) if body else FakeResponse(404, b"")


@given(st.sampled_from([1, 2, 4, 8]), st.lists(st.integers(0, 255), max_size=64))
def test_status_at_reads_what_was_packed(bits: int, raw: list[int]) -> None:
    values = [v & ((1 << bits) - 1) for v in raw]
    data = bytearray((len(values) * bits + 7) // 8)
    for index, value in enumerate(values):
        data[index * bits // 8] |= value << (index * bits % 8)
    packed = StatusList(bits, bytes(data), NOW)
    assert [status_at(packed, i) for i in range(len(values))] == values


@given(st.dictionaries(st.text(max_size=10), st.text(max_size=10) | st.integers(), max_size=4))
def test_parse_status_list_refuses_anything_malformed(claims: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_status_list(claims, URI, NOW)


def test_a_zip_bomb_is_refused() -> None:
    import zlib

    bomb = b64url_encode(zlib.compress(b"\0" * (20 * 1024 * 1024)))
    with pytest.raises(ValueError, match="size limit"):
        parse_status_list({"sub": URI, "status_list": {"bits": 1, "lst": bomb}}, URI, NOW)


def status_setup(tmp_path: Path, http: FakeHttp, **status: Any) -> Any:
    setup = make_setup(tmp_path)
    settings = {
        "vct": [TEST_VCT],
        "trust_anchors": "anchors.pem",
        "linkability": "flag",
        "status_list": {"uris": [URI], **status},
    }
    setup.verifier = SdJwtVcVerifier(
        "eu-pid", settings, VerifierServices(http=http, base_dir=str(tmp_path))
    )
    return setup


def with_status(setup: Any, index: int, uri: str = URI) -> str:
    status = {"status_list": {"idx": index, "uri": uri}}
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), clear={"status": status})
    return str(setup.present(issued))


async def test_valid_and_revoked_credentials_from_a_fetched_list(tmp_path: Path) -> None:
    http = FakeHttp()
    setup = status_setup(tmp_path, http)
    http.lists[URI] = setup.issuer.status_list(URI, [0, 1, 0])
    await setup.verifier.status_lists.refresh()
    assert (await setup.verify(with_status(setup, 0))).age_over == frozenset({18})
    with pytest.raises(VerificationError) as caught:
        await setup.verify(with_status(setup, 1))
    assert caught.value.reason == "revoked"
    assert http.fetches == [URI]  # once, at refresh: never per presentation


async def test_list_not_fetched_yet_fails_closed(tmp_path: Path) -> None:
    setup = status_setup(tmp_path, FakeHttp())
    await setup.verifier.status_lists.refresh()  # 404: nothing to read
    with pytest.raises(VerificationError) as caught:
        await setup.verify(with_status(setup, 0))
    assert caught.value.reason == "status_unavailable"


async def test_unlisted_status_uri_is_refused_or_ignored(tmp_path: Path) -> None:
    http = FakeHttp()
    setup = status_setup(tmp_path, http)
    with pytest.raises(VerificationError) as caught:
        await setup.verify(with_status(setup, 0, "https://elsewhere.test/sl"))
    assert caught.value.reason == "status_unavailable"
    assert http.fetches == []  # the unknown list is not fetched on the request path
    relaxed = status_setup(tmp_path, http, unlisted="ignore")
    assert (await relaxed.verify(with_status(relaxed, 0, "https://elsewhere.test/sl"))).age_over


async def test_list_signed_by_an_untrusted_key_is_not_used(tmp_path: Path) -> None:
    http = FakeHttp()
    setup = status_setup(tmp_path, http)
    http.lists[URI] = ReferenceSdJwtIssuer().status_list(URI, [0])  # another CA
    await setup.verifier.status_lists.refresh()
    with pytest.raises(VerificationError) as caught:
        await setup.verify(with_status(setup, 0))
    assert caught.value.reason == "status_unavailable"


async def test_status_index_is_refused_as_linkable_by_default(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    with pytest.raises(VerificationError, match="status_index") as caught:
        await setup.verify(with_status(setup, 0))
    assert caught.value.reason == "linkable_credential"


async def test_an_oversize_list_response_is_not_used(tmp_path: Path) -> None:
    http = FakeHttp()
    setup = status_setup(tmp_path, http)
    http.lists[URI] = "a" * (5 * 1024 * 1024)
    await setup.verifier.status_lists.refresh()
    with pytest.raises(VerificationError) as caught:
        await setup.verify(with_status(setup, 0))
    assert caught.value.reason == "status_unavailable"
