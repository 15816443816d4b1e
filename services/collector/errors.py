"""The collector's own error codes."""

from __future__ import annotations

from splitstream.errors import BadRequest


class MalformedJson(BadRequest):
    """The body is not JSON at all (400); JSON of the wrong shape is an ``InvalidRequest`` (422)."""

    code = "malformed_json"
