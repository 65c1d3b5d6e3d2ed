"""A seal over the event log (CONTRACT section 7: verify that the log has not been altered).

Published to `onestop.seals` (stream ONESTOP_SEALS, deletes and purges denied) by the sealer:
the hash chain over every message of ONESTOP_EVENTS up to `seq`. Anyone holding a copy of the
seals (a province subscribing to `onestop.seals`, an auditor's export) can later recompute the
chain from the log and see whether any stored event was changed, removed or inserted since.
"""

from __future__ import annotations

from datetime import datetime

import msgspec


class Seal(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    """The last event-log sequence the chain covers."""
    chain: str
    """Hex SHA-256 chain over every stored event up to `seq` (audit.log_chain says how)."""
    events: int
    """How many stored events the chain covers (== seq while nothing was ever removed)."""
    sealed_at: datetime
