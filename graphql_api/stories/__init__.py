"""The GraphQL face of stories: the tray, seen marks, close friends."""
