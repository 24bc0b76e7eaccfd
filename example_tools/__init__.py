"""An example of tools shipped by a Django app of their own (docs/tools.md)."""
