"""The `localbcc` command."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .config import Settings

app = typer.Typer(help="localbcc: a local, BCC-compatible key pair and instance service.\n\n"
                       "Every server and database option can also be set with a LOCALBCC_* "
                       "environment variable (e.g. LOCALBCC_PORT); `localbcc serve --help` "
                       "lists them.",
                  no_args_is_help=True, add_completion=False, rich_markup_mode=None)
account_app = typer.Typer(help="Manage accounts (access key / secret key pairs).",
                          no_args_is_help=True, rich_markup_mode=None)
db_app = typer.Typer(help="Database maintenance: migrations, checks, export and import.",
                     no_args_is_help=True, rich_markup_mode=None)
app.add_typer(account_app, name="account")
app.add_typer(db_app, name="db")

DataDir = typer.Option(Path(".localbcc"), "--data-dir", envvar="LOCALBCC_DATA_DIR",
                       help="Directory for the SQLite database and other state.")
DbUrl = typer.Option(None, "--database-url", envvar="LOCALBCC_DATABASE_URL",
                     help="SQLAlchemy/PostgreSQL URL; default: SQLite in the data dir.")


def _version(value: bool) -> None:
    if value:
        from . import compiled

        typer.echo(f"localbcc {__version__} ({compiled.STATE})")  # compiled or pure Python
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Every server and database option can also be set with a LOCALBCC_* environment variable."""


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", envvar="LOCALBCC_HOST", help="Address to listen on."),
    port: int = typer.Option(8080, envvar="LOCALBCC_PORT", min=1, max=65535, help="HTTP port."),
    data_dir: Path = DataDir,
    database_url: Optional[str] = DbUrl,
    region: str = typer.Option("bj", envvar="LOCALBCC_REGION", help="Region id shown on resources."),
    keypair_quota: int = typer.Option(500, envvar="LOCALBCC_KEYPAIR_QUOTA", min=0,
                                      help="Key pairs per account."),
    instance_quota: int = typer.Option(200, envvar="LOCALBCC_INSTANCE_QUOTA", min=0,
                                       help="Instances per account."),
    transition_seconds: float = typer.Option(1.0, envvar="LOCALBCC_TRANSITION_SECONDS", min=0.0,
                                             help="How long Starting/Stopping last (0 allowed)."),
    durability: str = typer.Option("normal", envvar="LOCALBCC_DURABILITY",
                                   help="SQLite: 'normal' survives a process crash, "
                                        "'full' also power loss (fsync per commit)."),
    workers: int = typer.Option(1, envvar="LOCALBCC_WORKERS", min=1, help="Server processes."),
    db_pool_size: int = typer.Option(5, envvar="LOCALBCC_DB_POOL_SIZE", min=1,
                                     help="Database connections kept per process."),
    db_max_overflow: int = typer.Option(5, envvar="LOCALBCC_DB_MAX_OVERFLOW", min=0,
                                        help="Extra connections allowed under load."),
    log_level: str = typer.Option("info", envvar="LOCALBCC_LOG_LEVEL",
                                  help="debug, info, warning or error."),
    credentials: Optional[str] = typer.Option(None, envvar="LOCALBCC_CREDENTIALS", show_default=False,
                                              help="Accounts as AK1:SK1,AK2:SK2; the first is the default."),
    header_timeout: float = typer.Option(10.0, envvar="LOCALBCC_HEADER_TIMEOUT", min=0.1,
                                         help="Seconds a client has to send a request's headers."),
    body_timeout: float = typer.Option(30.0, envvar="LOCALBCC_BODY_TIMEOUT", min=0.1,
                                       help="Seconds a client has to send a request's body (408 after)."),
    metrics_public: bool = typer.Option(False, "--metrics-public", envvar="LOCALBCC_METRICS_PUBLIC",
                                        help="Serve GET /metrics to every client, not only loopback."),
    ssh: bool = typer.Option(True, "--ssh/--no-ssh", envvar="LOCALBCC_SSH",
                             help="Give every running Linux instance an SSH endpoint (docs/ssh.md)."),
    ssh_port: int = typer.Option(2222, envvar="LOCALBCC_SSH_PORT", min=1, max=65535,
                                 help="SSH port shared by the instances' loopback addresses "
                                      "(port layout: the base, instance n gets port+n)."),
    ssh_serve: str = typer.Option("auto", envvar="LOCALBCC_SSH_SERVE",
                                  help="'auto': serve SSH unless another process on this database "
                                       "does (then stand by); 'force': serve anyway."),
    ssh_endpoints: str = typer.Option("auto", envvar="LOCALBCC_SSH_ENDPOINTS",
                                      help="'address': one loopback address per instance, one port; "
                                           "'port': 127.0.0.1, one port per instance; 'auto': address "
                                           "if 127.16.0.1 can be bound."),
) -> None:
    """Run the BCC-compatible HTTP service."""
    from .server import serve as run

    if durability not in ("normal", "full"):
        raise typer.BadParameter("must be 'normal' or 'full'", param_hint="--durability")
    settings = Settings(host=host, port=port, data_dir=data_dir, database_url=database_url,
                        region=region, keypair_quota=keypair_quota, instance_quota=instance_quota,
                        transition_seconds=transition_seconds, durability=durability,
                        workers=workers, log_level=log_level, credentials=credentials,
                        db_pool_size=db_pool_size, db_max_overflow=db_max_overflow,
                        header_timeout=header_timeout, body_timeout=body_timeout,
                        metrics_public=metrics_public)
    if ssh_serve not in ("auto", "force"):
        raise typer.BadParameter("must be 'auto' or 'force'", param_hint="--ssh-serve")
    if ssh_endpoints not in ("auto", "address", "port"):
        raise typer.BadParameter("must be 'auto', 'address' or 'port'", param_hint="--ssh-endpoints")
    settings.ssh, settings.ssh_port = ssh, ssh_port
    settings.ssh_serve, settings.ssh_endpoints = ssh_serve, ssh_endpoints
    try:
        code = run(settings)
    except ValueError as exc:
        typer.echo(f"localbcc: {exc}", err=True)
        code = 2
    raise typer.Exit(code)


@contextlib.contextmanager
def _opened_store(data_dir: Path, database_url: Optional[str], *, prepare: bool = False,
                  create: bool = True):
    """A store for one command; a schema, transfer, file or database problem
    becomes `localbcc: <what to do>` and exit status 2, never a traceback.
    ``create=False``: a command that only reads; a SQLite database must exist."""
    from sqlalchemy.exc import DBAPIError

    from .server import open_store
    from .store.failures import SchemaMismatch, describe_error
    from .store.transfer import TransferError

    store = None
    try:
        store = open_store(Settings(data_dir=data_dir, database_url=database_url), create=create)
        if prepare:
            store.prepare()
        yield store
    except (SchemaMismatch, TransferError, OSError) as exc:
        _fail(str(exc))
    except DBAPIError as exc:  # e.g. a read-only database file; never its SQL parameters
        _fail(f"the database refused: {describe_error(exc)}")
    finally:
        if store is not None:
            store.dispose()


def _fail(message: str) -> None:
    typer.echo(f"localbcc: {message}", err=True)
    raise typer.Exit(2)


@account_app.command("create")
def account_create(data_dir: Path = DataDir, database_url: Optional[str] = DbUrl,
                   access_key: Optional[str] = typer.Option(
                       None, "--access-key", help="Use this access key (default: generated)."),
                   secret_key: Optional[str] = typer.Option(
                       None, "--secret-key", help="Use this secret key, 16 characters or more "
                                                 "(default: generated).")) -> None:
    """Create an account and print its access key and secret key."""
    from .clock import Clock
    from .store.accounts import Accounts, check_credentials

    if access_key is not None or secret_key is not None:  # told before a database is made
        try:
            check_credentials(access_key or "generated", secret_key or "x" * 16, "account create")
        except ValueError as exc:
            _fail(str(exc))
    with _opened_store(data_dir, database_url, prepare=True) as store:
        try:
            ak, sk = Accounts(store, Clock()).create(access_key, secret_key)
        except ValueError as exc:
            _fail(str(exc))
    typer.echo(f"access key  {ak}\nsecret key  {sk}")


@account_app.command("list")
def account_list(data_dir: Path = DataDir, database_url: Optional[str] = DbUrl,
                 show_secrets: bool = typer.Option(False, "--show-secrets",
                                                   help="Also print secret keys."),
                 credentials: Optional[str] = typer.Option(
                     None, envvar="LOCALBCC_CREDENTIALS", show_default=False,
                     help="As for serve: its first account is the default.")) -> None:
    """List accounts: access key, secret key (only with --show-secrets), creation
    time, and `default` on the account `serve` prints (the first of --credentials,
    else the oldest)."""
    from .clock import Clock
    from .domain.timefmt import iso
    from .store.accounts import Accounts, parse_credentials

    with _opened_store(data_dir, database_url, create=False) as store:
        store.check()  # reads only: an empty database is told, not given a schema
        accounts = Accounts(store, Clock()).list()
    default = accounts[0][0] if accounts else None
    if credentials:  # as `serve` with the same environment would choose
        try:
            default = parse_credentials(credentials)[0][0]
        except ValueError as exc:
            _fail(str(exc))
    for ak, sk, created in accounts:
        mark = "\tdefault" if ak == default else ""
        typer.echo(f"{ak}\t{sk if show_secrets else '*' * 8}\t{iso(created)}{mark}")


@db_app.command("upgrade")
def db_upgrade(data_dir: Path = DataDir, database_url: Optional[str] = DbUrl) -> None:
    """Apply database migrations up to this version's schema."""
    with _opened_store(data_dir, database_url) as store:
        store.upgrade()
        typer.echo(f"database at revision {store.current_revision()}")


@db_app.command("check")
def db_check(data_dir: Path = DataDir, database_url: Optional[str] = DbUrl) -> None:
    """Exit 0 if the database schema is the one this localbcc needs; else say what to do (exit 2)."""
    from .store.migrate import SCHEMA_REVISION

    with _opened_store(data_dir, database_url, create=False) as store:
        store.check()
    typer.echo(f"database schema at revision {SCHEMA_REVISION}: up to date")


@db_app.command("export")
def db_export(file: str = typer.Argument(..., help="Where to write (JSON lines); - for stdout."),
              data_dir: Path = DataDir, database_url: Optional[str] = DbUrl) -> None:
    """Write all state (accounts, key pairs, instances, ...) to FILE, from one snapshot;
    the servers may keep running. Format: docs/storage.md."""
    import os
    import sys

    from .store.transfer import export

    tmp = f"{file}.partial"
    try:
        with _opened_store(data_dir, database_url, create=False) as store:
            if file == "-":
                counts = export(store, sys.stdout.buffer)
            else:
                with open(tmp, "wb") as out:
                    counts = export(store, out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, file)
    finally:
        if file != "-" and os.path.exists(tmp):
            os.unlink(tmp)
    typer.echo(f"exported {_summary(counts)} to {file}", err=True)


@db_app.command("import")
def db_import(file: str = typer.Argument(..., help="An export file; - for stdin."),
              data_dir: Path = DataDir, database_url: Optional[str] = DbUrl) -> None:
    """Load FILE (from `db export`) into an empty database, creating its schema.
    All or nothing: on any problem nothing is written."""
    import sys

    from .store.transfer import import_

    with _opened_store(data_dir, database_url) as store:
        if file == "-":
            counts = import_(store, sys.stdin.buffer)
        else:
            with open(file, "rb") as src:
                counts = import_(store, src)
    typer.echo(f"imported {_summary(counts)}", err=True)


def _summary(counts: dict) -> str:
    return ", ".join(f"{n} {name if n != 1 else name.removesuffix('s')}"
                     for name, n in counts.items()) or "nothing"


if __name__ == "__main__":  # python -m localbcc.cli
    app()
