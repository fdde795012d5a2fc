"""The GraphQL face of media: uploads and the Media type."""
