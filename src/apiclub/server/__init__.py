"""Serving: Hypercorn configs, the redirect app, proxy-header trust, start and stop, reloads.

`launcher.Server` runs both listeners of one worker; `generations.Generations` is the parent
of `apiclub serve` that holds the sockets and starts, reloads and stops the workers
(`workers.serve_worker`).
"""
