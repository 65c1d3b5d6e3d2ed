"""Interconnection to the province (CONTRACT section 5): the outbox, the delivery
worker and the forwarder role that runs both."""
