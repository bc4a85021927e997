from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from sharing.models import (
    ApiToken,
    AuditEvent,
    DenialTemplate,
    Facility,
    Instance,
    InstanceConflict,
    PacsNode,
    Patient,
    Series,
    Study,
    User,
)
from sharing.services.audit import Client
from sharing.services.tokens import api_token_revoke


class Unchangeable:
    """For records nobody adds, changes or deletes through the admin (audit events, API tokens)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin[User]):
    ordering = ["email"]
    list_display = ["email", "role", "is_active", "is_staff", "last_login"]
    list_filter = ["role", "is_active", "is_staff"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password", "role")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "role", "password1", "password2")}),)


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin[Patient]):
    list_display = ["patient_id", "issuer", "name", "birth_date", "sex", "user"]
    search_fields = ["patient_id", "name", "user__email"]
    raw_id_fields = ["user"]


class SeriesInline(admin.TabularInline[Series, Study]):
    model = Series
    fields = ("series_number", "modality", "description", "number_of_instances", "thumbnail_kind")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin[Study]):
    list_display = [
        "study_instance_uid",
        "patient",
        "study_date",
        "modalities",
        "number_of_instances",
        "completed_at",
    ]
    list_filter = ["source", "is_outside", "study_date"]
    search_fields = ["study_instance_uid", "accession_number", "patient__patient_id", "patient__name"]
    list_select_related = ["patient"]
    raw_id_fields = ["patient"]
    inlines = [SeriesInline]


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin[Series]):
    list_display = ["series_instance_uid", "study", "modality", "series_number", "number_of_instances"]
    search_fields = ["series_instance_uid", "study__study_instance_uid"]
    list_select_related = ["study"]
    raw_id_fields = ["study", "thumbnail_instance"]


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin[Instance]):
    list_display = ["sop_instance_uid", "state", "transfer_syntax_uid", "size_bytes", "sender", "received_at"]
    list_filter = ["state", "source"]
    search_fields = ["sop_instance_uid", "study_instance_uid"]
    raw_id_fields = ["series", "uploaded_by"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(InstanceConflict)
class InstanceConflictAdmin(admin.ModelAdmin[InstanceConflict]):
    list_display = ["instance", "sender", "received_at", "resolved_at"]
    raw_id_fields = ["instance"]


@admin.register(AuditEvent)
class AuditEventAdmin(Unchangeable, admin.ModelAdmin[AuditEvent]):
    list_display = ["occurred_at", "action", "outcome", "actor_label", "study_instance_uid"]
    list_filter = ["action", "outcome", "actor_kind"]
    search_fields = ["actor_label", "study_instance_uid"]


@admin.register(PacsNode)
class PacsNodeAdmin(admin.ModelAdmin[PacsNode]):
    list_display = ["name", "ae_title", "host", "port", "is_active", "description"]
    list_filter = ["is_active"]
    search_fields = ["name", "ae_title", "host"]
    actions = ["test_connection"]

    @admin.action(description="Test connection (C-ECHO)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[PacsNode]) -> None:
        from sharing.services.pacs import pacs_echo

        assert isinstance(request.user, User)
        for node in queryset:
            result = pacs_echo(node=node, actor=request.user)
            if result.ok:
                self.message_user(request, f"{node.name}: {result.message}", messages.SUCCESS)
            else:
                self.message_user(request, f"{node.name}: {result.message}", messages.ERROR)


@admin.register(Facility)
class FacilityAdmin(admin.ModelAdmin[Facility]):
    list_display = ["name", "issuer", "pacs", "is_active"]
    list_filter = ["is_active"]
    list_select_related = ["pacs"]
    search_fields = ["name", "issuer"]


@admin.register(DenialTemplate)
class DenialTemplateAdmin(admin.ModelAdmin[DenialTemplate]):
    """Reasons records staff pick when denying a request; until one exists, built-in defaults are offered."""

    list_display = ["title"]
    search_fields = ["title", "text"]


@admin.register(ApiToken)
class ApiTokenAdmin(Unchangeable, admin.ModelAdmin[ApiToken]):
    """Administrators see every staff member's API tokens and may revoke them; nothing else.

    Tokens are made on the staff pages only, where the secret is shown once to its owner; here
    even the hash of the secret is read-only.
    """

    list_display = ["name", "prefix", "owner", "can_store", "can_read", "created_at", "expires_at"]
    list_display += ["last_used_at", "last_used_from", "revoked_at"]
    list_filter = ["can_store", "can_read", "revoked_at"]
    list_select_related = ["owner"]
    search_fields = ["name", "prefix", "owner__email"]
    actions = ["revoke"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    @admin.action(description="Revoke the selected tokens now")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        assert isinstance(request.user, User)
        client = Client.of(request)
        revoked = [t for t in queryset if api_token_revoke(token=t, actor=request.user, client=client)]
        self.message_user(request, f"Revoked {len(revoked)} token(s).", messages.SUCCESS)
