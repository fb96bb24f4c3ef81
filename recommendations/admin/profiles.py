"""Admin registrations of this concern."""
