"""Explore recommendations (implicit ALS); arrives with the Explore issue."""
