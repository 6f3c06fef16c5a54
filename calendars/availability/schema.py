"""OpenAPI schemas of the availability bodies, as raw JSON Schema: the bodies are parsed by
calendars/availability/request.py, and a serializer could not say "a sub, or an object with
one" or "{"minutes": n}, or n" (both of which pycronofy sends)."""

from calendars.availability.request import (
    MAX_BUFFER_MINUTES,
    MAX_DURATION_MINUTES,
    MAX_GROUPS,
    MAX_QUERY_PERIODS,
    MAX_QUERY_SLOTS,
    MAX_RESULTS,
    START_INTERVALS,
)
from calendars.serializers import BODY_TIME, QUERY_TZID

TIME = {**BODY_TIME, "example": "2026-12-01T09:00:00Z"}


def _minutes(minimum: int, maximum: int, enum=None) -> dict:
    number = {"type": "integer", "minimum": minimum, "maximum": maximum}
    if enum:
        number = {"type": "integer", "enum": list(enum)}
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {"minutes": number},
                "required": ["minutes"],
            },
            number,
        ]
    }


PERIOD = {
    "type": "object",
    "properties": {"start": TIME, "end": TIME},
    "required": ["start", "end"],
}
PERIODS = {"type": "array", "items": PERIOD, "minItems": 1, "maxItems": MAX_QUERY_PERIODS}
IDS = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 255},
    "minItems": 1,
}
MEMBER = {
    "type": "object",
    "properties": {
        "sub": {"type": "string", "minLength": 1, "maxLength": 255, "description": "An account"},
        "calendar_ids": IDS,
        # Described, not spelled out: each {start, end} as in query_periods (a nested schema
        # here makes generating test requests from the document very slow).
        "available_periods": {
            "type": "array",
            "items": {"type": "object"},
            "minItems": 1,
            "description": "Periods ({start, end}) this member may be booked in",
        },
        "managed_availability": {"type": "boolean"},
        "availability_rule_ids": IDS,
    },
    "required": ["sub"],
}
GROUP = {
    "type": "object",
    "properties": {
        "members": {"type": "array", "items": MEMBER, "minItems": 1},
        "required": {
            "anyOf": [{"type": "string", "enum": ["all"]}, {"type": "integer", "minimum": 1}]
        },
    },
    "required": ["members"],
}
_SIDE = {
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "minutes": {"type": "integer", "minimum": 0, "maximum": MAX_BUFFER_MINUTES},
                "minimum": _minutes(0, MAX_BUFFER_MINUTES),
                "maximum": _minutes(0, MAX_BUFFER_MINUTES),
            },
        },
        {"type": "integer", "minimum": 0, "maximum": MAX_BUFFER_MINUTES},
    ]
}
COMMON_PROPERTIES = {
    "participants": {"type": "array", "items": GROUP, "minItems": 1, "maxItems": MAX_GROUPS},
    "required_duration": _minutes(1, MAX_DURATION_MINUTES),
    "start_interval": _minutes(1, 60, enum=START_INTERVALS),
    "buffer": {"type": "object", "properties": {"before": _SIDE, "after": _SIDE}},
}
AVAILABILITY_REQUEST = {
    "type": "object",
    "properties": {
        **COMMON_PROPERTIES,
        "query_periods": PERIODS,
        "available_periods": {**PERIODS, "description": "Another name of query_periods"},
        "query_slots": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_QUERY_SLOTS,
            "items": {"type": "object", "properties": {"start": TIME}, "required": ["start"]},
        },
        "response_format": {"type": "string", "enum": ["periods", "slots", "overlapping_slots"]},
        "max_results": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS},
    },
    "required": ["participants", "required_duration"],
    "description": "Give one of query_periods, available_periods or query_slots.",
}
_AVAILABLE = {
    "type": "object",
    "properties": {
        "start": TIME,
        "end": TIME,
        "participants": {
            "type": "array",
            "items": {"type": "object", "properties": {"sub": {"type": "string"}}},
        },
    },
    "required": ["start", "end", "participants"],
}
FRESHNESS = {
    "type": "object",
    "properties": {
        "calendar_id": {"type": "string"},
        "state": {"type": "string", "enum": ["ok", "lagging", "failing", "disconnected"]},
        "source": {"type": "string", "enum": ["push", "poll"]},
        "last_synced_at": {"type": "string", "format": "date-time", "nullable": True},
        "lag_seconds": {"type": "integer", "nullable": True},
    },
}
STALE_MEMBERS = {
    "type": "array",
    "description": "Members answered from a cache that is not current (lagging, failing or "
    "disconnected calendars), with those calendars; empty when every member is current.",
    "items": {
        "type": "object",
        "properties": {
            "sub": {"type": "string"},
            "calendars": {"type": "array", "items": FRESHNESS},
        },
    },
}
AVAILABILITY_RESPONSE = {
    "type": "object",
    "properties": {
        "available_periods": {"type": "array", "items": _AVAILABLE},
        "available_slots": {"type": "array", "items": _AVAILABLE},
        "stale_members": STALE_MEMBERS,
    },
    "required": ["stale_members"],
}

WEEKLY_PERIOD = {
    "type": "object",
    "properties": {
        "day": {
            "type": "string",
            "enum": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
        },
        "start_time": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
        "end_time": {"type": "string", "pattern": "^([01][0-9]|2[0-4]):[0-5][0-9]$"},
    },
    "required": ["day", "start_time", "end_time"],
}
AVAILABILITY_RULE = {
    "type": "object",
    "properties": {
        "availability_rule_id": {"type": "string", "minLength": 1, "maxLength": 255},
        "tzid": QUERY_TZID,
        "calendar_ids": IDS,
        "weekly_periods": {"type": "array", "items": WEEKLY_PERIOD, "minItems": 1, "maxItems": 70},
    },
    "required": ["availability_rule_id", "tzid", "weekly_periods"],
    "description": "tzid is an IANA zone; each end_time is after its start_time.",
}
_RULE_AS_STORED = {
    **AVAILABILITY_RULE,
    "properties": {
        **AVAILABILITY_RULE["properties"],
        "calendar_ids": {"type": "array", "items": {"type": "string"}},
    },
}
AVAILABILITY_RULE_RESPONSE = {
    "type": "object",
    "properties": {"availability_rule": _RULE_AS_STORED},
    "required": ["availability_rule"],
}
AVAILABILITY_RULES_RESPONSE = {
    "type": "object",
    "properties": {"availability_rules": {"type": "array", "items": _RULE_AS_STORED}},
    "required": ["availability_rules"],
}
AVAILABLE_PERIOD = {
    "type": "object",
    "properties": {
        "available_period_id": {"type": "string", "minLength": 1, "maxLength": 255},
        "start": TIME,
        "end": TIME,
    },
    "required": ["available_period_id", "start", "end"],
    "description": "end is after start.",
}
AVAILABLE_PERIOD_DELETE = {
    "type": "object",
    "properties": {"available_period_id": {"type": "string", "minLength": 1, "maxLength": 255}},
    "required": ["available_period_id"],
}
AVAILABLE_PERIODS_RESPONSE = {
    "type": "object",
    "properties": {
        "pages": {
            "type": "object",
            "properties": {"current": {"type": "integer"}, "total": {"type": "integer"}},
        },
        "available_periods": {"type": "array", "items": AVAILABLE_PERIOD},
    },
    "required": ["available_periods"],
}

SEQUENCE_STEP = {
    "type": "object",
    "properties": {
        "sequence_id": {"type": "string", "minLength": 1, "maxLength": 255},
        "ordinal": {"type": "integer"},
        **COMMON_PROPERTIES,
        # Described, not spelled out (groups as in POST /v1/availability): nested once more
        # in a sequence, the full schema makes generating test requests far too slow.
        "participants": {
            "type": "array",
            "items": {"type": "object"},
            "minItems": 1,
            "maxItems": MAX_GROUPS,
            "description": "Groups of members, as in POST /v1/availability",
        },
        "available_periods": PERIODS,
        "event": {"type": "object", "description": "Accepted and ignored"},
    },
    "required": ["sequence_id", "ordinal", "participants", "required_duration"],
}
SEQUENCED_REQUEST = {
    "type": "object",
    "properties": {
        "sequence": {"type": "array", "items": SEQUENCE_STEP, "minItems": 1, "maxItems": 10},
        "available_periods": PERIODS,
    },
    "required": ["sequence"],
    "description": "Each step needs available_periods, its own or the sequence's; "
    "buffer.before.minimum and maximum bound the gap after the previous step.",
}
SEQUENCED_RESPONSE = {
    "type": "object",
    "properties": {
        "sequences": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "sequence": {
                        "type": "array",
                        "items": {
                            **_AVAILABLE,
                            "properties": {
                                **_AVAILABLE["properties"],
                                "sequence_id": {"type": "string"},
                            },
                        },
                    }
                },
            },
        },
        "stale_members": STALE_MEMBERS,
    },
    "required": ["sequences", "stale_members"],
}
