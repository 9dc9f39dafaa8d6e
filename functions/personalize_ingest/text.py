"""Text a record may not carry: a lone UTF-16 surrogate.

JSON lets a producer write ``"\\ud800"`` (half of a surrogate pair, without the other half). Python decodes it into
a ``str`` that cannot be encoded as UTF-8, so the request could not be serialised as sent, or the service would get
an escape it cannot store. Such a record is rejected locally, naming the field, before any call.
"""

from __future__ import annotations

from typing import Any

from personalize_ingest.model import RecordRejected

INVALID_UNICODE = "invalid_unicode"


def check_unicode(value: Any) -> None:
    """Raise :class:`RecordRejected` (``invalid_unicode``) when a string or key of ``value`` (a decoded JSON value
    or CSV row) holds a lone surrogate; the reason names where, never the text itself."""
    where = _lone_surrogate(value, "")
    if where is not None:
        raise RecordRejected(
            INVALID_UNICODE,
            f"{where} holds a lone UTF-16 surrogate (half of a surrogate pair), which is not valid Unicode text",
        )


def _lone_surrogate(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return (path or "the record") if not _encodes(value) else None
    if isinstance(value, dict):
        for key, member in value.items():
            if isinstance(key, str) and not _encodes(key):
                return f"a key of {path or 'the record'}"
            found = _lone_surrogate(member, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, member in enumerate(value):
            found = _lone_surrogate(member, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _encodes(text: str) -> bool:
    # NOTE: the ASCII fast path (str.isascii is O(1) on CPython's compact strings) skips the encode for nearly
    # every string; only a non-ASCII one is encoded, and that raises exactly on a surrogate.
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
