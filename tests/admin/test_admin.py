import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.models import ApplicationSecret
from calendars.services import apply_provider_events
from tests.factories import make_calendar, make_event_data

PRODUCT_APPS = ("accounts", "calendars", "notifications", "sync")


@pytest.fixture
def seeded(db):
    calendar = make_calendar()
    calendar.profile.credentials = {"password": "marker-password-123"}
    calendar.profile.save()
    apply_provider_events(calendar=calendar, upserts=[make_event_data(key="a")])
    return calendar


def product_models():
    return [m for m in admin.site._registry if m._meta.app_label in PRODUCT_APPS]


def test_admin_changelists_and_change_pages_render_for_staff(admin_client, seeded):
    for model in product_models():
        opts = model._meta
        changelist = admin_client.get(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        )
        assert changelist.status_code == 200, opts.label
        obj = model.objects.first()
        if obj is not None:
            change = admin_client.get(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            )
            assert change.status_code == 200, opts.label
            assert b"marker-password-123" not in change.content


def test_admin_search_by_email_and_public_id(admin_client, seeded):
    account = seeded.profile.account
    url = reverse("admin:accounts_profile_changelist")
    for term in (account.email, seeded.profile.public_id):
        response = admin_client.get(url, {"q": term})
        assert seeded.profile.public_id.encode() in response.content


def test_support_group_can_view_every_product_model(db):
    group = Group.objects.get(name="Support")
    codenames = set(group.permissions.values_list("codename", flat=True))
    for model in product_models():
        assert f"view_{model._meta.model_name}" in codenames
    assert not any(c.startswith(("change_", "delete_", "add_")) for c in codenames)


def test_admin_answers_at_its_root(client, db):
    response = client.get("/admin/")
    assert response.status_code == 302  # to the login page
    assert client.get(response["Location"]).status_code == 200


def test_admin_client_secrets_change_only_through_the_services(admin_client, db):
    # Adding a secret here would skip the checksum its encryption is bound to (a 500) and
    # unticking is_active would bypass the "keep one active secret" rule.
    assert admin_client.get("/admin/accounts/applicationsecret/add/").status_code == 403
    model_admin = admin.site._registry[ApplicationSecret]
    assert {"is_active", "retired_at"} <= set(model_admin.readonly_fields)
