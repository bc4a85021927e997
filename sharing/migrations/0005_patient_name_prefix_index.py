"""An index for name searches by prefix (QIDO ``PatientName=SMITH*``), PostgreSQL only.

Django's ``istartswith`` is ``UPPER(name::text) LIKE UPPER('SMITH%')`` on PostgreSQL. An index on
that expression with ``text_pattern_ops`` answers it as a range scan whatever the collation; without
it, every search reads the whole patient table. SQLite, the embedded default, has no use for it.
"""

from django.db import migrations

CREATE = (
    "CREATE INDEX IF NOT EXISTS patient_name_upper_prefix "
    "ON sharing_patient (UPPER(name::text) text_pattern_ops)"
)
DROP = "DROP INDEX IF EXISTS patient_name_upper_prefix"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("sharing", "0004_audit_append_only_trigger")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
