"""What a request says, in any client's wire form: action, version, parameters, signature style.

V3 clients name the action in ``x-acs-action``/``x-acs-version``; RPC (V2) clients, the legacy SDK
and the aliyun CLI put ``Action``/``Version`` and the common parameters in the query or in an
``application/x-www-form-urlencoded`` body. Older clients also send a list as flat parameters
(``DiskDeviceMapping.1.OSSBucket``), which is folded here into the JSON string newer ones send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from pipeline.ens.signing_v2 import COMMON

FORM_TYPE = "application/x-www-form-urlencoded"
_FLAT = re.compile(r"(DiskDeviceMapping)\.([1-9][0-9]{0,2})\.(\w+)")


@dataclass(frozen=True, slots=True)
class Wire:
    """One request, decoded."""

    action: str
    version: str
    query: tuple[tuple[str, str], ...]
    """The query decoded with ``parse_qsl`` (``+`` as space, blanks kept)."""
    form: tuple[tuple[str, str], ...]
    """The form body's pairs (empty unless the body is form-encoded)."""
    params: dict[str, str]
    """The action's own parameters: query and form, common RPC parameters left out, lists folded."""

    @property
    def rpc_signed(self) -> bool:
        """A V2 request: ``Signature`` is a parameter (in the query or the form)."""
        return any(k == "Signature" for k, _ in (*self.query, *self.form))


def decode(headers: Mapping[str, str], query_string: bytes, body: bytes) -> Wire:
    """Decode a request; ``headers`` keys lower-case."""
    query = tuple(parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True))
    form: tuple[tuple[str, str], ...] = ()
    if body and headers.get("content-type", "").startswith(FORM_TYPE):
        form = tuple(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    merged = dict(query)
    merged.update(form)
    action = headers.get("x-acs-action") or merged.get("Action", "")
    version = headers.get("x-acs-version") or merged.get("Version", "")
    params = {k: v for k, v in merged.items() if k not in COMMON}
    return Wire(action, version, query, form, fold_lists(params))


def fold_lists(params: dict[str, str]) -> dict[str, str]:
    """``DiskDeviceMapping.N.Field`` pairs become one ``DiskDeviceMapping`` JSON array, by N.

    When the JSON form is sent too, it wins and the flat pairs are kept as they came.
    """
    entries: dict[int, dict[str, str]] = {}
    rest: dict[str, str] = {}
    if "DiskDeviceMapping" in params:
        return params
    for key, value in params.items():
        match = _FLAT.fullmatch(key)
        if match is None:
            rest[key] = value
        else:
            entries.setdefault(int(match[2]), {})[match[3]] = value
    if entries:
        ordered: Sequence[dict[str, str]] = [entries[n] for n in sorted(entries)]
        rest["DiskDeviceMapping"] = json.dumps(list(ordered), ensure_ascii=False, separators=(",", ":"))
    return rest
