"""The one transport error of the plumbing: the broker cannot do it now."""

from __future__ import annotations


class LogUnavailable(ConnectionError):
    """JetStream did not do it (nothing answered in time, no stream leader, no responders, the
    connection in trouble): safe to retry. The write side answers it as the contract's
    `unavailable` reply; a role waits and tries again."""
