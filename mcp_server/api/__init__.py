"""The REST API over operation history, tokens, tools and statistics (Django REST framework)."""
