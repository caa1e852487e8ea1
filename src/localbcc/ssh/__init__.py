"""SSH endpoints of instances (issue 7): every running Linux instance can be
logged into with the key pair in force. See service.py for how it works and
docs/ssh.md for how to use it."""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("localbcc.ssh")


async def start_service(ctx: Any) -> Any:
    """Start the SSH service of this process (ASGI lifespan startup). Returns
    once the endpoints of instances that read Running are reachable, if this
    process serves them. Never raises: a broken SSH service must not keep the
    API from starting."""
    if not getattr(ctx.settings, "ssh", False):
        return None
    from .service import SshService

    service = SshService(ctx, getattr(ctx.instances, "ssh", None))
    try:
        await service.start()
    except Exception:
        log.exception("SSH: the SSH service failed to start; the API keeps serving without it")
        try:
            await service.stop()
        except Exception:
            pass
        return None
    ctx.ssh_service = service
    return service


async def stop_service(service: Any) -> None:
    if service is None:
        return
    try:
        await service.stop()
    except Exception:
        log.exception("SSH: error while stopping the SSH service")
