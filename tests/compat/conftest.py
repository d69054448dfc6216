"""The server tests' fixtures (a trustme CA, a context that trusts it, settings) serve here too."""

from tests.server.conftest import files_settings, trust_ca, trust_context

__all__ = ["files_settings", "trust_ca", "trust_context"]
