"""Stories: 24-hour posts, who saw them, close friends."""
