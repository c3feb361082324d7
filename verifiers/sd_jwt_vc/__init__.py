"""The ``sd-jwt-vc`` verifier kind: SD-JWT VCs with key binding, answered over OpenID4VP."""

from verifiers.sd_jwt_vc.verifier import SdJwtVcVerifier

__all__ = ["SdJwtVcVerifier"]
