"""Forward-auth mode: the decision endpoint for nginx, Caddy, Traefik and Envoy."""
