"""The server tests' fixtures: real servers on port 0 with trustme certificates."""

from tests.server.conftest import files_settings, local_settings, trust_ca, trust_context

__all__ = ["files_settings", "local_settings", "trust_ca", "trust_context"]
