"""The demo of ``make demo``: a wine shop behind agegate, with the reference verifier.

``shop`` is the upstream site; ``runner`` starts shop, verifier and gateway
with throwaway keys and stops them all on Ctrl-C.  Development only.
"""

__all__: list[str] = []
