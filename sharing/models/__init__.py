from sharing.models.accounts import User
from sharing.models.audit import AuditEvent
from sharing.models.imaging import Instance, InstanceConflict, Patient, Series, Study
from sharing.models.releases import (
    AuthorizationEvent,
    DenialTemplate,
    Facility,
    PacsNode,
    ReleaseAuthorization,
    RetrieveJob,
)
from sharing.models.shares import Share
from sharing.models.tokens import ApiToken

__all__ = [
    "ApiToken",
    "AuditEvent",
    "AuthorizationEvent",
    "DenialTemplate",
    "Facility",
    "Instance",
    "InstanceConflict",
    "PacsNode",
    "Patient",
    "ReleaseAuthorization",
    "RetrieveJob",
    "Series",
    "Share",
    "Study",
    "User",
]
