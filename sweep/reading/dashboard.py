"""Serving optuna-dashboard on a study's storage and artifacts (sweep.study.figures), behind its guard
(sweep.reading.guard): a threaded WSGI server, as the `optuna-dashboard` command runs it."""

from __future__ import annotations

from sweep.errors import ConfigError
from sweep.reading.guard import BasicAuth, Credentials, ReadOnly
from sweep.study.figures import artifact_store


def dashboard_app(storage_url: str, credentials: Credentials | None = None, read_only: bool = False):
    """optuna-dashboard's WSGI app on the study storage and its artifacts, behind basic auth and/or read-only when
    asked."""
    import optuna_dashboard

    from sweep.study.storage import open_storage

    app = optuna_dashboard.wsgi(open_storage(storage_url), artifact_store=artifact_store(storage_url))
    if read_only:
        app = ReadOnly(app)
    if credentials is not None:  # outermost: without credentials nothing, not even a 403, is told
        app = BasicAuth(app, credentials)
    return app


def make_server(app, host: str, port: int):
    """A threaded wsgiref server bound to host:port (port 0: any free one), as the `optuna-dashboard` command runs
    its app; a port already taken is a one-line ConfigError."""
    import socket
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
    from wsgiref.simple_server import make_server as make_wsgiref_server

    class ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True  # a browser's open keep-alive request does not hold up Ctrl-C
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class AccessLog(WSGIRequestHandler):
        """The access log is the request line, status and size only: never a header (Authorization)."""

        def address_string(self) -> str:
            return self.client_address[0]

    try:
        return make_wsgiref_server(host.strip("[]"), port, app, ThreadedServer, AccessLog)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or type(exc).__name__}); expected a free port on an "
            "address of this machine; pass another --port or stop what listens there"
        ) from None


def serve(server) -> None:
    """Serve requests until Ctrl-C (a quiet exit, as optuna-dashboard's run_server), then close the socket."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
