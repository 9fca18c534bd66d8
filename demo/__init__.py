"""A seeded generator of realistic Chinese items, so the service shows data with no internet."""
