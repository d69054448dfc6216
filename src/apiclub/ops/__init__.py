"""Operations: Prometheus metrics, the admin listener (/metrics, /livez, /readyz), JSON logs
and `apiclub check`.

May import settings, observe, db, tls (and is imported by server and cli); `db/` and `tls/`
never import it: they `observe.emit` and the metrics here subscribe.
"""
