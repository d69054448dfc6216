"""Every patch apiclub makes to another project's internals (`patches.PATCHES`, one `install()`).

Kept empty so that importing one module of the package (`acme_orders`, used by `tls/`) does not
load Hypercorn and the rest.
"""
