"""Signal handlers of the event pipeline (login merge lives in services; wired here)."""
