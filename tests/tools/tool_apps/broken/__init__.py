"""A tool app for the discovery tests: broken."""
