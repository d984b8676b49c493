"""JSON decoded so that the gateway and the engine cannot read two different objects.

Docker's decoder (Go's encoding/json) matches field names case-insensitively and keeps the last of duplicate
keys: {"User": "1000", "user": "0"} is uid 0 to the engine. So every object, at every level, is refused when
two of its keys are equal or differ only by case, and keys must be printable ASCII (Go also folds some
non-ASCII letters, such as the Kelvin sign, onto ASCII ones). NaN, Infinity and numbers past a float's range,
which Python reads and Go does not, are refused too.
"""

from __future__ import annotations

import json
import math
import re
from http import HTTPStatus
from typing import Any

from docker_policy.refusal import Refused

PRINTABLE_KEY = re.compile(r"[\x21-\x7e]{1,256}")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, str] = {}
    for key, _value in pairs:
        if not PRINTABLE_KEY.fullmatch(key):
            raise Refused(f"the JSON key {key!r} is not printable ASCII", HTTPStatus.BAD_REQUEST)
        folded = key.casefold()
        if folded in seen:
            first = seen[folded]
            why = "twice" if first == key else f"twice, as {first!r} and {key!r} (the engine ignores case)"
            raise Refused(f"the JSON key {key!r} appears {why}", HTTPStatus.BAD_REQUEST)
        seen[folded] = key
    return dict(pairs)


def _constant(name: str) -> None:
    raise Refused(f"the JSON value {name} is not JSON", HTTPStatus.BAD_REQUEST)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: Python reads infinity, Go refuses the document
        raise Refused(f"the JSON number {text[:40]} is out of range", HTTPStatus.BAD_REQUEST)
    return value


def decode(body: bytes) -> Any:
    """The JSON value of a UTF-8 body, or Refused naming what is ambiguous."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Refused(f"the body is not UTF-8 ({err.reason} at byte {err.start})", HTTPStatus.BAD_REQUEST) from err
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_float=_float)
    except ValueError as err:  # json.JSONDecodeError, and RecursionError's cousin for absurd nesting
        raise Refused(f"the body is not JSON: {err}", HTTPStatus.BAD_REQUEST) from err
    except RecursionError as err:
        raise Refused("the body nests too deeply", HTTPStatus.BAD_REQUEST) from err


def encode(value: Any) -> bytes:
    """The canonical JSON the gateway forwards: sorted keys, no spaces, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")
