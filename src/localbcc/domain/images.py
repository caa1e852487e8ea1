"""The fixed catalogue of public system images (§5.1)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import BceError, ErrorCode, inappropriate
from . import paging

_CREATED = "2024-01-01T00:00:00Z"


@dataclass(frozen=True)
class Image:
    id: str
    name: str
    os_type: str
    os_name: str
    os_version: str
    os_arch: str
    os_release: str  # the text of /etc/os-release inside instances of this image

    def to_wire(self) -> dict:
        return {"id": self.id, "name": self.name, "type": "System", "osType": self.os_type,
                "osVersion": self.os_version, "osArch": self.os_arch, "osName": self.os_name,
                "status": "Available", "createTime": _CREATED, "desc": ""}

    @property
    def is_linux(self) -> bool:
        return self.os_type == "linux"


def _os_release(name: str, version: str, ident: str, pretty: str) -> str:
    return (f'PRETTY_NAME="{pretty}"\nNAME="{name}"\nVERSION_ID="{version}"\n'
            f'ID={ident}\n')


IMAGES: tuple[Image, ...] = (
    Image("m-Ubt2204a", "Ubuntu 22.04 LTS amd64", "linux", "Ubuntu", "22.04 LTS", "x86_64 (64bit)",
          _os_release("Ubuntu", "22.04", "ubuntu", "Ubuntu 22.04.4 LTS")),
    Image("m-Deb12x64", "Debian 12 amd64", "linux", "Debian", "12", "x86_64 (64bit)",
          _os_release("Debian GNU/Linux", "12", "debian", "Debian GNU/Linux 12 (bookworm)")),
    Image("m-Cent79x6", "CentOS 7.9 x86_64", "linux", "CentOS", "7.9", "x86_64 (64bit)",
          _os_release("CentOS Linux", "7", "centos", "CentOS Linux 7 (Core)")),
    Image("m-Win2019d", "Windows Server 2019 Datacenter", "windows", "Windows Server",
          "2019 Datacenter", "x86_64 (64bit)", ""),
)
_BY_ID = {img.id: img for img in IMAGES}


def get_image(image_id: str) -> Image:
    try:
        return _BY_ID[image_id]
    except (KeyError, TypeError):
        raise BceError(ErrorCode.NoSuchObject, f"Image {image_id!s:.40} does not exist.") from None


def list_images(image_type: str | None) -> list[Image]:
    """``imageType``: All (default), System, or anything else (no images: we only have System)."""
    if image_type in (None, "", "All", "System"):
        return list(IMAGES)
    return []


def list_page(image_type: str | None, marker: str | None, max_keys: int) -> dict:
    """GET /v2/image: the images of ``image_type`` from ``marker`` (an image id) on."""
    found = list_images(image_type)
    if marker:
        ids = [img.id for img in found]
        if marker not in ids:
            raise inappropriate("marker", "names no image")
        found = found[ids.index(marker):]
    result = paging.wrap(found[:max_keys + 1], marker, max_keys, lambda img: img.id)
    result["images"] = [img.to_wire() for img in result.pop("items")]
    return result
