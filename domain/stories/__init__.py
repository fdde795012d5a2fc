"""Stories: 24-hour photos and videos, the tray, seen marks and close friends."""
