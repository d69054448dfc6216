"""apiclub: a small tasks API that serves itself over HTTPS from one Python process."""

__version__ = "0.1.0"
