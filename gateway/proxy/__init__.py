"""Reverse-proxy mode: the request handler, forwarding and the WebSocket relay."""
