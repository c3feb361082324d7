"""Every module of the two import packages declares ``__all__`` and its names import."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import gateway
import verifiers


def _modules() -> list[str]:
    names = []
    for package in (gateway, verifiers):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                continue  # running it is its job; importing it would start a server
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_the_packages_were_found() -> None:
    assert "gateway.app" in MODULES
    assert "verifiers.base" in MODULES
    assert len(MODULES) > 30


@pytest.mark.parametrize("name", MODULES)
def test_public_names_import(name: str) -> None:
    module = importlib.import_module(name)
    public = getattr(module, "__all__", None)
    is_package = hasattr(module, "__path__")
    if public is None:
        assert is_package or name.rsplit(".", 1)[-1].startswith("_"), f"{name} has no __all__"
        return
    missing = [attr for attr in public if not hasattr(module, attr)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
