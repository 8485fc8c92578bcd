"""A local, faithful Soundlink Public API v1 for demos, integration tests and benchmarks."""

from .app import DEFAULT_API_KEY, EXTRA_KEYS
from .server import Sandbox, main

__all__ = ["DEFAULT_API_KEY", "EXTRA_KEYS", "Sandbox", "main"]
