"""Verifier plug-in discovery through the ``agegate.verifiers`` entry-point group.

The built-in kinds are registered in agegate's own ``pyproject.toml`` the same
way a third-party package registers its own (as structlog and keyring do), so
installing a distribution that declares::

    [project.entry-points."agegate.verifiers"]
    my-kind = "my_package.module:MyVerifier"

makes ``kind: my-kind`` usable in ``agegate.yaml`` with no change to agegate.
A kind resolves to a factory called as ``factory(name, config, services)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

from gateway.errors import ConfigError
from verifiers.base import Verifier, VerifierFactory, VerifierServices

__all__ = ["ENTRY_POINT_GROUP", "installed_kinds", "load_verifiers"]

ENTRY_POINT_GROUP = "agegate.verifiers"


def _entry_points() -> dict[str, EntryPoint]:
    # When two distributions claim the same kind, the first one found wins;
    # importlib.metadata orders them by sys.path, as pip and Python do.
    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry)
    return found


def installed_kinds() -> dict[str, str]:
    """Every installed verifier kind and the ``module:attribute`` it resolves to."""
    return {name: entry.value for name, entry in sorted(_entry_points().items())}


def load_verifiers(
    configs: Mapping[str, Mapping[str, Any]], services: VerifierServices
) -> dict[str, Verifier]:
    """Build every configured verifier, by name; raises :class:`ConfigError` on any problem.

    The error names the verifier, and the kind or key at fault: an unknown
    kind lists the installed ones, and a factory's ``ValueError`` (whose
    message starts with the key, ``"issuer: is required"``) is wrapped as is.
    """
    available = _entry_points()
    verifiers: dict[str, Verifier] = {}
    for name, config in configs.items():
        where = f"verifiers.{name}"
        if not isinstance(config, Mapping):
            raise ConfigError("expected a mapping of settings", key=where)
        kind = config.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ConfigError("kind: is required", key=where)
        entry = available.get(kind)
        if entry is None:
            installed = ", ".join(sorted(available)) or "none"
            raise ConfigError(
                f"kind: unknown verifier kind {kind!r} (installed kinds: {installed})", key=where
            )
        try:
            factory = cast(VerifierFactory, entry.load())
        except (ImportError, AttributeError) as error:
            raise ConfigError(
                f"kind: the plug-in for {kind!r} ({entry.value}) cannot be loaded: {error}",
                key=where,
            ) from error
        try:
            verifier = factory(name, config, services)
        except ValueError as error:
            raise ConfigError(str(error), key=where) from error
        if not isinstance(verifier, Verifier):
            raise ConfigError(
                f"kind: the plug-in for {kind!r} ({entry.value}) did not return an instance"
                " of verifiers.base.Verifier",
                key=where,
            )
        verifiers[name] = verifier
    return verifiers
