"""The browser console: log in, run tools with live progress, cancel, watch runs."""
