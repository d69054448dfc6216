"""The process around the API: listeners, redirects, Host checks, graceful start and stop.

`launcher.Server` is the entry point; `run.run_until_signalled` runs it in the foreground.
"""
