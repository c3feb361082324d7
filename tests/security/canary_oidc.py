"""The privacy-canary driver for the ``oidc`` kind, against a real oidc-provider 8.x.

The provider releases the planted ``name`` and ``email`` (canary values) in every
id_token alongside ``age_over_18`` (its ``age`` scope over-shares on purpose), and
the driver checks that it really did (``last_claim_names``): the gateway received
them, so finding none of them in its log, Redis, files or upstream headers means it
dropped them.  Flows: an adult's full callback and a protected page, a replayed
answer, a minor (403), an account without the claim, a forged ``iss``, logout.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

from tests.interop.oidc.harness import OIDC_POLICY, OidcProvider, oidc_settings
from tests.security.canary import Run, Setup, canary, visitor_headers
from tests.security.support import HTML, browser_challenge, callback, get
from tests.support.gateway import cookie_value, session_cookie

__all__ = ["drive_oidc", "prepare_oidc"]

PROTECTED = "/echo/wine/red"


def prepare_oidc(stack: ExitStack, directory: Path, port: int) -> Setup:
    """A provider that knows the gateway on ``port``; its files stay out of the gateway's dir."""
    uris = [f"http://localhost:{port}/.agegate/callback/op"]
    op = stack.enter_context(OidcProvider(directory, redirect_uris=uris))
    return Setup(policy=OIDC_POLICY, settings=oidc_settings(op), services={"oidc": op})


def _answer(run: Run, account: str, query: str) -> tuple[int, list[str]]:
    """One challenge answered by the provider for ``account``; the status and Set-Cookies."""
    op: OidcProvider = run.services["oidc"]
    challenge = browser_challenge(run.gw, f"{PROTECTED}?who={query}", visitor_headers(run))
    run.keep(challenge.page)
    run.secrets += [challenge.cookie, challenge.state, challenge.nonce]
    answer = op.login(challenge.link, account)
    run.secrets.append(answer.fields["code"])
    if account == "adult":
        names = op.last_claim_names()
    done = run.keep(callback(run.gw, answer.body(), challenge.cookie, visitor_headers(run), "op"))
    if account == "adult":
        # The planted identity really reached the gateway (names only are checked here).
        assert {"name", "email", "age_over_18", "sub"} <= set(op.last_claim_names()), names
    # The same answer again (code replay), and once with a forged issuer.
    replay = callback(run.gw, answer.body(), challenge.cookie, [], "op")
    assert run.keep(replay).status == 400
    forged = callback(run.gw, answer.body(iss=run.identity["email"]), challenge.cookie, [], "op")
    assert run.keep(forged).status == 400
    return done.status, done.header_list("set-cookie")


def drive_oidc(run: Run) -> None:
    """Adult, minor and no-claim answers through the real provider; the session; logout."""
    op: OidcProvider = run.services["oidc"]
    op.plant(name=run.identity["name"], email=run.identity["email"])
    gw = run.gw
    query = canary("query")
    run.client_values.append(query)
    run.keep(get(gw, f"{PROTECTED}?who={query}", [HTML, *visitor_headers(run)]))

    assert _answer(run, "minor", query)[0] == 403
    assert _answer(run, "noclaim", query)[0] == 400
    status, cookies = _answer(run, "adult", query)
    assert status == 303
    cookie = session_cookie(cookies)
    assert cookie
    jar = (b"Cookie", f"__Host-agegate={cookie}; site_pref=1".encode())
    page = run.keep(get(gw, f"{PROTECTED}?who={quote(query)}", [jar, *visitor_headers(run)]))
    assert page.status == 200, page.text
    run.keep(get(gw, "/.agegate/status", [jar]))
    out = run.keep(
        get(gw, "/.agegate/logout", [jar, (b"Origin", gw.public_origin.encode())], method="POST")
    )
    assert out.status == 204
    assert cookie_value(out.header_list("set-cookie"), "__Host-agegate") == ""
