"""Deciding one request: policy, session, credentials, and the answer."""
