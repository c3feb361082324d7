"""The reference verifier: a development-only age-token provider used by ``agegate demo`` and tests.

It is NOT a real age check (it believes any date of birth) and says so on
every page.  Run it alone with ``python -m verifiers.reference --help``.
"""

from verifiers.reference.app import ReferenceConfig, build_reference_app

__all__ = ["ReferenceConfig", "build_reference_app"]
