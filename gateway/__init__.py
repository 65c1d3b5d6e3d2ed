"""lienthong gateway: the submit service, the CLI, and the plumbing they share."""
