import re

from accounts.ids import new_account_id, new_calendar_id, new_external_event_uid
from tests.factories import make_calendar, make_profile


def test_ids_have_cronofy_prefixes_and_128_bit_entropy_class():
    assert re.fullmatch(r"acc_[0-9a-f]{24}", new_account_id())
    assert re.fullmatch(r"cal_[0-9a-f]{24}", new_calendar_id())
    assert re.fullmatch(r"evt_external_[0-9a-f]{24}", new_external_event_uid())


def test_ids_are_unique_over_many_samples():
    samples = {new_account_id() for _ in range(10_000)}
    assert len(samples) == 10_000


def test_models_get_public_ids_on_creation(db):
    calendar = make_calendar()
    assert calendar.public_id.startswith("cal_")
    assert calendar.profile.public_id.startswith("pro_")
    assert calendar.profile.account.public_id.startswith("acc_")


def test_profile_cronofy_provider_name_maps_services(db):
    assert (
        make_profile(provider="microsoft", provider_service="office365").cronofy_provider_name
        == "office365"
    )
    assert (
        make_profile(provider="caldav", provider_service="icloud").cronofy_provider_name == "apple"
    )
    assert (
        make_profile(provider="google", provider_service="google").cronofy_provider_name == "google"
    )
