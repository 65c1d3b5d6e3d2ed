"""Ward sites seen from the city: how far each site's log has been taken in."""
