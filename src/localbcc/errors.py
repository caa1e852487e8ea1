"""Every BCE error code localbcc answers with, defined once.

Handlers and domain code raise :class:`BceError` built from one of the
:class:`ErrorCode` members below; the HTTP layer renders it as the BCE error
envelope ``{"requestId", "code", "message"}``.
"""
from __future__ import annotations

import enum


class ErrorCode(enum.Enum):
    """(HTTP status, default message) for every code, keyed by the wire code."""

    # §2 authentication
    AccessDenied = (403, "Access denied: the request carries no Authorization header.")
    InvalidHTTPAuthHeader = (400, "The Authorization header is malformed.")
    InvalidAccessKeyId = (403, "The access key id does not exist.")
    SignatureDoesNotMatch = (400, "The request signature does not match.")
    RequestExpired = (400, "The request has expired or its timestamp is too far in the future.")
    # §3 common
    MalformedJSON = (400, "The request body is not valid JSON.")
    InappropriateJSON = (400, "The JSON body is not appropriate for this operation.")
    InvalidURI = (400, "The request URI matches no operation.")
    InvalidVersion = (404, "The API version is not supported; use /v2.")
    RequestEntityTooLarge = (413, "The request body exceeds 1 MiB.")
    # Slow or broken clients (docs/reliability.md): headers or body not received
    # in time, or bytes that are not HTTP/1.1 at all.
    RequestTimeout = (408, "The request was not received in time.")
    InvalidHTTPRequest = (400, "The HTTP request is malformed.")
    IdempotentParameterMismatch = (403, "The clientToken was already used with a different request.")
    ServiceUnavailable = (503, "The service is temporarily unavailable; retry later.")
    InternalError = (500, "Internal error.")
    NoSuchObject = (404, "The specified object does not exist.")
    # §4.5 key pairs
    KeypairNotExist = (404, "Keypair not exist.")
    KeypairNameInvalid = (400, "Keypair name is invalid.")
    KeypairDescriptionInvalid = (400, "Keypair description is invalid.")
    PublicKeyFormatInvalid = (400, "Public key format is invalid.")
    KeypairPublicKeyExist = (400, "Keypair already exist.")
    KeypairQuotaExceedLimit = (413, "Keypair number exceeds the limit.")
    DeleteKeypairInUse = (403, "Keypair is in use.")
    KeypairInstanceNotExist = (404, "Instance not exist.")
    UnsupportOsType = (403, "Unsupported os type, only linux supported.")
    KeypairInstanceStatusForbidden = (409, "Instance not in running or stopped status.")
    AttachAttachedKeypair = (400, "Can not attach to an attached keypair.")
    # §5.5 instances
    StartInstanceWhenCreating = (409, "The instance is still being created.")
    StartInstanceOperationForbidden = (409, "The instance can be started only when it is Stopped.")
    StopInstanceOperationForbidden = (409, "The instance can be stopped only when it is Running.")
    RebootInstanceOperationForbidden = (409, "The instance can be rebooted only when it is Running.")
    InstanceStatusForbidden = (409, "The instance is in a transition; wait until it is Running or Stopped.")
    InstanceQuotaExceedLimit = (413, "Instance number exceeds the limit.")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def default_message(self) -> str:
        return self.value[1]

    @property
    def wire(self) -> str:
        return _WIRE.get(self.name, self.name)


# Codes whose wire name carries a service prefix (two members may share a
# suffix, e.g. Keypair.InstanceStatusForbidden vs Instance.InstanceStatusForbidden).
_WIRE = {
    "KeypairNotExist": "Keypair.KeypairNotExist",
    "KeypairNameInvalid": "Keypair.KeypairNameInvalid",
    "KeypairDescriptionInvalid": "Keypair.KeypairDescriptionInvalid",
    "PublicKeyFormatInvalid": "Keypair.PublicKeyFormatInvalid",
    "KeypairPublicKeyExist": "Keypair.KeypairPublicKeyExist",
    "KeypairQuotaExceedLimit": "Keypair.KeypairQuotaExceedLimit",
    "DeleteKeypairInUse": "Keypair.DeleteKeypairInUse",
    "KeypairInstanceNotExist": "Keypair.InstanceNotExist",
    "UnsupportOsType": "Keypair.UnsupportOsType",
    "KeypairInstanceStatusForbidden": "Keypair.InstanceStatusForbidden",
    "AttachAttachedKeypair": "Keypair.AttachAttachedKeypair",
    "StartInstanceWhenCreating": "Instance.StartInstanceWhenCreating",
    "StartInstanceOperationForbidden": "Instance.StartInstanceOperationForbidden",
    "StopInstanceOperationForbidden": "Instance.StopInstanceOperationForbidden",
    "RebootInstanceOperationForbidden": "Instance.RebootInstanceOperationForbidden",
    "InstanceStatusForbidden": "Instance.InstanceStatusForbidden",
    "InstanceQuotaExceedLimit": "Instance.InstanceQuotaExceedLimit",
}


class BceError(Exception):
    """A BCE error answer. ``message`` defaults to the code's standard text."""

    def __init__(self, code: ErrorCode, message: str | None = None):
        self.code = code
        self.message = message or code.default_message
        super().__init__(f"{code.wire}: {self.message}")

    @property
    def status(self) -> int:
        return self.code.status


def envelope(request_id: str, err: BceError) -> dict[str, str]:
    """The body of an error answer: the BCE error envelope."""
    return {"requestId": request_id, "code": err.code.wire, "message": err.message}


def inappropriate(field: str, why: str) -> BceError:
    """InappropriateJSON naming the offending field, as §3 asks."""
    return BceError(ErrorCode.InappropriateJSON, f"Field '{field}' {why}.")
