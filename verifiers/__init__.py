"""Verifier plug-ins for agegate and their shared interface."""
