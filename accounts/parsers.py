"""Request parsers for the API (a module of its own: DRF imports DEFAULT_PARSER_CLASSES while
rest_framework.views itself loads, so this must not import it)."""

from rest_framework import exceptions
from rest_framework.parsers import JSONParser


class CronofyJSONParser(JSONParser):
    """DRF's JSON parser, but absurdly nested JSON (`[[[[…`) is a parse error like any other
    malformed body (422 errors.invalid_json through `cronofy_exception_handler`): the json
    module gives up with a RecursionError, which DRF would let through as a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from exc
