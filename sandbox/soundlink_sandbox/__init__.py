"""A local, faithful Soundlink Public API v1 for demos, integration tests and benchmarks."""
