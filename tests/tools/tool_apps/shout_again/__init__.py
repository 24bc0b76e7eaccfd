"""A tool app for the discovery tests: a second `shout`."""
