"""Suite-wide test settings."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Property tests check behaviour, not speed: on a shared 2-core machine a slow example
# is not a failure (speed is measured by loadtests/, never by a test).
settings.register_profile(
    "agegate",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("agegate")
