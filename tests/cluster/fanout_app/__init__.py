"""A tool app for the fan-out cluster tests: a fan-out tool that is not idempotent."""
