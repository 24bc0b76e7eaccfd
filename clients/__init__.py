"""Programs this project is tested and benchmarked against, each in a pinned environment of
its own (`clients.envs`): the official SDK clients, the Inspector CLI, comparison servers."""
