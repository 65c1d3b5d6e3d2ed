"""Valid events as wire JSON, for tests to vary one field at a time."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec

WARD = "21550"  # Phường Nhơn Bình, in the default registry
OTHER_WARD = "21553"
CITY = "540"
PROVINCE = "52"

_ids = itertools.count(1)


def new_id(prefix: str = "ev") -> str:
    return f"{prefix}-{next(_ids)}"


def received(dossier_id: str, unit: str = WARD, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "dossier.received",
        "event_id": new_id(),
        "unit": unit,
        "occurred_at": "2021-04-05T08:00:00+07:00",
        "dossier_id": dossier_id,
        "procedure_code": "1.001612",
        "channel": "direct",
        "service_level": None,
        "due_at": "2021-04-12T17:00:00+07:00",
    }
    event.update(fields)
    return event


def dossier_event(kind: str, dossier_id: str, unit: str = WARD, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": f"dossier.{kind}",
        "event_id": new_id(),
        "unit": unit,
        "occurred_at": "2021-04-08T10:00:00+07:00",
        "dossier_id": dossier_id,
    }
    defaults: dict[str, dict[str, Any]] = {
        "resolved": {"outcome": "approved"},
        "deadline_changed": {"due_at": "2021-04-20T17:00:00+07:00", "reason": "extension"},
        "transferred": {"to_agency": "000.00.12.H08", "interconnect": False},
        "result_returned": {"method": "counter"},
        "supplement_requested": {"note": "thiếu bản sao CCCD"},
    }
    event.update(defaults.get(kind, {}))
    event.update(fields)
    return event


def document(document_id: str, unit: str = WARD, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "document.issued",
        "event_id": new_id(),
        "unit": unit,
        "occurred_at": "2021-04-08T10:00:00+07:00",
        "document_id": document_id,
        "digitally_signed": True,
        "sent_via_axis": True,
    }
    event.update(fields)
    return event


def copy(certification_id: str, unit: str = WARD, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "copy.certified",
        "event_id": new_id(),
        "unit": unit,
        "occurred_at": "2021-04-08T10:00:00+07:00",
        "certification_id": certification_id,
        "electronic": True,
    }
    event.update(fields)
    return event


def wire(obj: Any) -> bytes:
    return msgspec.json.encode(obj)
