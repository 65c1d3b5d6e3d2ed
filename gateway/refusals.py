"""Why an event is refused: one exception per reply code of CONTRACT section 4.

Refusal
├── Malformed        the submission as a whole: not JSON, not an object or array, too large
├── Invalid          a field missing or of the wrong form (`field` names it)
├── UnitMismatch     `unit` differs from the subject's unit
├── UnknownUnit      the unit is not in the registry
├── UnknownEntity    an event for a dossier that was never received
├── Conflict         breaks the lifecycle, or reuses an event_id with other content
└── Unavailable      JetStream cannot store it now; safe to retry
"""

from __future__ import annotations

from typing import ClassVar

from schemas.replies import ErrorCode, ErrorDetail, Refused


class Refusal(Exception):
    code: ClassVar[ErrorCode]

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def reply(self, event_id: str | None = None) -> Refused:
        return Refused(
            error=ErrorDetail(code=self.code, message=self.message, field=self.field),
            event_id=event_id,
        )


class Malformed(Refusal):
    code = ErrorCode.MALFORMED


class Invalid(Refusal):
    code = ErrorCode.INVALID


class UnitMismatch(Refusal):
    code = ErrorCode.UNIT_MISMATCH


class UnknownUnit(Refusal):
    code = ErrorCode.UNKNOWN_UNIT


class UnknownEntity(Refusal):
    code = ErrorCode.UNKNOWN_ENTITY


class Conflict(Refusal):
    code = ErrorCode.CONFLICT


class Unavailable(Refusal):
    code = ErrorCode.UNAVAILABLE
