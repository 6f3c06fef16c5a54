from django.db import migrations

ADMIN_GROUP = "Admin"


def create_admin_group(apps, schema_editor):
    # Its permissions are set after every migrate (accounts.support.grant_role_permissions):
    # permissions of models added by later migrations do not exist yet at this point.
    apps.get_model("auth", "Group").objects.get_or_create(name=ADMIN_GROUP)


def delete_admin_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=ADMIN_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_audit_entry")]

    operations = [migrations.RunPython(create_admin_group, delete_admin_group)]
