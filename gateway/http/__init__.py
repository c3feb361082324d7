"""The gateway's own HTTP/1.1 server: client connections, exchanges, limits."""
