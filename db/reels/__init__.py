"""Reels: video posts, their views and the index they are ranked from."""
