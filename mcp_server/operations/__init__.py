"""The operation lifecycle (`lifecycle`, pure) and the history that records it (`store`)."""
