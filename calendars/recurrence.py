"""Cronofy's `recurrence` of an upsert body, validated into the rule the providers are given.

The body says `{"rules": [{"frequency", "interval", "count" | "until", "by_day"}]}`; we keep
one rule as a plain dict (it goes into ManagedEventWrite.desired as it is):
`{"frequency": "daily|weekly|monthly|yearly", "interval": n, "count": n | None,
"until": "YYYY-MM-DD" | None, "by_day": ["monday", ...]}`. `until` is a date, inclusive. The
spelling is strict (lower-case names, JSON numbers), as the OpenAPI document says. One rule
only: Microsoft Graph holds one pattern per series, and a second rule would be lost there.
`by_day` only for weekly rules, the one frequency all three providers express the same way
(Graph's monthly and yearly patterns by weekday need an ordinal that Cronofy's rule lacks).
"""

from datetime import date

from accounts.rest import CronofyValidationError, error_entry

FREQUENCIES = ("daily", "weekly", "monthly", "yearly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_INTERVAL = 999
MAX_COUNT = 730  # two years of a daily series: beyond that, give `until`
FIELD = "recurrence"


# The document's description of the body's `recurrence` (calendars.serializers).
SCHEMA = {
    "type": "object",
    "nullable": True,
    "description": "A recurring series: one rule (absent, null or no rules: a single event)",
    "properties": {
        "rules": {
            "type": "array",
            "maxItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["frequency"],
                "properties": {
                    "frequency": {"type": "string", "enum": list(FREQUENCIES)},
                    "interval": {"type": "integer", "minimum": 1, "maximum": MAX_INTERVAL},
                    "count": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
                    "until": {
                        "type": "string",
                        "format": "date",
                        "description": "Inclusive; instead of count",
                    },
                    "by_day": {
                        "type": "array",
                        "maxItems": 7,
                        "items": {"type": "string", "enum": list(WEEKDAYS)},
                        "description": "Weekly rules only",
                    },
                },
            },
        }
    },
}


def _refuse(field: str, description: str, key: str = "errors.invalid"):
    raise CronofyValidationError({field: [error_entry(key, description)]})


def _positive(rule: dict, name: str, limit: int) -> int | None:
    value = rule.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        _refuse(f"{FIELD}.rules.{name}", f"{name} must be a whole number from 1 to {limit}")
    return value


def _until(rule: dict) -> str | None:
    value = rule.get("until")
    if value is None:
        return None
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return date.fromisoformat(value).isoformat()
    except ValueError:
        _refuse(f"{FIELD}.rules.until", "until must be a date (YYYY-MM-DD)")


def _by_day(rule: dict, frequency: str) -> list[str]:
    value = rule.get("by_day")
    if value in (None, []):
        return []
    if not isinstance(value, list) or len(value) > 7:
        _refuse(f"{FIELD}.rules.by_day", "by_day must list days of the week")
    days = []
    for item in value:
        name = item if isinstance(item, str) else ""
        if name not in WEEKDAYS:
            _refuse(f"{FIELD}.rules.by_day", "by_day must list days such as monday")
        if name not in days:
            days.append(name)
    if frequency != "weekly":
        _refuse(
            f"{FIELD}.rules.by_day",
            "by_day is supported with a weekly frequency only",
            "errors.not_supported",
        )
    return sorted(days, key=WEEKDAYS.index)


def parse_recurrence(value) -> dict | None:
    """The one rule of an upsert's `recurrence`, normalized; None when there is none (absent,
    null, or no rules). Raises CronofyValidationError naming the field."""
    if value is None:
        return None
    if not isinstance(value, dict):
        _refuse(FIELD, "recurrence must be an object with rules")
    rules = value.get("rules")
    if rules in (None, []):
        return None
    if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
        _refuse(f"{FIELD}.rules", "rules must be a list of objects")
    if len(rules) > 1:
        _refuse(f"{FIELD}.rules", "only one recurrence rule is supported", "errors.not_supported")
    rule = rules[0]
    frequency = rule.get("frequency")
    if not isinstance(frequency, str) or frequency not in FREQUENCIES:
        _refuse(f"{FIELD}.rules.frequency", "frequency must be daily, weekly, monthly or yearly")
    count = _positive(rule, "count", MAX_COUNT)
    until = _until(rule)
    if count is not None and until is not None:
        _refuse(f"{FIELD}.rules.count", "give count or until, not both")
    unknown = sorted(set(rule) - {"frequency", "interval", "count", "until", "by_day"})
    if unknown:
        _refuse(
            f"{FIELD}.rules.{unknown[0]}", f"{unknown[0]} is not supported", "errors.not_supported"
        )
    return {
        "frequency": frequency,
        "interval": _positive(rule, "interval", MAX_INTERVAL) or 1,
        "count": count,
        "until": until,
        "by_day": _by_day(rule, frequency),
    }
