"""AppHub: serves the ai-infra application catalog."""

__version__ = "0.3.7"
