"""Scale-out: what joins web and worker processes through the channel layer."""
