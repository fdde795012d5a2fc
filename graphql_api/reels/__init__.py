"""The GraphQL face of reels: reelsFeed and view counts."""
