"""The verifier plug-in interface and the ``AgeAssertion`` it returns.

A verifier turns a *presentation* (a signed age token, a Privacy Pass token, a
wallet response, …) into an :class:`AgeAssertion`, or raises
:class:`VerificationError` with a reason code.  It never returns partial
success, and nothing it returns can carry identity: ``AgeAssertion`` has no
field for it.

Verifiers never import :mod:`gateway`.  The gateway discovers verifier kinds
through the entry-point group ``agegate.verifiers``; the built-in kinds are
registered there the same way as third-party ones (see ``pyproject.toml``).
A kind is a class (or factory) called as ``factory(name, config, services)``
returning an instance of a :class:`Verifier` subclass; :class:`VerifierConfig`
parses the settings every kind shares.  ``docs/plugins.md`` is the guide.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

from verifiers.config import did_you_mean, optional_duration, provider_url

__all__ = [
    "DEFAULT_SESSION_TTL",
    "RESPONSE_MODES",
    "AgeAssertion",
    "AgegateError",
    "AssuranceLevel",
    "Challenge",
    "ChallengeContext",
    "Presentation",
    "ReplayGuard",
    "ResponseMode",
    "VerificationError",
    "Verifier",
    "VerifierConfig",
    "VerifierFactory",
    "VerifierServices",
    "VerifyContext",
]


# Seconds a session from one presentation lasts when neither the verifier's
# ``max_session_ttl`` nor the credential's own expiry says less.
DEFAULT_SESSION_TTL = 3600.0

ResponseMode = Literal["form_post", "query"]
RESPONSE_MODES: tuple[ResponseMode, ...] = ("form_post", "query")


class AgegateError(Exception):
    """Root of every error agegate raises; ``reason`` is a machine-readable code.

    It lives here, not in :mod:`gateway.errors`, because verifiers may not
    import the gateway; :mod:`gateway.errors` re-exports it.
    """

    def __init__(self, message: str, *, reason: str = "error"):
        super().__init__(message)
        self.reason = reason


class VerificationError(AgegateError):
    """A presentation was refused.  ``reason`` is one stable code per failure.

    Codes in use: ``malformed``, ``bad_type``, ``alg_not_allowed``,
    ``unknown_kid``, ``bad_signature``, ``wrong_issuer``, ``wrong_audience``,
    ``expired``, ``not_yet_valid``, ``issued_in_future``, ``lifetime_too_long``,
    ``missing_claim``, ``missing_jti``, ``missing_nonce``, ``wrong_nonce``,
    ``replayed``, ``replayed_nonce``, ``undisclosed_claim``, ``identity_claim``,
    ``no_age_claim``, ``bad_claim``, ``jwks_unavailable``, ``store_unavailable``,
    ``provider_error``; Privacy Pass adds ``unknown_key`` (no configured issuer key
    has that id) and ``wrong_challenge`` (not a challenge this gateway issued); mdoc
    (``eu-av``) adds ``untrusted_chain`` (issuer certificate not under a trust
    anchor), ``digest_mismatch`` (a disclosed element differs from what the issuer
    signed), ``extra_disclosure`` (an element other than ``age_over_NN``),
    ``missing_device_signature`` and ``bad_device_signature`` (not signed by the
    credential's device key over this request's nonce, client_id and response_uri),
    ``wrong_channel`` (a wallet credential that did not come from the wallet flow).
    OpenID Connect adds ``provider_unavailable`` (the provider cannot be reached or
    answers 5xx) and ``code_rejected`` (its token endpoint refused the code: used,
    expired, or a PKCE verifier that does not match).
    SD-JWT VC adds ``untrusted_chain`` (an ``x5c`` chain reaching no trust
    anchor), ``wrong_vct``, ``missing_key_binding`` (no KB-JWT / device
    signature, or no holder key), ``bad_key_binding`` (it does not verify),
    ``stale_key_binding``, ``sd_hash_mismatch``, ``digest_mismatch`` (a
    disclosure or element matching no signed digest), ``extra_disclosure``
    (an element other than the age claim disclosed), ``linkable_credential``
    (:mod:`verifiers.linkability`), ``status_unavailable`` and ``revoked``
    (:mod:`verifiers.status_list`).
    """

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(detail or reason.replace("_", " "), reason=reason)


@enum.unique
class AssuranceLevel(enum.IntEnum):
    """IEEE 2089.1 assurance ladder (ISO/IEC 27566-1 describes the same), ordered."""

    ASSERTED = 0
    BASIC = 1
    STANDARD = 2
    ENHANCED = 3
    STRICT = 4

    @property
    def label(self) -> str:
        """The lower-case name used in configs, tokens and headers."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> AssuranceLevel:
        """Parse a level name; raises ``ValueError`` naming the allowed values."""
        try:
            return cls[value.strip().upper()]
        except (KeyError, AttributeError):
            allowed = ", ".join(level.label for level in cls)
            raise ValueError(f"unknown assurance level {value!r} (allowed: {allowed})") from None


@dataclass(frozen=True, slots=True)
class AgeAssertion:
    """What a verifier proved about a visitor's age, and nothing else."""

    age_over: frozenset[int]
    age_under: frozenset[int]
    assurance: AssuranceLevel
    method: str | None
    verifier: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ChallengeContext:
    """What a verifier needs to start a challenge for one visitor."""

    public_origin: str
    redirect_uri: str
    nonce: str
    state: str
    min_age: int
    assurance: AssuranceLevel


@dataclass(frozen=True, slots=True)
class Challenge:
    """How a browser visitor begins with a verifier: where to send them, if anywhere.

    ``redirect_url`` None means no button for this verifier.  API clients are
    challenged through :meth:`Verifier.api_challenge`, which needs no visitor
    state and may offer several challenges (one per key).
    """

    redirect_url: str | None = None


@dataclass(frozen=True, slots=True)
class Presentation:
    """A presentation as received: the raw credential string and where it came from."""

    credential: str
    channel: str  # "callback" (browser form_post/query) or "authorization" (API header)
    extra: Mapping[str, str] = field(default_factory=dict)


class ReplayGuard(Protocol):
    """Single-use records (``jti``, nonces, spent tokens), provided by the gateway's store."""

    async def consume(self, namespace: str, value: str, expires_at: float) -> bool:
        """Record ``value``; False if it was already recorded (a replay).

        Implementations store only an HMAC of ``value``.  Raises
        :class:`AgegateError` with reason ``store_unavailable`` when the
        store cannot be reached.
        """
        ...


@dataclass(frozen=True, slots=True)
class VerifyContext:
    """What the gateway tells a verifier when it checks one presentation."""

    audience: str
    expected_nonce: str | None
    now: float
    replay: ReplayGuard


@dataclass(frozen=True, slots=True)
class VerifierServices:
    """Long-lived resources a verifier may use, created in the gateway's lifespan."""

    http: Any = None  # an aiohttp.ClientSession for JWKS and status-list fetches
    base_dir: str = "."  # relative file paths in the verifier's config resolve here
    audience: str = ""  # the gateway's public origin (what tokens must be bound to)
    # A 32-byte secret of this gateway, the same in every worker, for stateless
    # challenges (e.g. Privacy Pass redemption contexts).  Derive per-purpose keys
    # from it with HMAC; never use it directly and never log it.
    secret: bytes = b""


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    """The settings every verifier kind shares, parsed and checked once at load.

    A kind with settings of its own subclasses this (a frozen dataclass too)
    and builds it from :meth:`parse` plus its own keys, as ``age-token`` and
    ``privacy-pass`` do.
    """

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"kind", "label", "authorize_url", "response_mode", "assurance_level", "max_session_ttl"}
    )

    kind: str
    label: str  # the verifier's button text; defaults to its name
    authorize_url: str | None  # the provider's browser entry point (https, or http on loopback)
    response_mode: ResponseMode  # how the provider answers the callback: POST form or GET query
    assurance_level: AssuranceLevel  # what a presentation proves when it does not say
    max_session_ttl: float | None  # seconds; None leaves it to the kind and the route

    @classmethod
    def parse(
        cls,
        name: str,
        config: Mapping[str, Any],
        *,
        kind: str,
        own_keys: Collection[str] = (),
        response_modes: Sequence[ResponseMode] = RESPONSE_MODES,
    ) -> VerifierConfig:
        """Check the shared keys of verifier ``name`` and refuse any key not shared or own.

        ``ValueError`` messages start with the key (``"label: expected …"``);
        the gateway prefixes ``verifiers.<name>:``.  An unknown key gets a
        did-you-mean hint and the list of allowed keys.
        """
        if not isinstance(config, Mapping):
            raise ValueError("expected a mapping of settings")
        allowed = cls.KEYS | frozenset(own_keys)
        unknown = sorted(str(key) for key in config if key not in allowed)
        if unknown:
            hint = did_you_mean(unknown[0], allowed)
            raise ValueError(
                f"{unknown[0]}: unknown setting{hint} (allowed: {', '.join(sorted(allowed))})"
            )
        if config.get("kind", kind) != kind:
            raise ValueError(f"kind: must be {kind!r} for this verifier")
        label = config.get("label", name)
        if label is None:
            label = name
        if not isinstance(label, str) or not label.strip():
            raise ValueError("label: expected a non-empty string")
        mode = config.get("response_mode", "form_post")
        response_mode = next((m for m in response_modes if m == mode), None)
        if response_mode is None:
            raise ValueError(f"response_mode: expected one of {', '.join(response_modes)}")
        try:
            assurance = AssuranceLevel.parse(config.get("assurance_level", "basic"))
        except ValueError as error:
            raise ValueError(f"assurance_level: {error}") from None
        return VerifierConfig(
            kind=kind,
            label=label.strip(),
            authorize_url=provider_url(config, "authorize_url"),
            response_mode=response_mode,
            assurance_level=assurance,
            max_session_ttl=optional_duration(config, "max_session_ttl"),
        )

    def shared(self) -> dict[str, Any]:
        """The shared fields as keyword arguments, to build a subclass from them."""
        return {
            "kind": self.kind,
            "label": self.label,
            "authorize_url": self.authorize_url,
            "response_mode": self.response_mode,
            "assurance_level": self.assurance_level,
            "max_session_ttl": self.max_session_ttl,
        }


class Verifier(abc.ABC):
    """One configured verifier instance: everything the gateway reads from a plug-in.

    Subclass it, set :attr:`kind` (and :attr:`auth_scheme` to answer API
    clients), implement :meth:`verify`, and override the rest only when the
    defaults do not fit.  The gateway checks at load that a factory returned
    an instance of this class.
    """

    kind: ClassVar[str]
    """The plug-in kind, as registered in ``agegate.verifiers`` (``"age-token"``)."""

    auth_scheme: ClassVar[str | None] = None
    """The ``Authorization`` scheme this kind answers (``"AgeToken"``), or None for browser only.

    The gateway also strips this scheme from every request it forwards.
    """

    callback_fields: ClassVar[tuple[str, ...]] = ("age_token",)
    """The callback's form fields this kind reads: the first is the credential.

    The others, when present, reach :meth:`verify` in ``Presentation.extra``
    (an OIDC provider answers ``code`` and ``iss``).  ``state`` and ``error``
    are the gateway's own and are never passed.
    """

    def __init__(self, name: str, settings: VerifierConfig | None = None) -> None:
        """``name`` from the config; ``settings`` None keeps every shared default."""
        # The instance name (``verifiers.<name>``), recorded in sessions and logs.
        self.name = name
        # The button text on the verify page.
        self.label: str = settings.label if settings else name
        # How the provider answers the callback: "form_post" (a POST) or "query" (a GET).
        self.response_mode: ResponseMode = settings.response_mode if settings else "form_post"
        # The longest session (seconds) a presentation to this verifier may earn.
        self.max_session_ttl: float | None = settings.max_session_ttl if settings else None

    @property
    def session_ttl(self) -> float:
        """The longest session a presentation earns: ``max_session_ttl``, else the default."""
        return self.max_session_ttl or DEFAULT_SESSION_TTL

    def start(self, ctx: ChallengeContext) -> Challenge:
        """Where a browser visitor goes to begin; the default offers no browser flow."""
        return Challenge()

    def api_challenge(self, min_age: int, now: float | None = None) -> Sequence[str]:
        """``WWW-Authenticate`` values (scheme and parameters) offered to API clients.

        Several values are several challenges (one per key, say); the default
        offers none.  ``now`` is the wall clock, or None for ``time.time()``.
        """
        return ()

    @abc.abstractmethod
    async def verify(self, presentation: Presentation, ctx: VerifyContext) -> AgeAssertion:
        """Check a presentation; raise :class:`VerificationError` on any failure."""

    async def warm(self) -> None:
        """Prepare before the first request (fetch keys); the default has nothing to do.

        A :class:`VerificationError` here is logged and is not fatal: the
        verifier then fails closed on its requests until it recovers.
        """
        return None

    async def aclose(self) -> None:
        """Release what the verifier opened; the default has nothing to release."""
        return None


class VerifierFactory(Protocol):
    """What the ``agegate.verifiers`` entry point resolves to (usually the subclass itself)."""

    def __call__(
        self, name: str, config: Mapping[str, Any], services: VerifierServices
    ) -> Verifier: ...
