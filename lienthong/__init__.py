"""Where lienthong is wired together: the command line, the node and its roles, the
environment, logs, the embedded nats-server, the demo."""
