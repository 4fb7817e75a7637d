"""The dashboard's guard. optuna-dashboard has no login: whoever reaches its port can delete a study, rewrite notes
and tell trials. So it binds loopback only unless told --allow-remote, and then it asks for HTTP basic auth (a WSGI
middleware around optuna_dashboard.wsgi) or serves read-only (a middleware refusing writes)."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sweep.errors import ConfigError

CREDENTIALS_ENV = "SWEEP_DASHBOARD_CREDENTIALS"
AUTH_REALM = "sweep"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CREDENTIALS_HINT = (
    f"set {CREDENTIALS_ENV}=user:password or pass --credentials-file PATH of a file holding user:password"
)


@dataclass(frozen=True)
class Credentials:
    """The one user and password the dashboard admits, and where they came from (for messages, never the values)."""

    user: str
    password: str
    source: str = CREDENTIALS_ENV

    def __repr__(self) -> str:  # a stray print or log of it shows no secret
        return f"Credentials(user=***, password=***, source={self.source!r})"


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the dashboard on this machine: 127.0.0.0/8, ::1 (bracketed or not) or localhost."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name other than localhost, or "" (every interface)
        return False


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a --host beyond loopback unless --allow-remote says the user means it (and then protects it)."""
    if is_loopback(host) or allow_remote:
        return
    raise ConfigError(
        f"--host {host!r} would serve the dashboard beyond this machine, and optuna-dashboard has no login of its own "
        "(anyone reaching the port can delete studies); expected 127.0.0.1, ::1 or localhost; to serve others add "
        f"--allow-remote and {_CREDENTIALS_HINT} (or --read-only), best behind a TLS reverse proxy"
    )


def read_credentials(env: Mapping[str, str], file: Path | None = None) -> Credentials | None:
    """The user:password from --credentials-file, else from $SWEEP_DASHBOARD_CREDENTIALS; None when neither is given.

    Never from a command-line value (it would show in `ps` and shell history); messages never show the value."""
    if file is not None:
        source = f"--credentials-file {file}"
        try:
            text = Path(file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{source} cannot be read ({type(exc).__name__}); expected a readable UTF-8 file holding "
                "user:password; fix the path or the file's permissions"
            ) from None
    else:
        source = CREDENTIALS_ENV
        text = env.get(CREDENTIALS_ENV, "")
        if not text:
            return None
    user, colon, password = text.partition(":")
    if not colon or not user or not password or "\n" in text:
        raise ConfigError(
            f"{source} holds no user:password (value hidden); expected one line user:password with a user and a "
            f"password, such as alice:a-long-passphrase; {_CREDENTIALS_HINT}"
        )
    return Credentials(user=user, password=password, source=source)


def check_protected(allow_remote: bool, credentials: Credentials | None, read_only: bool) -> None:
    """Refuse --allow-remote with neither credentials nor --read-only: others could then change every study."""
    if allow_remote and credentials is None and not read_only:
        raise ConfigError(
            f"--allow-remote was given without credentials: {CREDENTIALS_ENV} is unset and no --credentials-file was "
            f"passed; expected basic-auth credentials or --read-only; {_CREDENTIALS_HINT}, or add --read-only"
        )


def access_summary(credentials: Credentials | None, read_only: bool) -> str:
    """How the dashboard admits requests, for the startup line ("" for plain loopback use); names where the
    credentials came from, never them."""
    if credentials is not None:
        return f"basic auth required (credentials from {credentials.source})" + (", read-only" if read_only else "")
    if read_only:
        return "read-only WITHOUT authentication: anyone who reaches the port can read every study"
    return ""


def _plain_response(start_response, status: str, text: str, headers: Sequence[tuple[str, str]] = ()) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *headers,
        ],
    )
    return [body]


class BasicAuth:
    """WSGI middleware: a request passes only with the right HTTP basic-auth user and password, else 401.

    Compared with hmac.compare_digest (no timing leak); the Authorization header is dropped before the app sees it."""

    def __init__(self, app, credentials: Credentials, realm: str = AUTH_REALM) -> None:
        self.app = app
        self._user = credentials.user.encode("utf-8")
        self._password = credentials.password.encode("utf-8")
        self._challenge = ("WWW-Authenticate", f'Basic realm="{realm}"')

    def _admits(self, header: str) -> bool:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, colon, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        user_matches = hmac.compare_digest(user, self._user)
        password_matches = hmac.compare_digest(password, self._password)
        return bool(colon) and user_matches and password_matches

    def __call__(self, environ, start_response):
        header = environ.pop("HTTP_AUTHORIZATION", "")
        if self._admits(header):
            return self.app(environ, start_response)
        return _plain_response(
            start_response,
            "401 Unauthorized",
            "401: this dashboard needs a user and password (HTTP basic auth)\n",
            [self._challenge],
        )


class ReadOnly:
    """WSGI middleware: refuses with 403 every request whose method may change something (all but GET, HEAD,
    OPTIONS)."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method in SAFE_METHODS:
            return self.app(environ, start_response)
        return _plain_response(
            start_response,
            "403 Forbidden",
            f"403: this dashboard is read-only (sweep dashboard --read-only); {method} refused\n",
        )
