"""Lifecycle events after commit: the bus (in-process or Redis), the publisher and relay."""
