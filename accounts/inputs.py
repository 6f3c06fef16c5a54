"""Request input that no view, parser or query may see, refused once, here, for every path.

PostgreSQL's text type cannot hold a NUL character, and psycopg cannot encode a lone UTF-16
surrogate (JSON "\\ud800"): either one reaching a query was a 500 (DataError). JSON nested
100,000 deep made the json module raise RecursionError, and a body over
DATA_UPLOAD_MAX_MEMORY_SIZE got Django's HTML 400. The answers, per family of endpoints, are in
docs/api.md, "Errors": /v1 a Cronofy 422 or 413, /oauth an RFC 6749 `invalid_request`, hosted
pages Django's 400 page.
"""

import json
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse, QueryDict

from accounts.errors import is_api_path, not_found
from accounts.rest import error_entry

# Cronofy's documents nest a handful of levels (a batch entry's event's location: 5); 32
# leaves room without letting a parser recurse far.
MAX_JSON_DEPTH = 32

V1_PREFIX = "/v1/"
OAUTH_PREFIX = "/oauth/"


@dataclass(frozen=True)
class InputProblem:
    """Why a request is refused: `kind` is too_large, bad_path, invalid_characters, too_deep
    or malformed; `field` names the input (a query parameter, a JSON path, "base")."""

    kind: str
    field: str
    description: str


def is_storable_text(value: str) -> bool:
    """No NUL and encodable as UTF-8 (no lone surrogate): text PostgreSQL accepts."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# A string runs to its closing quote or to the end of the text, so that a match starting at a
# quote never fails: an unterminated string cannot make the search retry at every later quote.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays and objects deeper than `limit`, found without parsing
    (and so without recursion): strings are cut out first, so brackets inside them do not
    count. Regular expressions keep a 2.5 MB body in C; only the brackets are looped over."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > limit:
            return True
    return False


def first_unstorable_path(value) -> str | None:
    """The dotted path of the first key or string in parsed JSON that is not storable text
    ("base" for the document itself), or None. Iterative: the depth is bounded already, but
    a stack costs nothing."""
    stack = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not is_storable_text(item):
                return path or "base"
        elif isinstance(item, dict):
            for key, child in item.items():
                if not is_storable_text(key):
                    return path or "base"
                stack.append((f"{path}.{key}" if path else key, child))
        elif isinstance(item, list):
            stack.extend((path, child) for child in item)
    return None


def _first_bad_field(data: QueryDict) -> str | None:
    for key, values in data.lists():
        if not is_storable_text(key):
            return "base"
        if not all(is_storable_text(value) for value in values):
            return key
    return None


def _characters(field: str) -> InputProblem:
    return InputProblem(
        "invalid_characters", field, f"{field} holds a NUL character or invalid Unicode"
    )


def _body_too_large(request) -> bool:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return limit is not None and length > limit


def _json_problem(body: bytes) -> InputProblem | None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None  # the endpoint's own parser answers undecodable bodies
    if json_depth_exceeds(text):
        description = f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels"
        return InputProblem("too_deep", "base", description)
    try:
        data = json.loads(text)
    except ValueError:
        return None  # malformed JSON: the endpoint's own parser answers it
    path = first_unstorable_path(data)
    if path is None:
        return None
    # Reported on "base", as the write endpoints' own check does; the path is in the text.
    return InputProblem("invalid_characters", "base", _characters(path).description)


def _media_type(request) -> str:
    return request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()


def _body_problem(request) -> InputProblem | None:
    media_type = _media_type(request)
    if media_type == "application/json" or media_type.endswith("+json"):
        return _json_problem(request.body)
    if media_type == "application/x-www-form-urlencoded":
        field = _first_bad_field(QueryDict(request.body, encoding=request.encoding))
        return None if field is None else _characters(field)
    if media_type == "multipart/form-data" and request.method == "POST":
        request.body  # noqa: B018 -- read (size-checked) first, so views may still read it
        field = _first_bad_field(request.POST)
        return None if field is None else _characters(field)
    return None


def find_input_problem(request) -> InputProblem | None:
    """The first reason to refuse this request's path, query, cookies or body, or None."""
    if _body_too_large(request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return InputProblem("too_large", "base", f"the body is larger than {limit} bytes")
    try:
        if not is_storable_text(request.path_info):
            # No path we serve holds one: the object it names cannot exist.
            return InputProblem("bad_path", "base", "no such path")
        if field := _first_bad_field(request.GET):
            return _characters(field)
        if not all(is_storable_text(f"{k}{v}") for k, v in request.COOKIES.items()):
            return _characters("base")
        return _body_problem(request)
    except RequestDataTooBig:
        return InputProblem("too_large", "base", "the body is too large")
    except SuspiciousOperation as exc:  # too many fields, a broken multipart body
        return InputProblem("malformed", "base", str(exc) or "the request is malformed")


_V1_ANSWERS = {
    "too_large": (413, "errors.too_large"),
    "invalid_characters": (422, "errors.invalid_characters"),
    "too_deep": (422, "errors.invalid_json"),
    "malformed": (422, "errors.invalid_body"),
}


def refusal_for(request, problem: InputProblem) -> JsonResponse:
    """The answer of the family of endpoints the request's path belongs to; BadRequest
    (Django's 400 page) for hosted pages; a path that cannot exist is a 404 everywhere."""
    path = request.path_info
    if problem.kind == "bad_path":
        if is_api_path(path):
            return not_found(request)
        raise Http404(problem.description)
    if path.startswith(V1_PREFIX):
        status, key = _V1_ANSWERS[problem.kind]
        body = {"errors": {problem.field: [error_entry(key, problem.description)]}}
        return JsonResponse(body, status=status)
    if path.startswith(OAUTH_PREFIX):
        status = 413 if problem.kind == "too_large" else 400
        body = {"error": "invalid_request", "error_description": problem.description}
        return JsonResponse(body, status=status)
    raise BadRequest(problem.description)


class RequestInputMiddleware:
    """Refuses hostile input (see the module docstring) before any view or session lookup."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = find_input_problem(request)
        if problem is not None:
            return refusal_for(request, problem)
        return self.get_response(request)
