"""The audit table refuses UPDATE, DELETE and TRUNCATE in the database itself (PostgreSQL only).

The model and queryset already refuse both; the trigger also stops raw SQL, the admin shell and
other programs sharing the database. A superuser can still drop the trigger: the hash chain
(``manage.py verify_audit``) is what shows that history was changed.

TRUNCATE is let through only in a session that sets ``lightbox.audit_truncate = 'allow'``: the
test suite does so for its throwaway database, whose flush between tests truncates every table.
"""

from django.db import migrations

TABLE = "sharing_auditevent"

CREATE = f"""
CREATE OR REPLACE FUNCTION lightbox_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('lightbox.audit_truncate', true) = 'allow' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER lightbox_audit_no_update_delete
    BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION lightbox_audit_append_only();
CREATE TRIGGER lightbox_audit_no_truncate
    BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION lightbox_audit_append_only();
"""

DROP = f"""
DROP TRIGGER IF EXISTS lightbox_audit_no_truncate ON {TABLE};
DROP TRIGGER IF EXISTS lightbox_audit_no_update_delete ON {TABLE};
DROP FUNCTION IF EXISTS lightbox_audit_append_only();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("sharing", "0003_shares_releases_audit_chain"),
    ]

    operations = [
        migrations.RunPython(create_trigger, drop_trigger, elidable=False),
    ]
