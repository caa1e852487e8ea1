"""Start-up: open the store, make sure accounts exist, run uvicorn."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from .api.app import App
from .api.context import Context
from .api.protocol import LimitedHttpToolsProtocol
from .config import Settings
from .store.accounts import Accounts, parse_credentials
from .store.db import Store
from .store.failures import DatabaseUnreachable, SchemaMismatch, describe_error

log = logging.getLogger("localbcc")
_SETTINGS_ENV = "LOCALBCC_INTERNAL_SETTINGS"  # hands settings to --workers processes


def open_store(settings: Settings, *, create: bool = True) -> Store:
    """The settings' database. Without ``create`` (commands that only read) a
    SQLite database must exist already: a mistyped --data-dir says so instead
    of leaving an empty database behind. A data directory or URL that cannot be
    used raises DatabaseUnreachable, whose message says why in one line."""
    if settings.database_url is None and create:
        data_dir = Path(settings.data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnreachable(f"cannot use {data_dir} as the data directory: "
                                      f"{exc.strerror or exc}") from None
    store = Store(settings.resolved_database_url(), durability=settings.durability,
                  pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    if not create and store.sqlite_file is not None and not store.sqlite_file.is_file():
        store.dispose()
        raise DatabaseUnreachable(f"there is no localbcc database at {store.sqlite_file} (check "
                                  f"--data-dir or --database-url; `localbcc serve` creates one)")
    return store


def build_app(settings: Settings, clock=None) -> App:
    LimitedHttpToolsProtocol.header_timeout = settings.header_timeout
    LimitedHttpToolsProtocol.body_timeout = settings.body_timeout
    return App(Context(settings, open_store(settings), clock))


def _check_listen(host: str, port: int) -> None:
    """Fail before anything is created or announced if the HTTP address cannot
    be listened on (taken, or a host name that does not resolve here). uvicorn
    binds it again a moment later, as it would have anyway."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn picks it
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            sock.bind((host, port))
    except OSError as exc:  # the CLI says it in one line, as for bad options
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _raise_fd_limit() -> None:
    """Allow as many open connections as the hard limit permits (the soft limit
    is often 1024): one client holding many sockets must not starve the rest."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 16
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):  # not fatal: serve with what we have
        log.debug("could not raise RLIMIT_NOFILE")


def app_factory() -> App:
    """Entry point of each worker process when --workers > 1."""
    raw = json.loads(os.environ[_SETTINGS_ENV])
    raw["data_dir"] = Path(raw["data_dir"])
    settings = Settings(**raw)
    configure_logging(settings.log_level)
    return build_app(settings)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def prepare(settings: Settings) -> tuple[str, str, int]:
    """Create or check the schema and the accounts; returns the default
    account's keys and how many accounts the database holds."""
    store = open_store(settings)
    try:
        store.require_writable()
        store.prepare()
        accounts = Accounts(store, _clock())
        access_key, secret_key = accounts.ensure(settings.credentials)
        return access_key, secret_key, len(accounts.list())
    finally:
        store.dispose()


def _clock():
    from .clock import Clock

    return Clock()


def banner(settings: Settings, access_key: str, secret_key: str, accounts: int = 1) -> str:
    endpoint = f"{settings.host}:{settings.port}"
    which = "the first of --credentials" if settings.credentials else "the oldest account"
    others = accounts - 1
    more = (f"; {others} other account{'s' * (others != 1)} in this database keep their own key "
            f"pairs (localbcc account list)" if others else "")
    return f"""localbcc is serving the BCC API
  endpoint    http://{endpoint}
  region      {settings.region}
  database    {_safe_url(settings.resolved_database_url())}
  access key  {access_key}
  secret key  {secret_key}
  account     the default ({which}){more}

Try it with bce-python-sdk:
  from baidubce.bce_client_configuration import BceClientConfiguration; from baidubce.auth.bce_credentials import BceCredentials; from baidubce.services.bcc.bcc_client import BccClient
  client = BccClient(BceClientConfiguration(credentials=BceCredentials("{access_key}", "{secret_key}"), endpoint="{endpoint}"))
  print(client.create_keypair(keypair_name="demo").keypair.keypair_id)
"""


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def serve(settings: Settings) -> int:
    import uvicorn

    configure_logging(settings.log_level)
    try:
        if settings.credentials:  # a mistake there is told before anything is created
            parse_credentials(settings.credentials)
        _check_listen(settings.host, settings.port)
        access_key, secret_key, accounts = prepare(settings)
    except SchemaMismatch as exc:
        print(f"localbcc: {exc}", file=sys.stderr)
        return 2
    except DBAPIError as exc:  # e.g. a file that is not a SQLite database
        print(f"localbcc: the database refused: {describe_error(exc)}", file=sys.stderr)
        return 2
    print(banner(settings, access_key, secret_key, accounts), flush=True)
    _raise_fd_limit()
    # Slow clients (docs/reliability.md): headers within header_timeout (the
    # protocol), body within body_timeout (the protocol ends it, the app says 408),
    # idle keep-alive 30 s.
    # SIGTERM: stop accepting, let in-flight requests finish (up to 10 s).
    common: dict[str, Any] = dict(host=settings.host, port=settings.port, log_config=None, access_log=False,
                  loop="uvloop", http=LimitedHttpToolsProtocol, lifespan="on",
                  timeout_keep_alive=30, timeout_graceful_shutdown=10)
    if settings.workers > 1:
        os.environ[_SETTINGS_ENV] = json.dumps(
            dataclasses.asdict(settings) | {"data_dir": str(settings.data_dir)})
        uvicorn.run("localbcc.server:app_factory", factory=True, workers=settings.workers, **common)
    else:
        uvicorn.run(build_app(settings), **common)
    return 0
