"""One small function per BCC operation: read the typed request, call the
domain, return the JSON answer (or None for an empty 200)."""
from __future__ import annotations

from typing import Any

from ..domain import images, validation
from .context import Context
from .request import Request

Answer = dict[str, Any] | None


# -- key pairs (§4) -------------------------------------------------------------------

async def create_keypair(ctx: Context, req: Request) -> Answer:
    name, description = ctx.keypairs.parse_create(req.json())
    token = validation.client_token(req.param("clientToken"))
    # A replay or a full account answers without the key that would be thrown away.
    answered = await ctx.unit.run(ctx.keypairs.before_create, req.account, name, description, token)
    if answered is not None:
        return answered
    generated = await ctx.offload(ctx.keypairs.generate)  # RSA generation is CPU-heavy
    return await ctx.unit.run(ctx.keypairs.create, req.account, name, description, token, generated)


async def import_keypair(ctx: Context, req: Request) -> Answer:
    token = validation.client_token(req.param("clientToken"))
    return await ctx.unit.run(ctx.keypairs.import_, req.account, req.json(), token)


async def list_keypairs(ctx: Context, req: Request) -> Answer:
    max_keys = validation.max_keys(req.param("maxKeys"))
    name = req.param("name") or None
    return await ctx.unit.run(ctx.keypairs.list, req.account, req.param("marker"), max_keys, name)


async def get_keypair(ctx: Context, req: Request) -> Answer:
    return await ctx.unit.run(ctx.keypairs.get, req.account, req.item_id)


async def rename_keypair(ctx: Context, req: Request) -> Answer:
    await ctx.unit.run(ctx.keypairs.rename, req.account, req.item_id, req.json())
    return None


async def update_keypair_desc(ctx: Context, req: Request) -> Answer:
    await ctx.unit.run(ctx.keypairs.update_description, req.account, req.item_id, req.json())
    return None


async def delete_keypair(ctx: Context, req: Request) -> Answer:
    await ctx.unit.run(ctx.keypairs.delete, req.account, req.item_id)
    return None


async def attach_keypair(ctx: Context, req: Request) -> Answer:
    answer = await ctx.unit.run(ctx.instances.attach, req.account, req.item_id, req.json())
    return {"requestId": req.request_id, **answer}


async def detach_keypair(ctx: Context, req: Request) -> Answer:
    answer = await ctx.unit.run(ctx.instances.detach, req.account, req.item_id, req.json())
    return {"requestId": req.request_id, **answer}


# -- instances (§5.2) ----------------------------------------------------------------------

async def create_instance(ctx: Context, req: Request) -> Answer:
    token = validation.client_token(req.param("clientToken"))
    answer = await ctx.unit.run(ctx.instances.create, req.account, req.secret_key, req.json(),
                                token)
    await ctx.open_endpoints(answer["instanceIds"])
    return answer


async def list_instances(ctx: Context, req: Request) -> Answer:
    max_keys = validation.max_keys(req.param("maxKeys"))
    return await ctx.unit.run(
        ctx.instances.list, req.account, req.param("marker"), max_keys,
        status=req.param("status") or None, keypair_id=req.param("keypairId") or None,
        ids=validation.instance_ids_param(req.param("instanceIds")))


async def get_instance(ctx: Context, req: Request) -> Answer:
    return await ctx.unit.run(ctx.instances.get, req.account, req.item_id)


async def start_instance(ctx: Context, req: Request) -> Answer:
    await ctx.unit.run(ctx.instances.start, req.account, req.item_id)
    return None


async def stop_instance(ctx: Context, req: Request) -> Answer:
    await ctx.unit.run(ctx.instances.stop, req.account, req.item_id)
    return None


async def reboot_instance(ctx: Context, req: Request) -> Answer:
    await ctx.unit.run(ctx.instances.reboot, req.account, req.item_id)
    # The Go SDK decodes a BatchOperationResp here (bcc-instances-more.md §1):
    # an empty body is an EOF error there for a reboot that succeeded.
    return {"requestId": req.request_id, "failedInstanceIdList": []}


async def rebuild_instance(ctx: Context, req: Request) -> Answer:
    await ctx.unit.run(ctx.instances.rebuild, req.account, req.secret_key, req.item_id,
                       req.json())
    await ctx.open_endpoints([req.id])  # e.g. rebuilt from Windows to Linux
    return None


async def release_instance(ctx: Context, req: Request) -> Answer:
    await ctx.unit.run(ctx.instances.release, req.account, req.item_id)
    return None


# -- images (§5.1) ---------------------------------------------------------------------------

async def list_images(ctx: Context, req: Request) -> Answer:
    max_keys = validation.max_keys(req.param("maxKeys"))
    return images.list_page(req.param("imageType"), req.param("marker"), max_keys)


async def get_image(ctx: Context, req: Request) -> Answer:
    return {"image": images.get_image(req.id).to_wire()}
