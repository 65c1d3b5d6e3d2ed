"""Projections of the event log: monthly reports, and the interconnection forwarder."""
