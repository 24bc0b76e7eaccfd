"""A tool app for the dispatch cluster tests: calls that hold a worker and say where they ran."""
