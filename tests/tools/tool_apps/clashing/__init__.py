"""A tool app for the discovery tests: clashing."""
