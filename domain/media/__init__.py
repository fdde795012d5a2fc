"""Media: uploads, processing into variants, and delivery through CDN-style URLs."""
