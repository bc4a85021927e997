from sharing.models.accounts import User
from sharing.models.audit import AuditEvent
from sharing.models.imaging import Instance, InstanceConflict, Patient, Series, Study

__all__ = ["AuditEvent", "Instance", "InstanceConflict", "Patient", "Series", "Study", "User"]
