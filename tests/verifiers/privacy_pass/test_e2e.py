"""Privacy Pass end to end: a real gateway process, a real reference issuer, the Python client.

Protected API route -> 401 with AgeToken and PrivateToken challenges -> the
client attests, fetches a token from the issuer, redeems it -> 2xx with a
session cookie.  Then the refusals, each with its reason and no session,
double spending across two gateways sharing Redis, the browser fallback,
``agegate pp fetch``, and the logs: no origin at the issuer, no token at the gateway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.session.keys import generate_key_line
from tests.support.gateway import GatewayProcess, cookie_value, session_cookie
from tests.support.net import free_port
from tests.support.redis import RedisServer
from tests.support.upstream import UpstreamServer
from tests.verifiers.privacy_pass.harness import PP_POLICY, ReferenceProcess, pp_settings
from verifiers.privacy_pass.client import (
    attest,
    authorization_value,
    fetch_token,
    parse_private_token_challenges,
)
from verifiers.privacy_pass.structs import (
    Token,
    b64url_decode,
    b64url_encode,
    parse_auth_params,
)

pytestmark = pytest.mark.slow
JSON = {"accept": "application/json"}
HTML = {"accept": "text/html"}
ADULT, CHILD = "1990-01-01", "2015-01-01"


@dataclasses.dataclass
class Site:
    gateway: GatewayProcess
    reference: ReferenceProcess
    upstream: UpstreamServer

    @property
    def origin(self) -> str:
        return self.gateway.public_origin


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("pp-e2e")
    port = free_port()
    origin = f"http://localhost:{port}"
    client = f"{origin}={origin}/.agegate/callback/reference-pp"
    with (
        UpstreamServer() as upstream,
        ReferenceProcess(tmp / "ref", clients=[client]) as ref,
    ):
        (tmp / "gw").mkdir()
        gateway = GatewayProcess(
            tmp / "gw",
            upstream=upstream.url,
            policy=PP_POLICY,
            settings=pp_settings(ref),
            port=port,
        )
        with gateway:
            yield Site(gateway, ref, upstream)


def _challenges(response: httpx.Response) -> list[str]:
    return response.headers.get_list("www-authenticate")


def _credential(site: Site, response: httpx.Response, birth_date: str = ADULT) -> str:
    async def run() -> str:
        attestation = await attest(site.reference.url, birth_date)
        return await fetch_token(
            _challenges(response),
            site.reference.url,
            attestation,
            origin=f"localhost:{site.gateway.port}",
        )

    return asyncio.run(run())


def _refusal(site: Site, credential: str, path: str = "/echo/wine/red") -> httpx.Response:
    response = httpx.get(site.gateway.url + path, headers={**JSON, "authorization": credential})
    assert response.status_code == 401, response.text
    assert session_cookie(response.headers.get_list("set-cookie")) is None
    return response


def test_api_client_gets_a_token_and_a_session(site: Site) -> None:
    challenge = httpx.get(site.gateway.url + "/echo/wine/red", headers=JSON)
    assert challenge.status_code == 401
    values = _challenges(challenge)
    assert any(v.startswith("AgeToken ") for v in values)
    private = [v for v in values if v.startswith("PrivateToken ")]
    assert len(private) == 2  # the 18 and the 21 key
    credential = _credential(site, challenge)
    answer = httpx.get(
        site.gateway.url + "/echo/wine/red", headers={**JSON, "authorization": credential}
    )
    assert answer.status_code == 200, answer.text
    echoed = answer.json()["headers"]
    assert not any(k.lower() == "authorization" for k, _ in echoed)  # stripped
    assert ("x-agegate-age-over", "18") in [(k.lower(), v) for k, v in echoed]
    session = session_cookie(answer.headers.get_list("set-cookie"))
    assert session
    again = httpx.get(
        site.gateway.url + "/echo/wine/red", headers={**JSON, "cookie": f"__Host-agegate={session}"}
    )
    assert again.status_code == 200
    # Privacy: the gateway never logs the token, the issuer never logs the origin.
    token = parse_auth_params(credential.removeprefix("PrivateToken "))["token"]
    log = site.gateway.log_text()
    assert token[:40] not in log and token[-40:] not in log
    reference_log = site.reference.log_text()
    assert "POST /token-request 200" in reference_log
    assert site.origin not in reference_log
    assert f"localhost:{site.gateway.port}" not in reference_log


def test_the_client_proves_no_more_than_the_route_needs(site: Site) -> None:
    challenge = httpx.get(site.gateway.url + "/echo/spirits/rum", headers=JSON)
    assert len([v for v in _challenges(challenge) if v.startswith("PrivateToken")]) == 1
    credential = _credential(site, challenge)
    answer = httpx.get(
        site.gateway.url + "/echo/spirits/rum", headers={**JSON, "authorization": credential}
    )
    assert answer.status_code == 200
    status = httpx.get(
        site.gateway.url + "/.agegate/status",
        headers={
            "cookie": f"__Host-agegate={session_cookie(answer.headers.get_list('set-cookie'))}"
        },
    )
    assert status.json()["age_over"] == [21]


def test_under_age_client_gets_no_attestation(site: Site) -> None:
    challenge = httpx.get(site.gateway.url + "/echo/wine/red", headers=JSON)
    with pytest.raises(Exception, match="under_age"):
        _credential(site, challenge, CHILD)


def test_double_spend_is_refused(site: Site) -> None:
    challenge = httpx.get(site.gateway.url + "/echo/wine/red", headers=JSON)
    credential = _credential(site, challenge)
    first = httpx.get(site.gateway.url + "/echo/wine/red", headers={"authorization": credential})
    assert first.status_code == 200
    assert _refusal(site, credential).json()["reason"] == "replayed"


def _token(credential: str) -> Token:
    return Token.parse(b64url_decode(parse_auth_params(credential.split(" ", 1)[1])["token"]))


def test_refusals_with_their_reasons(site: Site) -> None:
    challenge = httpx.get(site.gateway.url + "/echo/wine/red", headers=JSON)
    token = _token(_credential(site, challenge))
    cases = {
        "bad_type": 'PrivateToken token="' + b64url_encode(b"\x00\x01" + bytes(200)) + '"',
        "wrong_challenge": authorization_value(
            dataclasses.replace(token, challenge_digest=bytes(32))
        ),
        "unknown_key": authorization_value(dataclasses.replace(token, token_key_id=bytes(32))),
        "bad_signature": authorization_value(
            dataclasses.replace(token, authenticator=bytes(255) + b"\x01")
        ),
        "malformed": 'PrivateToken token="' + b64url_encode(token.serialize()[:-7]) + '"',
    }
    for reason, credential in cases.items():
        assert _refusal(site, credential).json()["reason"] == reason, reason
    for junk in (
        "PrivateToken",
        "PrivateToken token=%%%",
        'PrivateToken token="',
        "PrivateToken ,,",
    ):
        response = _refusal(site, junk)
        assert response.json()["reason"] == "malformed"
    # The good token was never spent by those refusals.
    good = httpx.get(
        site.gateway.url + "/echo/wine/red", headers={"authorization": authorization_value(token)}
    )
    assert good.status_code == 200


def test_token_for_another_origin_is_refused(site: Site) -> None:
    challenge = httpx.get(site.gateway.url + "/echo/wine/red", headers=JSON)
    offered = parse_private_token_challenges(_challenges(challenge))[0]
    other = dataclasses.replace(offered.challenge, origin_info=("shop.example",))
    header = (
        'PrivateToken challenge="'
        + b64url_encode(other.serialize())
        + '", token-key="'
        + b64url_encode(offered.token_key.spki)
        + '"'
    )

    async def run() -> str:
        return await fetch_token(
            header, site.reference.url, await attest(site.reference.url, ADULT)
        )

    credential = asyncio.run(run())  # the issuer signs blind: it cannot know the origin
    assert _refusal(site, credential).json()["reason"] == "wrong_challenge"


def test_browser_fallback_through_the_reference_service(site: Site) -> None:
    gw = httpx.Client(base_url=site.gateway.url)
    page = gw.get("/.agegate/verify?return=/echo/wine/red", headers=HTML)
    assert page.status_code == 200
    challenge_cookie = cookie_value(page.headers.get_list("set-cookie"), "__Host-agegate-challenge")
    link = re.search(r"href='([^']+)' data-verifier='reference-pp'", page.text)
    assert link, page.text
    url = html.unescape(link.group(1))
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    ref = httpx.Client(base_url=site.reference.url)
    form = ref.get(url.replace(site.reference.issuer, site.reference.url), headers=HTML)
    assert form.status_code == 200, form.text
    assert 'action="/pp/authorize"' in form.text
    sealed = re.search(r'name="request" value="([^"]+)"', form.text)
    assert sealed
    posted = ref.post(
        "/pp/authorize",
        data={"request": html.unescape(sealed.group(1)), "birth_date": ADULT, "action": "continue"},
    )
    assert posted.status_code == 200, posted.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', posted.text))
    assert set(fields) == {"age_token", "state"}
    assert fields["state"] == params["state"]
    jar = {"cookie": f"__Host-agegate-challenge={challenge_cookie}"}
    done = gw.post(
        "/.agegate/callback/reference-pp",
        headers=jar,
        data={k: html.unescape(v) for k, v in fields.items()},
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/echo/wine/red"
    assert session_cookie(done.headers.get_list("set-cookie"))
    # The same token again (another browser tab replaying the post) is refused.
    page2 = gw.get("/.agegate/verify?return=/echo/wine/red", headers=HTML)
    jar2 = {
        "cookie": "__Host-agegate-challenge="
        + str(cookie_value(page2.headers.get_list("set-cookie"), "__Host-agegate-challenge"))
    }
    replay = gw.post("/.agegate/callback/reference-pp", headers=jar2, data=fields)
    assert replay.status_code == 400


def test_browser_fallback_refuses_a_challenge_for_another_site(site: Site) -> None:
    page = httpx.get(site.gateway.url + "/.agegate/verify?return=/echo/wine/red", headers=HTML)
    link = re.search(r"href='([^']+)' data-verifier='reference-pp'", page.text)
    assert link
    url = html.unescape(link.group(1)).replace(site.reference.issuer, site.reference.url)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    from verifiers.privacy_pass.structs import TokenChallenge

    challenge = TokenChallenge.parse(b64url_decode(query["challenge"]))
    query["challenge"] = b64url_encode(
        dataclasses.replace(challenge, origin_info=("bank.example",)).serialize()
    )
    refused = httpx.get(site.reference.url + "/pp/authorize", params=query)
    assert refused.status_code == 400
    assert "another site" in refused.text


def test_agegate_pp_fetch_command(site: Site) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "gateway.cli.main", "pp", "fetch",
            "--url", f"{site.origin}/echo/wine/red",
            "--issuer", site.reference.url, "--birth-date", ADULT,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "200" in result.stdout
    assert "__Host-agegate" in result.stdout or "session" in result.stdout


def test_double_spend_across_two_gateways_sharing_redis(tmp_path: Path, site: Site) -> None:
    key = generate_key_line()
    with RedisServer() as redis:
        settings = {**pp_settings(site.reference), "store": redis.url}
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first = GatewayProcess(
            tmp_path / "a", upstream=site.upstream.url, policy=PP_POLICY, settings=settings,
            session_key=key,
        )  # fmt: skip
        second = GatewayProcess(
            tmp_path / "b", upstream=site.upstream.url, policy=PP_POLICY,
            settings={**settings, "public_origin": first.public_origin}, session_key=key,
        )  # fmt: skip
        with first, second:
            challenge = httpx.get(first.url + "/echo/wine/red", headers=JSON)

            async def run() -> str:
                return await fetch_token(
                    _challenges(challenge),
                    site.reference.url,
                    await attest(site.reference.url, ADULT),
                )

            credential = asyncio.run(run())
            auth = {"authorization": credential}
            assert httpx.get(first.url + "/echo/wine/red", headers=auth).status_code == 200
            replayed = httpx.get(second.url + "/echo/wine/red", headers={**JSON, **auth})
            assert replayed.status_code == 401
            assert replayed.json()["reason"] == "replayed"
            assert session_cookie(replayed.headers.get_list("set-cookie")) is None
