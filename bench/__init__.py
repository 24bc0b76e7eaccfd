"""The benchmark harness of the service (`make bench`): servers, load generator, report."""
