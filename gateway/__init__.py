"""agegate gateway: privacy-preserving age-assurance reverse proxy and forward-auth service."""
