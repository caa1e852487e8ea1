"""Server settings: one dataclass, filled by the CLI (flags and LOCALBCC_* variables)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = field(default_factory=lambda: Path(".localbcc"))
    database_url: str | None = None  # None: SQLite in data_dir
    region: str = "bj"
    keypair_quota: int = 500
    instance_quota: int = 200  # instances per account (spec part 2 §7)
    transition_seconds: float = 1.0
    durability: str = "normal"  # "normal" survives a process crash, "full" also power loss
    workers: int = 1
    log_level: str = "info"
    credentials: str | None = None  # "AK1:SK1,AK2:SK2"
    db_pool_size: int = 5
    db_max_overflow: int = 5
    ssh: bool = True
    ssh_port: int = 2222
    ssh_serve: str = "auto"  # "auto": unless another process serves this database's SSH; "force"
    ssh_endpoints: str = "auto"  # "address" (one loopback address each), "port" (one port each)
    # Slow clients (docs/reliability.md): seconds to send a request's headers / its body.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    metrics_public: bool = False  # serve GET /metrics to non-loopback clients too

    def resolved_database_url(self) -> str:
        from .store.urls import sqlite_url

        return self.database_url or sqlite_url(Path(self.data_dir).resolve())
