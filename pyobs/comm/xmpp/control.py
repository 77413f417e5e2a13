"""Cancel and progress of calls between pyobs-comm modules (``urn:pyobs:comm:call-control:1``):
its stanzas, built and parsed. The wire format and who sends what when: docs/cancel.md, "On the
wire" (pyobs-core modules never see any of it).
"""

from __future__ import annotations

import math
from xml.etree.ElementTree import Element

from ..calls import CancelOutcome
from .values import escape, escape_attr

NS = "urn:pyobs:comm:call-control:1"
Q_CANCEL = f"{{{NS}}}cancel"
Q_CANCEL_RESULT = f"{{{NS}}}cancel-result"
Q_PROGRESS = f"{{{NS}}}progress"


class ControlFormatError(ValueError):
    """A cancel or progress stanza that does not have the documented shape; the message says what."""


def cancel_body(call: str, wait: float) -> str:
    """A cancel IQ from its id on (:meth:`.link.Link.iq` adds the head and the id)."""
    return f'"><cancel xmlns="{NS}" call="{escape_attr(call)}" wait="{wait:.3f}"/></iq>'


def parse_cancel(el: Element) -> tuple[str, float]:
    """(call id, seconds to wait at most) of a ``<cancel>``."""
    call = el.get("call", "")
    if not call:
        raise ControlFormatError("cancel without a call id")
    text = el.get("wait", "0")
    try:
        wait = float(text)
    except ValueError:
        raise ControlFormatError(f"cancel with a wait that is no number: {text[:40]!r}") from None
    if not math.isfinite(wait) or wait < 0:
        raise ControlFormatError(f"cancel with a wait out of range: {text[:40]!r}")
    return call, wait


def cancel_result(to: str, iq_id: str, outcome: CancelOutcome) -> str:
    return f'<iq type="result" to="{to}" id="{iq_id}"><cancel-result xmlns="{NS}" outcome="{outcome.value}"/></iq>'


def parse_cancel_result(iq: Element) -> CancelOutcome:
    el = iq.find(Q_CANCEL_RESULT)
    if el is None:
        raise ControlFormatError("cancel answered without <cancel-result>")
    try:
        return CancelOutcome(el.get("outcome", ""))
    except ValueError:
        raise ControlFormatError(f"unknown cancel outcome {el.get('outcome', '')[:40]!r}") from None


def progress_prefix(to: str, call: str) -> str:
    """Everything of a progress message up to its sequence number (to, call: escaped)."""
    return f'<message to="{to}"><progress xmlns="{NS}" call="{call}" seq="'


def progress_rest(fraction: float | None, message: str) -> str:
    frac = "" if fraction is None else f' fraction="{fraction:.6g}"'
    return f'"{frac}>{escape(message)}</progress></message>'


def parse_progress(el: Element) -> tuple[str, int, float | None, str]:
    """(call id, seq, fraction, message) of a ``<progress>``; values are checked by the core."""
    call = el.get("call", "")
    seq_text = el.get("seq", "")
    if not call or not seq_text.isdigit() or len(seq_text) > 15:
        raise ControlFormatError(f"progress without call id or sequence number (call={call[:40]!r})")
    frac_text = el.get("fraction")
    fraction = None
    if frac_text is not None:
        try:
            fraction = float(frac_text)
        except ValueError:
            raise ControlFormatError(f"progress fraction is no number: {frac_text[:40]!r}") from None
    return call, int(seq_text), fraction, el.text or ""
