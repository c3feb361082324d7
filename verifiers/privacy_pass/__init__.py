"""Privacy Pass for agegate: RFC 9577 ``PrivateToken`` with RFC 9578 type 2 (blind RSA) tokens.

- :mod:`~verifiers.privacy_pass.structs`: TokenChallenge, Token, TokenRequest/Response, headers;
- :mod:`~verifiers.privacy_pass.blindrsa`: RFC 9474 RSABSSA-SHA384-PSS-Deterministic;
- :mod:`~verifiers.privacy_pass.keys`: the RFC 9578 SPKI encoding and ``token_key_id``;
- :mod:`~verifiers.privacy_pass.challenges`: stateless redemption contexts;
- :mod:`~verifiers.privacy_pass.verifier`: the ``privacy-pass`` verifier (origin side);
- :mod:`~verifiers.privacy_pass.client`: the client (``fetch_token``).

See docs/privacy-pass.md for the roles and the privacy argument.
"""

from verifiers.privacy_pass.verifier import AUTH_SCHEME, PrivacyPassVerifier

__all__ = ["AUTH_SCHEME", "PrivacyPassVerifier"]
