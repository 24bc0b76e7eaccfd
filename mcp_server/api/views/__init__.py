"""API views, one module per resource; each validates, calls a selector or service, serialises."""
