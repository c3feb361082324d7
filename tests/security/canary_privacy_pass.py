"""The privacy-canary driver for the ``privacy-pass`` kind (RFC 9577/9578).

Two flows against a real gateway and a real reference attester/issuer:

- **API**: 401 with ``PrivateToken`` challenges; the client attests with a canary
  birth date and fetches a token straight from the issuer, then redeems it.  Every
  byte the client sends the issuer is captured: the site's name must not be in it
  (the issuer signs blind and never learns the site).  Refusals: an under-age
  attestation, a forged authenticator, a double spend.
- **Browser fallback**: the verify page's ``reference-pp`` link, the reference's
  date-of-birth form (canary birth dates, under age first), its form_post back to
  ``/.agegate/callback/reference-pp``, then the session.  Here the reference acts as
  client too, so it does see the site (docs/security.md) — but may not log it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
from contextlib import ExitStack
from datetime import date
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx

from tests.security.canary import Run, Setup, canary, visitor_headers
from tests.security.support import HTML, callback, get
from tests.support.gateway import cookie_value, session_cookie
from tests.support.rawhttp import RawResponse
from tests.verifiers.privacy_pass.harness import PP_POLICY, ReferenceProcess, pp_settings
from verifiers.privacy_pass.client import ClientError, attest, authorization_value, fetch_token
from verifiers.privacy_pass.structs import Token, b64url_decode, b64url_encode, parse_auth_params

__all__ = ["drive_privacy_pass", "prepare_privacy_pass"]

JSON = (b"Accept", b"application/json")
_PP_LINK = re.compile(r"href='([^']+)' data-verifier='reference-pp'")
_SEALED = re.compile(r'name="request" value="([^"]+)"')
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def canary_birth_date(adult: bool) -> str:
    """A valid, random date of birth (the attester parses it), over 21 or under 13."""
    today = date.today()
    year = random.randint(1931, today.year - 25) if adult else today.year - random.randint(3, 9)
    return date(year, random.randint(1, 12), random.randint(1, 28)).isoformat()


def prepare_privacy_pass(stack: ExitStack, directory: Path, port: int) -> Setup:
    """A reference attester/issuer that knows the gateway on ``port`` as a client."""
    origin = f"http://localhost:{port}"
    reference = stack.enter_context(
        ReferenceProcess(directory, clients=[f"{origin}={origin}/.agegate/callback/reference-pp"])
    )
    return Setup(policy=PP_POLICY, settings=pp_settings(reference), reference=reference)


async def _issue(
    issuer_url: str, birth_date: str, challenges: list[str], origin: str
) -> tuple[str, str, bytes]:
    """Attest and fetch a token; the attestation, the credential and every byte sent."""
    sent = bytearray()

    async def on_headers(_s: Any, _c: Any, params: aiohttp.TraceRequestHeadersSentParams) -> None:
        sent.extend(f"{params.method} {params.url}\n".encode())
        sent.extend("".join(f"{k}: {v}\n" for k, v in params.headers.items()).encode())

    async def on_chunk(_s: Any, _c: Any, params: aiohttp.TraceRequestChunkSentParams) -> None:
        sent.extend(params.chunk)

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_headers)
    trace.on_request_chunk_sent.append(on_chunk)
    async with aiohttp.ClientSession(trace_configs=[trace]) as http:
        attestation = await attest(issuer_url, birth_date, http=http)
        credential = await fetch_token(
            challenges, issuer_url, attestation, origin=origin, http=http
        )
    return attestation, credential, bytes(sent)


def _token(credential: str) -> Token:
    return Token.parse(b64url_decode(parse_auth_params(credential.split(" ", 1)[1])["token"]))


def _keep_token(run: Run, credential: str) -> Token:
    token = _token(credential)
    value = parse_auth_params(credential.split(" ", 1)[1])["token"]
    run.secrets += [
        value,
        b64url_encode(token.nonce),
        token.nonce.hex(),
        token.nonce.decode("latin-1"),  # raw bytes, as a store might keep them
        b64url_encode(token.authenticator)[:64],
    ]
    return token


def _api_flow(run: Run, protected: str) -> str:
    """401 -> attest -> token -> redeem; refusals; returns the session cookie."""
    gw, reference = run.gw, run.reference
    assert reference is not None
    first = run.keep(get(gw, protected, [JSON, *visitor_headers(run)]))
    assert first.status == 401, first.text
    challenges = first.header_list("www-authenticate")
    assert any(v.startswith("PrivateToken ") for v in challenges), challenges
    server_name = f"localhost:{gw.port}"

    try:
        asyncio.run(_issue(reference.url, run.identity["birthdate_child"], challenges, server_name))
    except ClientError as exc:
        assert "under_age" in str(exc)
    else:
        raise AssertionError("the attester vouched for a child")

    attestation, credential, wire = asyncio.run(
        _issue(reference.url, run.identity["birthdate_adult"], challenges, server_name)
    )
    run.secrets.append(attestation)
    token = _keep_token(run, credential)
    # The issuer was told a date of birth (the attester's job) and a blinded message, never
    # the site: not its origin, not its server name, not the challenge in the clear.
    # (Control: the capture holds what the attester was meant to get.)
    assert run.identity["birthdate_adult"].encode() in wire
    assert b"POST " in wire and b"/token-request" in wire
    for name in run.origin_names:
        assert name.encode() not in wire, f"{name} was sent to the issuer"
    assert token.challenge_digest not in wire
    # The attestation says "over N", not the date it was made from.
    payload = json.loads(b64url_decode(attestation.split(".", 1)[0]))
    assert set(payload) == {"age_over", "exp"}, payload

    forged = authorization_value(dataclasses.replace(token, authenticator=bytes(256)))
    refused = run.keep(get(gw, protected, [JSON, (b"Authorization", forged.encode())]))
    assert refused.status == 401, refused.text
    auth = (b"Authorization", credential.encode())
    answered = run.keep(get(gw, protected, [JSON, auth, *visitor_headers(run)]))
    assert answered.status == 200, answered.text
    cookie = session_cookie(answered.header_list("set-cookie"))
    assert cookie
    replayed = run.keep(get(gw, protected, [JSON, auth]))
    assert replayed.status == 401
    assert replayed.json()["reason"] == "replayed"
    return cookie


def _browser_flow(run: Run, protected: str, birth_date: str) -> tuple[RawResponse, bytes, str]:
    """Verify page -> reference form -> form_post back; the gateway's callback response."""
    gw, reference = run.gw, run.reference
    assert reference is not None
    page = run.keep(
        get(
            gw,
            f"/.agegate/verify?return={quote(protected, safe='/')}",
            [HTML, *visitor_headers(run)],
        )
    )
    assert page.status == 200, page.text
    challenge_cookie = cookie_value(page.header_list("set-cookie"), "__Host-agegate-challenge")
    link = _PP_LINK.search(page.text)
    assert challenge_cookie and link, page.text
    url = unescape(link.group(1)).replace(reference.issuer, reference.url)
    # The gateway's pages are no-referrer: a browser sends the reference no Referer.
    agent = {"accept": "text/html", "user-agent": visitor_headers(run)[0][1].decode()}
    with httpx.Client(timeout=10, headers=agent) as browser:
        form = browser.get(url)
        assert form.status_code == 200, form.text
        sealed = _SEALED.search(form.text)
        assert sealed, form.text
        posted = browser.post(
            reference.url + "/pp/authorize",
            data={"request": unescape(sealed.group(1)), "birth_date": birth_date, "action": "ok"},
        )
    assert posted.status_code == 200, posted.text
    fields = {k: unescape(v) for k, v in _HIDDEN.findall(posted.text)}
    run.secrets += [fields.get("age_token", ""), fields["state"], challenge_cookie]
    run.secrets = [s for s in run.secrets if s]
    body = "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items()).encode()
    done = run.keep(
        callback(gw, body, challenge_cookie, visitor_headers(run), verifier="reference-pp")
    )
    return done, body, challenge_cookie


def drive_privacy_pass(run: Run) -> None:
    """API flow, browser fallback, session use, status and logout for ``privacy-pass``."""
    gw = run.gw
    run.identity["birthdate_adult"] = canary_birth_date(adult=True)
    run.identity["birthdate_child"] = canary_birth_date(adult=False)
    query = canary("query")
    run.client_values.append(query)
    protected = f"/echo/wine/red?who={query}"

    api_cookie = _api_flow(run, protected)
    assert run.reference is not None
    api_log = run.reference.log_text()
    assert "POST /token-request 200" in api_log
    for name in run.origin_names:
        assert name not in api_log, f"the issuer logged {name} in the API flow"

    # Browser fallback: a child gets no token, so the callback answers with the same 403
    # refusal page as an age token saying "under 18" (and no session); an adult a session.
    refused, _, _ = _browser_flow(run, protected, run.identity["birthdate_child"])
    assert refused.status == 403, refused.text
    assert session_cookie(refused.header_list("set-cookie")) is None
    done, body, challenge_cookie = _browser_flow(run, protected, run.identity["birthdate_adult"])
    assert done.status == 303, done.text
    cookie = session_cookie(done.header_list("set-cookie"))
    assert cookie
    replay = run.keep(callback(gw, body, challenge_cookie, verifier="reference-pp"))
    assert replay.status == 400

    jar = (b"Cookie", f"__Host-agegate={cookie}; site_pref=1".encode())
    page = run.keep(get(gw, protected, [jar, *visitor_headers(run)]))
    assert page.status == 200, page.text
    for value in (cookie, api_cookie, api_cookie[:-3] + "AAA"):
        run.keep(get(gw, "/.agegate/status", [(b"Cookie", f"__Host-agegate={value}".encode())]))
        run.keep(get(gw, protected, [(b"Cookie", f"__Host-agegate={value}".encode())]))
    out = run.keep(
        get(gw, "/.agegate/logout", [jar, (b"Origin", gw.public_origin.encode())], method="POST")
    )
    assert out.status == 204
