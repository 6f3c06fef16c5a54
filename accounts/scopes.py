"""Cronofy's OAuth scopes, the shorthands and what each one grants."""

READ_ACCOUNT = "read_account"
LIST_CALENDARS = "list_calendars"
READ_EVENTS = "read_events"
READ_FREE_BUSY = "read_free_busy"
CREATE_EVENT = "create_event"
DELETE_EVENT = "delete_event"
CREATE_CALENDAR = "create_calendar"
CHANGE_PARTICIPATION_STATUS = "change_participation_status"

ALL = frozenset(
    {
        READ_ACCOUNT,
        LIST_CALENDARS,
        READ_EVENTS,
        READ_FREE_BUSY,
        CREATE_EVENT,
        DELETE_EVENT,
        CREATE_CALENDAR,
        CHANGE_PARTICIPATION_STATUS,
    }
)

SHORTHANDS = {
    "read_write": ALL,
    "read_only": frozenset({READ_ACCOUNT, LIST_CALENDARS, READ_EVENTS, READ_FREE_BUSY}),
    "write_only": frozenset({CREATE_EVENT, DELETE_EVENT}),
}

# A scope that grants others as well (Cronofy: read_events implies read_free_busy).
IMPLIED = {READ_EVENTS: frozenset({READ_FREE_BUSY})}

KNOWN = ALL | frozenset(SHORTHANDS)


def expand(granted: str | list[str] | set[str] | frozenset[str]) -> frozenset[str]:
    """The effective scopes of a space-separated scope string or a collection of names."""
    names = granted.split() if isinstance(granted, str) else granted
    effective: set[str] = set()
    for name in names:
        effective |= SHORTHANDS.get(name, {name})
    for name in list(effective):
        effective |= IMPLIED.get(name, frozenset())
    return frozenset(effective & ALL)


def granting(scope: str) -> frozenset[str]:
    """Every scope name (shorthands included) whose grant includes `scope`."""
    return frozenset(name for name in KNOWN if scope in expand([name]))


def stored_scope_regex(scope: str) -> str:
    """A regex matching a token's stored (space-separated) scope string that grants `scope`,
    for filtering tokens in the database."""
    names = "|".join(sorted(granting(scope)))
    return rf"(^| )({names})( |$)"
