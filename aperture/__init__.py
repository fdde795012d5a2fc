"""Aperture: runtime configuration, embedded servers and the command line."""
