"""Monthly reports: the rules, the projector that publishes them, reading them back,
and their official form."""
