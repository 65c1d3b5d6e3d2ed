"""JetStream plumbing below every part: connection, streams and buckets with their
settings, subjects, reading the log, checkpoints and leases."""
