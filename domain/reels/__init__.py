"""Reels: video posts, their view counts and the ranked reels feed."""
