"""Paging of list methods (Google AIP-158): the page size a request asks for, and page tokens.

A page token is opaque to callers: the URL-safe base64 of a JSON pair, the listing it belongs to
(the method and the request fields that choose its items, e.g. the client) and the sort key of the
last item answered. The next page starts after that key (a keyset on an indexed sort key, never an
offset), so items added or removed in between make no page repeat or skip another item.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from services.plumbing.errors import FieldViolations

Key = list[str | int]
NOT_A_TOKEN = "not a page token of this listing: pass next_page_token as answered, with the same request"


def page_size(requested: int, default: int, maximum: int, v: FieldViolations) -> int:
    """How many items a page answers: `default` for 0, at most `maximum` (a larger size is cut to
    it, as AIP-158 asks); a negative size is a violation of `page_size`."""
    v.require(requested >= 0, "page_size", f"must not be negative (0: {default}; at most {maximum})")
    return min(requested or default, maximum)


def page_token(listing: Sequence[str], key: Key) -> str:
    """The token of the page after the item whose sort key is `key`."""
    return base64.urlsafe_b64encode(json.dumps([list(listing), key]).encode()).decode()


def page_key(token: str, listing: Sequence[str], types: Sequence[type], v: FieldViolations) -> Key | None:
    """The sort key `token` carries (None: no token, the first page). A token that is malformed, of
    another listing (another method, another request's items) or whose key is not of `types` is a
    violation of `page_token`."""
    if not token:
        return None
    try:
        decoded = json.loads(base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True))
    except ValueError:  # not ASCII, not base64, not JSON
        decoded = None
    if isinstance(decoded, list) and len(decoded) == 2 and decoded[0] == list(listing):
        key = decoded[1]
        if isinstance(key, list) and [type(k) for k in key] == list(types):
            return key
    v.add("page_token", NOT_A_TOKEN)
    return None
