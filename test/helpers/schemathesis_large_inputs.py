"""Schemathesis hooks that grow generated requests towards and past the gateway's bounds.

Loaded through SCHEMATHESIS_HOOKS by the large-input pass of
test/integration/openapi-fuzz.test.ts. Schemathesis on its own draws small values; this
module takes each case it generates and makes one or two of its parts large: a string of the body (to the longest content, one past it, past the body limit),
an array of the body (to the most messages, stop sequences, tools, and past), a number
(max_tokens at and past its bound, and numbers no double holds), a header value (to and
past Node's 16 KiB of headers), a path id (to and past 128 and the router's 256) or a
query value. Hypothesis draws every choice, so a seed replays the same run.

Schemathesis revalidates a case whose parts a hook changed, so a case grown past a bound
the document states counts as negative and its usual checks (negative_data_rejection,
status_code_conformance, ...) hold it to a documented rejection. The check
`large_input_refused` adds what the document cannot say: a JSON body over the body limit
is a 413, headers over 16 KiB are a 431 (and headers well under never are), and a 400 for
an otherwise valid case grown past a bound names the field it grew.

The bounds come from the test in FUZZ_LIMITS (JSON), which reads them from contracts/.
"""

import copy
import json
import os
from dataclasses import dataclass

import schemathesis
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

LIMITS = json.loads(os.environ["FUZZ_LIMITS"])
BODY_BYTES = LIMITS["body_bytes"]
CONTENT_CHARS = LIMITS["content_chars"]
HEADER_BYTES = LIMITS["header_bytes"]
# The most problems a 400 lists (gateway/errors.ts, parseInput).
ISSUES_NAMED = 10
# Headers this far from Node's bound are plainly under or over it, whatever else the request carries.
HEADER_SLACK = 1024

# Sizes at and one past each bound the document and the gateway state (short strings,
# content, ids, the router's longest parameter), and well past the body limit. The largest
# come first: Hypothesis draws the first of a list more often than the others.
STRING_CHARS = [BODY_BYTES + 1, CONTENT_CHARS + 1, CONTENT_CHARS, BODY_BYTES // 2, 1025, 257]
ARRAY_ITEMS = sorted({n + d for n in LIMITS["array_items"] for d in (0, 1)} | {20_000}, reverse=True)
NUMBERS = [10**400, LIMITS["max_tokens"] + 1, LIMITS["max_tokens"], 2**31, 2**53 + 1]
ID_CHARS = [LIMITS["param_chars"] + 1, LIMITS["id_chars"] + 1, 4096, HEADER_BYTES + HEADER_SLACK, LIMITS["param_chars"], LIMITS["id_chars"]]
HEADER_CHARS = [HEADER_BYTES - 2 * HEADER_SLACK, HEADER_BYTES + HEADER_SLACK, 8 * 1024, 4 * HEADER_BYTES, 129]
QUERY_CHARS = [8 * 1024, HEADER_BYTES + HEADER_SLACK, 1025, 65]
# One byte, one that JSON sends as \u00e9, one outside the BMP (one code point, two UTF-16
# units, sent as two escapes), and one that JSON escapes as \".
FILL = ["a", "\u00e9", "\U0001f600", '"']
# Numbers the body schemas bound that a generated body may lack.
NUMERIC_FIELDS = {
    "/v1/chat/completions": ["max_tokens", "max_completion_tokens"],
    "/v1/conversations/{id}/messages": ["max_tokens"],
    "/v1/responses": ["max_output_tokens"],
}


# The router's bound on a path parameter (gateway/app.ts, maxParamLength).
ROUTER_PARAM_CHARS = 256


@dataclass(frozen=True)
class Growth:
    part: str
    name: str
    size: int

    def __str__(self) -> str:
        return f"{self.part} {self.name or '(root)'} to {self.size}"


@dataclass(frozen=True)
class Grown:
    was_negative: bool
    growths: tuple[Growth, ...]


# What the hook did to each case, by case id, for the check.
GROWN: dict[str, Grown] = {}


def leaves(value, kinds, path=()):
    """Paths to the values of `kinds` in a JSON value (bools are not numbers here)."""
    if isinstance(value, kinds) and not isinstance(value, bool):
        yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, kinds, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, kinds, (*path, i))


def replaced(value, path, new):
    """A copy of `value` with the item at `path` replaced by `new`."""
    if not path:
        return new
    out = copy.copy(value)
    out[path[0]] = new if len(path) == 1 else replaced(value[path[0]], path[1:], new)
    return out


def name_of(path) -> str:
    """The field a path ends in, as the gateway's messages name it (messages.3.content)."""
    return ".".join(str(p) for p in path)


def body_paths(case, kinds):
    return list(leaves(case.body, kinds)) if is_json_body(case) else []


def is_json_body(case) -> bool:
    return case.media_type is not None and "json" in case.media_type and isinstance(case.body, (dict, list, str, int, float))


def grow_string(draw, case):
    path = draw(st.sampled_from(body_paths(case, str)))
    size = draw(st.sampled_from(STRING_CHARS))
    case.body = replaced(case.body, path, draw(st.sampled_from(FILL)) * size)
    return Growth("body", name_of(path), size)


def grow_array(draw, case):
    path = draw(st.sampled_from([p for p in body_paths(case, list) if get(case.body, p)]))
    items = get(case.body, path)
    # Past the body limit the count no longer matters (413): stop at a few times the limit.
    item_bytes = max(1, len(json.dumps(items)) // len(items))
    size = min(draw(st.sampled_from(ARRAY_ITEMS)), max(2, 4 * BODY_BYTES // item_bytes))
    case.body = replaced(case.body, path, [copy.deepcopy(items[i % len(items)]) for i in range(size)])
    return Growth("body", name_of(path), size)


def grow_number(draw, case):
    fields = [(f,) for f in NUMERIC_FIELDS.get(case.operation.path, [])] if isinstance(case.body, dict) else []
    path = draw(st.sampled_from(sorted(set(body_paths(case, (int, float))) | set(fields))))
    value = draw(st.sampled_from(NUMBERS))
    case.body = replaced(case.body, path, value)
    return Growth("body", name_of(path), value)


def grow_header(draw, case):
    headers = CaseInsensitiveDict(case.headers or {})
    # Not Authorization: the run's own header replaces it when the case is sent.
    names = {*headers, *(p.name for p in case.operation.headers), "X-Padding"} - {"Authorization", "authorization"}
    name = draw(st.sampled_from(sorted(names)))
    size = draw(st.sampled_from(HEADER_CHARS))
    headers[name] = "a" * size
    case.headers = headers
    return Growth("header", name, size)


def grow_path(draw, case):
    name = draw(st.sampled_from(sorted(case.path_parameters)))
    size = draw(st.sampled_from(ID_CHARS))
    case.path_parameters = {**case.path_parameters, name: draw(st.sampled_from(["a", "\u00e9"])) * size}
    return Growth("path", name, size)


def grow_query(draw, case):
    name = draw(st.sampled_from(sorted(case.query)))
    size = draw(st.sampled_from(QUERY_CHARS))
    case.query = {**case.query, name: "a" * size}
    return Growth("query", name, size)


def get(value, path):
    for p in path:
        value = value[p]
    return value


GROWERS = [
    (grow_string, lambda c: bool(body_paths(c, str))),
    (grow_array, lambda c: any(get(c.body, p) for p in body_paths(c, list))),
    (grow_number, lambda c: bool(body_paths(c, (int, float))) or (isinstance(c.body, dict) and c.operation.path in NUMERIC_FIELDS)),
    (grow_header, lambda c: True),
    (grow_path, lambda c: bool(c.path_parameters)),
    (grow_query, lambda c: bool(c.query)),
]


@st.composite
def grown(draw, case):
    # Read before any part changes: reading it after revalidates the case as sent.
    was_negative = case.meta is not None and case.meta.generation.mode.is_negative
    growths = []
    # One growth or two (the first pass has the cases as generated).
    for _ in range(draw(st.sampled_from([1, 2]))):
        grow = draw(st.sampled_from([g for g, applies in GROWERS if applies(case)]))
        growths.append(grow(draw, case))
    GROWN[case.id] = Grown(was_negative, tuple(growths))
    return case


@schemathesis.hook
def flatmap_case(context, case):
    return grown(case)


def head_bytes(request) -> int:
    """Bytes of the request line and headers as sent, the way Node's parser bounds them."""
    line = len(request.method) + len(request.path_url) + len(" HTTP/1.1\r\n")
    return line + sum(len(k) + len(v) + 4 for k, v in request.headers.items()) + 2


@schemathesis.check
def large_input_refused(ctx, response, case):
    """A grown request gets the rejection its size calls for, and a 400 names what it grew."""
    record = GROWN.get(case.id)
    if record is None:
        return None
    request = response.request
    body = request.body or b""
    size = len(body.encode() if isinstance(body, str) else body)
    head = head_bytes(request)
    status = response.status_code
    what = ", ".join(map(str, record.growths))
    if head > HEADER_BYTES + HEADER_SLACK:
        assert status == 431, f"{head} bytes of headers (over {HEADER_BYTES}) answered {status}, not 431 ({what})"
        return None
    assert status != 431 or head > HEADER_BYTES - HEADER_SLACK, f"{head} bytes of headers answered 431 ({what})"
    json_body = "json" in (request.headers.get("content-type") or "")
    # The router refuses a path id past its 256 characters before any body is read: then
    # its 400 comes first, whatever the body.
    router_refused = status == 400 and any(g.part == "path" and g.size > ROUTER_PARAM_CHARS for g in record.growths)
    if size > BODY_BYTES and json_body and not router_refused:
        assert status == 413, f"a body of {size} bytes (over {BODY_BYTES}) answered {status}, not 413 ({what})"
    assert status != 413 or size > BODY_BYTES, f"a body of {size} bytes (at most {BODY_BYTES}) answered 413 ({what})"
    # A case the document held valid until it grew, and not now: the 400 says which field
    # to fix, unless it lists as many problems as the gateway names. Not for grown headers:
    # the gateway reads them after the body, which may break rules across its fields that
    # the document cannot state (and so still count as valid).
    grown_fields = all(g.part != "header" for g in record.growths)
    if status == 400 and grown_fields and not router_refused and not record.was_negative and case.meta is not None and case.meta.generation.mode.is_negative:
        # The message as the client reads it: JSON escapes control characters in field names.
        try:
            message = str(json.loads(response.text)["error"]["message"]).lower()
        except (ValueError, KeyError, TypeError):
            message = response.text.lower()
        named = [g for g in record.growths if g.name.lower() in message]
        assert named or message.count("; ") + 1 >= ISSUES_NAMED, f"the 400 names none of the fields grown past a bound ({what}): {response.text[:500]}"
    return None
