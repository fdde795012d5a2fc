"""Media: uploads, their processed variants, and the object store they live in."""
