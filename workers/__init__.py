"""Background workers (``aperture worker``): home-feed fan-out and its sweeper."""
