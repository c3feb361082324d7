"""The ``eu-av`` verifier kind: EU age-verification mdoc credentials over OpenID4VP 1.0.

``verifiers.mdoc.verifier`` holds the checks; ``cbor``, ``cose``, ``response``,
``transcript`` and ``trust`` are the pieces it is built from.
"""

from verifiers.mdoc.verifier import AV_DOCTYPE, MDL_DOCTYPE, EuAvConfig, EuAvVerifier

__all__ = ["AV_DOCTYPE", "MDL_DOCTYPE", "EuAvConfig", "EuAvVerifier"]
