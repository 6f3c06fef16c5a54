from django.db import migrations

SUPPORT_GROUP = "Support"


def create_support_group(apps, schema_editor):
    # View permissions are attached after every migrate (accounts.support), because permissions
    # of models added by later migrations do not exist yet at this point.
    apps.get_model("auth", "Group").objects.get_or_create(name=SUPPORT_GROUP)


def delete_support_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=SUPPORT_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_support_group, delete_support_group)]
