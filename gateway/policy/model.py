"""The policy model: frozen values built once by the loader, read per request.

Nothing here parses YAML or touches I/O; :mod:`gateway.policy.loader` builds
these, :func:`gateway.policy.decide.decide` reads them.  Everything the
request path needs (compiled patterns, per-jurisdiction requirements, method
and host sets) is computed at load, so matching never re-reads a dict.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

from gateway.core.hosts import parse_host
from gateway.errors import BadRequest
from gateway.policy.facts import SessionClaims
from gateway.policy.matcher import PathPattern, match_key
from verifiers.base import AssuranceLevel

# Checks whose answers one session keeps (SessionClaims.decided): a policy's rules and
# jurisdictions, and those of a policy replaced while the session is cached.
_DECIDED_BOUND = 64

__all__ = [
    "Action",
    "Decision",
    "Defaults",
    "Expectation",
    "Mode",
    "Outcome",
    "Policy",
    "PolicyTest",
    "Requirement",
    "Rule",
    "RuleVerdicts",
    "SessionCheck",
    "TestSession",
]


class Outcome(enum.StrEnum):
    """What a decision says should happen to a request."""

    ALLOW = "allow"
    CHALLENGE = "challenge"
    DENY = "deny"


class Action(enum.StrEnum):
    """What a rule does with the requests it matches."""

    ALLOW = "allow"
    DENY = "deny"
    REQUIRE = "require"  # an age (min_age) is required


class Mode(enum.StrEnum):
    """Whether a rule's decision is enforced or only reported (logged)."""

    ENFORCE = "enforce"
    REPORT_ONLY = "report-only"


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a protected rule asks of the visitor (after jurisdiction overrides)."""

    min_age: int
    assurance: AssuranceLevel
    verifiers: tuple[str, ...]  # verifier instance names allowed on this route
    session_ttl: float  # seconds


@dataclass(frozen=True, slots=True)
class Defaults:
    """Policy-wide defaults that rules inherit unless they set their own."""

    verifiers: tuple[str, ...] = ()
    session_ttl: float = 3600.0
    assurance: AssuranceLevel = AssuranceLevel.BASIC
    mode: Mode = Mode.ENFORCE
    case_insensitive: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request, with the rule and the reason behind it."""

    outcome: Outcome  # what the rule says, even in report-only mode
    enforced: bool  # False for mode: report-only (the gateway lets it through and logs)
    rule: str | None  # name of the matched rule; None when nothing matched
    reason: str  # one of gateway.policy.decide.REASONS
    requirement: Requirement | None  # set when the rule requires an age
    # ``outcome.value``, kept because the access line reads it on every request and an
    # enum's ``value`` is a descriptor call.
    label: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", self.outcome.value)

    @property
    def effective(self) -> Outcome:
        """What the gateway does: the outcome when enforced, else allow."""
        return self.outcome if self.enforced else Outcome.ALLOW


@dataclass(frozen=True, slots=True, eq=False)
class SessionCheck:
    """One requirement of one rule, compiled at load into its possible decisions.

    :meth:`decide` checks a session with a few comparisons and answers with a
    :class:`Decision` built here once, so a protected request allocates nothing;
    what it made of unexpired claims is kept on them (``SessionClaims.decided``,
    keyed by the check itself: equal only to itself, hashed by identity).
    The order of checks is :mod:`gateway.policy.decide`'s.
    """

    requirement: Requirement
    verifiers: frozenset[str]
    min_age: int
    assurance: int
    allow: Decision
    no_session: Decision
    session_expired: Decision
    verifier_not_accepted: Decision
    proven_under: Decision
    age_not_proven: Decision
    assurance_too_low: Decision

    @classmethod
    def compile(cls, requirement: Requirement, rule: str, enforced: bool) -> SessionCheck:
        """The check of ``requirement`` on rule ``rule``."""

        def verdict(outcome: Outcome, reason: str) -> Decision:
            return Decision(outcome, enforced, rule, reason, requirement)

        challenge = Outcome.CHALLENGE
        return cls(
            requirement=requirement,
            verifiers=frozenset(requirement.verifiers),
            min_age=requirement.min_age,
            assurance=int(requirement.assurance),
            allow=verdict(Outcome.ALLOW, "session_ok"),
            no_session=verdict(challenge, "no_session"),
            session_expired=verdict(challenge, "session_expired"),
            verifier_not_accepted=verdict(challenge, "verifier_not_accepted"),
            proven_under=verdict(Outcome.DENY, "proven_under"),
            age_not_proven=verdict(challenge, "age_not_proven"),
            assurance_too_low=verdict(challenge, "assurance_too_low"),
        )

    def decide(self, session: SessionClaims | None, now: float) -> Decision:
        """The decision for ``session`` at ``now`` (see gateway.policy.decide for the order)."""
        if session is None:
            return self.no_session
        if now >= session.expires_at:
            return self.session_expired
        # With the expiry checked, the answer depends on the claims alone: made once per check.
        decided = session.decided
        decision = decided.get(self)
        if decision is None:
            if len(decided) >= _DECIDED_BOUND:
                decided.clear()  # the checks of replaced policies, kept no longer
            decision = decided[self] = self._judge(session)
        return decision

    def _judge(self, session: SessionClaims) -> Decision:
        """The decision for unexpired ``session``."""
        if session.verifier not in self.verifiers:
            # Its claims, "under" included, carry no weight on this route.
            return self.verifier_not_accepted
        min_age = self.min_age
        # min/max run in C (without ``default=``, whose keyword parsing costs more).
        under = session.age_under
        if under and min(under) <= min_age:
            return self.proven_under
        over = session.age_over
        if not over or max(over) < min_age:
            return self.age_not_proven
        if session.assurance < self.assurance:
            return self.assurance_too_low
        return self.allow


@dataclass(frozen=True, slots=True)
class RuleVerdicts:
    """Everything a rule can decide, built once when the rule is."""

    public: Decision  # an allow rule's one decision
    denied: Decision  # a deny rule's, or a require rule's without a requirement
    default: SessionCheck | None  # the requirement without jurisdiction override
    jurisdictions: Mapping[str, SessionCheck]


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of ``routes``; ``number`` is its 1-based position in the file."""

    name: str
    number: int
    path: PathPattern
    hosts: frozenset[str] | None  # lower-case, no port; None = every host
    methods: frozenset[str] | None  # upper-case; None = every method
    action: Action
    mode: Mode
    requirement: Requirement | None = None  # set exactly when action is REQUIRE
    jurisdictions: Mapping[str, Requirement] = field(default_factory=dict)
    # Derived at construction: every decision this rule can make, ready-made.
    verdicts: RuleVerdicts = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        enforced = self.mode is Mode.ENFORCE

        def check(requirement: Requirement | None) -> SessionCheck | None:
            if requirement is None:
                return None
            return SessionCheck.compile(requirement, self.name, enforced)

        verdicts = RuleVerdicts(
            public=Decision(Outcome.ALLOW, enforced, self.name, "public", None),
            denied=Decision(Outcome.DENY, enforced, self.name, "denied_by_rule", None),
            default=check(self.requirement),
            jurisdictions={
                code: SessionCheck.compile(req, self.name, enforced)
                for code, req in self.jurisdictions.items()
            },
        )
        object.__setattr__(self, "verdicts", verdicts)

    @property
    def min_age(self) -> int | None:
        """The age this rule requires without jurisdiction override; None if none."""
        return self.requirement.min_age if self.requirement else None

    @property
    def is_catch_all(self) -> bool:
        """True when this rule matches every request (``/**``, any host, any method)."""
        return self.path.is_catch_all and self.hosts is None and self.methods is None

    def requirement_for(self, jurisdiction: str | None) -> Requirement | None:
        """The requirement in ``jurisdiction`` (``US-UT`` falls back to ``US``)."""
        found = _in_jurisdiction(self.jurisdictions, jurisdiction)
        return self.requirement if found is None else found

    def check_for(self, jurisdiction: str | None) -> SessionCheck | None:
        """:meth:`requirement_for`, compiled: the session check in ``jurisdiction``."""
        verdicts = self.verdicts
        found = _in_jurisdiction(verdicts.jurisdictions, jurisdiction)
        return verdicts.default if found is None else found

    def covers(self, other: Rule) -> bool:
        """True when this rule matches every request ``other`` matches."""
        hosts_ok = self.hosts is None or (other.hosts is not None and other.hosts <= self.hosts)
        methods_ok = self.methods is None or (
            other.methods is not None and other.methods <= self.methods
        )
        return hosts_ok and methods_ok and self.path.covers(other.path)

    def describe(self) -> str:
        """A one-line summary, e.g. ``wine (#2, path /wine/**)``."""
        parts = [f"#{self.number}", f"path {self.path.text}"]
        if self.methods is not None:
            parts.append("methods " + ",".join(sorted(self.methods)))
        if self.hosts is not None:
            parts.append("hosts " + ",".join(sorted(self.hosts)))
        return f"{self.name} ({', '.join(parts)})"


@dataclass(frozen=True, slots=True)
class TestSession:
    """The session an embedded test pretends the visitor has.

    ``assurance`` / ``verifier`` of None mean "what the matched rule
    requires / its first accepted verifier", so a test can say just
    ``session: {age_over: [18]}``.
    """

    __test__ = False  # not a pytest test class, despite the name

    age_over: frozenset[int] = frozenset()
    age_under: frozenset[int] = frozenset()
    assurance: AssuranceLevel | None = None
    verifier: str | None = None
    expires_in: float = 3600.0  # seconds from the test's "now"; 0 = already expired


@dataclass(frozen=True, slots=True)
class Expectation:
    """What an embedded test expects; None fields are not checked."""

    outcome: Outcome | None = None
    bad_request: bool = False  # the request is refused before matching (400)
    check_rule: bool = False  # rule is checked (None then means "no rule matches")
    rule: str | None = None
    reason: str | None = None
    enforced: bool | None = None

    def describe(self) -> str:
        """Human form, e.g. ``challenge (rule wine, reason no_session)``."""
        head = "bad_request" if self.bad_request else (self.outcome or "any decision")
        details = []
        if self.check_rule:
            details.append(f"rule {self.rule or 'none'}")
        if self.reason is not None:
            details.append(f"reason {self.reason}")
        if self.enforced is not None:
            details.append("enforced" if self.enforced else "report-only")
        return f"{head} ({', '.join(details)})" if details else str(head)


@dataclass(frozen=True, slots=True)
class PolicyTest:
    """One embedded test; ``index`` is 1-based, ``host`` is ``localhost`` if not given."""

    __test__ = False

    index: int
    request: str  # as written, for messages
    method: str
    host: str
    raw_path: str  # target path without query or fragment, not yet canonical
    expect: Expectation
    session: TestSession | None = None
    jurisdiction: str | None = None


_Entry = tuple[frozenset[str] | None, frozenset[str] | None, Callable[[str], bool], Rule]


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy.  ``match`` is the per-request entry point."""

    version: int
    defaults: Defaults
    rules: tuple[Rule, ...]
    tests: tuple[PolicyTest, ...]
    source: str
    sha256: str  # of the file's bytes: identifies the policy in logs and /policy
    has_catch_all: bool
    # Derived at construction for the per-request loop: flat tuples, no attribute chains.
    _table: tuple[_Entry, ...] = field(init=False, repr=False, compare=False)
    _uses_hosts: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = tuple(
            (rule.methods, rule.hosts, rule.path.matches_key, rule) for rule in self.rules
        )
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "_uses_hosts", any(rule.hosts is not None for rule in self.rules))

    def match(self, method: str, host: str | None, path: str) -> Rule | None:
        """The first rule matching the request, or None (the caller then denies).

        ``path`` is canonical, without query; ``host`` is compared without
        port and case; None matches only rules without ``hosts``.
        """
        # Callers pass normal names; reading the host again keeps a host-restricted
        # protected rule from being skipped over "Shop.Example.:443".  Only policies
        # that restrict hosts pay for it.
        if host is not None and self._uses_hosts:
            host = _host_key(host)
        if not method.isupper():
            method = method.upper()
        key = match_key(path)
        for methods, hosts, matches, rule in self._table:
            if methods is not None and method not in methods:
                continue
            if hosts is not None and host not in hosts:
                continue
            if matches(key):
                return rule
        return None

    def rule(self, name: str) -> Rule | None:
        """The rule called ``name``, if any."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        return None


_T = TypeVar("_T")


def _in_jurisdiction(table: Mapping[str, _T] | None, jurisdiction: str | None) -> _T | None:
    """``table``'s entry for ``jurisdiction`` (``US-UT`` falls back to ``US``); None if none."""
    if not jurisdiction or not table:
        return None
    found = table.get(jurisdiction)
    if found is None and "-" in jurisdiction:
        found = table.get(jurisdiction.partition("-")[0])
    return found


# Bounded; policies that restrict hosts read one per request.  A pure function of
# the Host name (no secrets), the same for every policy: lru_cache is enough.
@lru_cache(maxsize=1024)
def _host_key(host: str) -> str | None:
    """The normal name of ``host``; None for a malformed one, which no ``hosts:`` lists.

    Request paths refuse a malformed host (400) before matching, so None here only
    comes from a direct caller, and it matches only rules without ``hosts``.
    """
    if host.count(":") > 1 and not host.startswith("["):
        host = f"[{host}]"  # a bare IPv6 name, as split_target and the gate pass it
    try:
        return parse_host(host).name
    except BadRequest:
        return None
