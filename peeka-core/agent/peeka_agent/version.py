"""The agent's version (semantic versioning), reported by ``welcome`` and ``info``."""

AGENT_VERSION = "0.1.0"
