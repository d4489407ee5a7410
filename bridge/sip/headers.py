"""Header fields as an ordered multi-map: names looked up without case, compact forms read as
their long names (RFC 3261 §7.3.3 and the extensions that define one), rows kept in order with
their raw values, and list-valued headers split into elements on commas that are not inside a
quoted string or angle brackets (§7.3.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from bridge.sip.grammar import is_token, split_top_level

COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",  # RFC 3841
    "b": "Referred-By",  # RFC 3892
    "c": "Content-Type",
    "d": "Request-Disposition",  # RFC 3841
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",  # RFC 3841
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",  # RFC 4474
    "o": "Event",  # RFC 6665
    "r": "Refer-To",  # RFC 3515
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",  # RFC 6665
    "v": "Via",
    "x": "Session-Expires",  # RFC 4028
    "y": "Identity",  # RFC 8224
}

# Headers whose grammar is a comma-separated list of elements that cannot themselves hold a
# bare comma. Every other header (Date, WWW-Authenticate, Authorization, unknown ones…) is one
# value per row, whatever commas it contains.
LIST_HEADERS = frozenset(
    {
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Request-Disposition",
        "Require",
        "Route",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    }
)

_KNOWN = LIST_HEADERS | {
    "Authentication-Info",
    "Authorization",
    "CSeq",
    "Call-ID",
    "Content-Disposition",
    "Content-Length",
    "Content-Type",
    "Date",
    "Event",
    "Expires",
    "From",
    "Identity",
    "Identity-Info",
    "MIME-Version",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "RAck",
    "RSeq",
    "Refer-Sub",
    "Refer-To",
    "Referred-By",
    "Replaces",
    "Reply-To",
    "Retry-After",
    "Server",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Timestamp",
    "To",
    "User-Agent",
    "WWW-Authenticate",
}
_CANONICAL = {name.lower(): name for name in _KNOWN} | COMPACT_FORMS
_LIST_KEYS = frozenset(name.lower() for name in LIST_HEADERS)


def canonical_name(name: str) -> str:
    """The long, conventionally capitalized name of a known header (compact forms included);
    any other name as written."""
    return _CANONICAL.get(name.lower(), name)


_KEYS = {lower: canonical.lower() for lower, canonical in _CANONICAL.items()}


def _key(name: str) -> str:
    """What rows named `name` are found by: the lower-case canonical name."""
    lower = name.lower()
    return _KEYS.get(lower, lower)


def elements(name: str, value: str) -> list[str]:
    """One row's elements: split on top-level commas when `name` is a list header."""
    return _elements_by_key(_key(name), value)


def _elements_by_key(key: str, value: str) -> list[str]:
    return split_top_level(value) if key in _LIST_KEYS else [value]


class Headers:
    """Header rows in message order: (canonical name, raw value) pairs.

    Values are raw text: one row of a list header may hold several elements (see `values`).
    """

    __slots__ = ("_elements", "_index", "_keys", "_rows")

    def __init__(self, rows: Iterable[tuple[str, str]] = ()) -> None:
        self._rows: list[tuple[str, str]] = []
        # The lower-case canonical name of each row, so lookups need not recompute it.
        self._keys: list[str] = []
        # Values by key, made at the first lookup after a change: a received message is read
        # far more than it is changed (its checks, matching, dialog and answer looked up a
        # header ~40 times, each a scan of every row).
        self._index: dict[str, list[str]] | None = None
        self._elements: dict[str, list[str]] = {}
        for name, value in rows:
            self.add(name, value)

    def _changed(self) -> None:
        self._index = None
        if self._elements:
            self._elements = {}

    def _values_by_key(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for key, (_, value) in zip(self._keys, self._rows, strict=True):
                index.setdefault(key, []).append(value)
            self._index = index
        return index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self._values_by_key()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._rows == other._rows

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._rows!r})"

    def get(self, name: str) -> str | None:
        """The raw value of the first row named `name`."""
        found = self._values_by_key().get(_key(name))
        return found[0] if found else None

    def get_all(self, name: str) -> list[str]:
        """The raw value of every row named `name`, in order."""
        return list(self._values_by_key().get(_key(name), ()))

    def count(self, name: str) -> int:
        return len(self._values_by_key().get(_key(name), ()))

    def values(self, name: str) -> list[str]:
        """Every element of header `name`: rows of a list header split on top-level commas
        (empty elements kept, for the element parsers to refuse), other headers row by row."""
        key = _key(name)
        found = self._elements.get(key)
        if found is None:
            rows = self._values_by_key().get(key, ())
            found = [element for row in rows for element in _elements_by_key(key, row)]
            self._elements[key] = found
        return list(found)

    def add(self, name: str, value: str) -> None:
        if not is_token(name):
            raise ValueError(f"bad header name {name!r}")
        if "\r" in value or "\n" in value:
            raise ValueError(f"line break in the value of {name}")
        canonical = canonical_name(name)
        self._rows.append((canonical, value))
        self._keys.append(canonical.lower())
        self._changed()

    def set(self, name: str, value: str) -> None:
        """Replace every row named `name` by one, where the first was (else at the end)."""
        key = _key(name)
        index = self._keys.index(key) if key in self._keys else len(self._keys)
        self.remove(name)
        self.add(name, value)
        self._rows.insert(index, self._rows.pop())
        self._keys.insert(index, self._keys.pop())
        self._changed()

    def replace_first(self, name: str, value: str) -> None:
        """Replace the value of the first row named `name`, keeping the others."""
        if not is_token(name) or "\r" in value or "\n" in value:
            raise ValueError(f"bad header {name!r}")
        index = self._keys.index(_key(name))
        self._rows[index] = (self._rows[index][0], value)
        self._changed()

    def remove(self, name: str) -> None:
        key = _key(name)
        kept = [(k, row) for k, row in zip(self._keys, self._rows, strict=True) if k != key]
        self._keys = [k for k, _ in kept]
        self._rows = [row for _, row in kept]
        self._changed()

    def copy(self) -> Headers:
        copied = Headers()
        copied._rows = list(self._rows)
        copied._keys = list(self._keys)
        copied._changed()
        return copied
