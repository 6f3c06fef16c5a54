"""fold_writes: one write equivalent to applying two in order (the reconciler supersedes
older pending writes by folding them into the newest, never by dropping them)."""

from sync.services.writes import fold_writes

UPSERT, DELETE, ANSWER = "upsert", "delete", "participation"
BOB = {"email": "bob@example.com", "display_name": "Bob"}
EVE = {"email": "eve@example.com", "display_name": "Eve"}


def upsert(**fields) -> dict:
    return {"summary": "S", "reminders": None, "transparency": None, "color": "", **fields}


def test_fold_writes_later_upsert_keeps_earlier_deltas_it_does_not_override():
    old = upsert(
        reminders=[10], transparency="transparent", color="#49BED8", attendees_invite=[BOB]
    )
    new = upsert(summary="Renamed", attendees_invite=[EVE])

    op, folded = fold_writes(UPSERT, old, UPSERT, new)

    assert op == UPSERT and folded["summary"] == "Renamed"
    assert folded["reminders"] == [10] and folded["transparency"] == "transparent"
    assert folded["color"] == "#49BED8"
    assert folded["attendees_invite"] == [BOB, EVE]


def test_fold_writes_later_values_win_and_a_removal_cancels_an_earlier_invite():
    old = upsert(reminders=[10], attendees_invite=[BOB])
    new = upsert(reminders=[], attendees_remove=[{"email": "BOB@example.com"}])

    _, folded = fold_writes(UPSERT, old, UPSERT, new)

    assert folded["reminders"] == []
    assert folded["attendees_invite"] == []
    assert folded["attendees_remove"] == [{"email": "BOB@example.com"}]


def test_fold_writes_participation_and_upsert_combine_in_either_order():
    op, folded = fold_writes(
        UPSERT, upsert(summary="X"), ANSWER, {"participation_status": "accepted"}
    )
    assert (op, folded["summary"], folded["participation_status"]) == (UPSERT, "X", "accepted")

    op, folded = fold_writes(ANSWER, {"participation_status": "declined"}, UPSERT, upsert())
    assert (op, folded["participation_status"]) == (UPSERT, "declined")


def test_fold_writes_delete_wins_and_an_upsert_after_a_delete_is_complete():
    assert fold_writes(UPSERT, upsert(), DELETE, {}) == (DELETE, {})
    assert fold_writes(DELETE, {}, UPSERT, upsert(summary="Back")) == (
        UPSERT,
        upsert(summary="Back"),
    )
