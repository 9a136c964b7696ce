"""What a subscriber's fields may hold: checked at every way in (CLI, CSV, the preferences form)."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from lupus_alerts.subscribers.model import (
    _BIDI_CONTROLS,
    FREQUENCIES,
    MAX_NAME_CHARS,
    MAX_PAPERS_LIMIT,
    STATUSES,
    WEEKDAYS,
    InvalidSubscriber,
)

# --- validation -----------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    """A syntactically valid address, lower-cased, in its ASCII form when it has one.

    An internationalised domain is kept as IDNA ("user@xn--exmple-cua.org", not
    "user@exämple.org"), which every relay can send to; only a non-ASCII local part stays as
    Unicode, and needs a relay that offers SMTPUTF8. Raises InvalidSubscriber. No DNS lookup.
    """
    if not isinstance(email, str) or not email.strip():
        raise InvalidSubscriber("email: missing")
    try:
        info = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as e:
        raise InvalidSubscriber(f"email: {e}") from None
    return (info.ascii_email or info.normalized).lower()


def normalize_name(name: str | None) -> str | None:
    """A display name without surrounding spaces (None when empty); raises InvalidSubscriber
    for a control character (CR, LF, tab, NUL, vertical tab, ...), a line or paragraph
    separator, a bidirectional override, or more than MAX_NAME_CHARS characters.

    Names go into the To: header: anything that could end a header line or reorder the text
    is refused here, at the edge, so a stored name never stops a digest being built.
    """
    if name is None:
        return None
    if not isinstance(name, str):
        raise InvalidSubscriber(f"name: expected text, not {type(name).__name__}")
    text = name.strip()
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI_CONTROLS:
            raise InvalidSubscriber(f"name: contains the control character U+{ord(ch):04X}")
    if len(text) > MAX_NAME_CHARS:
        raise InvalidSubscriber(f"name: {len(text)} characters, at most {MAX_NAME_CHARS}")
    return text or None


def _ascii_int(field_name: str, value: int | str) -> int:
    # int() takes "٣" (an Arabic-Indic digit), "+3" and "1_0"; str.isdigit() passes "²", which
    # int() then refuses (a 500 on the preferences form, once). Plain ASCII digits only.
    if isinstance(value, bool):
        raise InvalidSubscriber(f"{field_name}: {value!r} is not a whole number")
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise InvalidSubscriber(f"{field_name}: {value!r} is not a whole number")
    return int(text)


def _check_frequency(frequency: str, weekday: int | str | None) -> tuple[str, int | None]:
    frequency = (frequency or "daily").strip().lower()
    if frequency not in FREQUENCIES:
        raise InvalidSubscriber(f"frequency: {frequency!r} is not one of {', '.join(FREQUENCIES)}")
    day = parse_weekday(weekday)
    if frequency == "weekly" and day is None:
        raise InvalidSubscriber("weekday: a weekly digest needs a weekday (0=Monday..6=Sunday or a name)")
    if frequency == "daily" and day is not None:
        raise InvalidSubscriber("weekday: only weekly digests have a weekday")
    return frequency, day


def parse_weekday(value: int | str | None) -> int | None:
    """0..6 (Monday=0) from an int, a digit string or a day name/prefix ("mon", "Monday")."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidSubscriber(f"weekday: {value!r} is not a weekday")
    if isinstance(value, int):
        day = value
    else:
        text = value.strip().lower()
        if text.isascii() and text.isdigit():
            day = _ascii_int("weekday", text)
        else:
            matches = [i for i, n in enumerate(WEEKDAYS) if len(text) >= 3 and n.startswith(text)]
            if len(matches) != 1:
                raise InvalidSubscriber(f"weekday: {value!r} is not a weekday (0-6 or a day name)")
            day = matches[0]
    if not 0 <= day <= 6:
        raise InvalidSubscriber(f"weekday: {value!r} is out of range 0 (Monday) .. 6 (Sunday)")
    return day


def _check_max_papers(value: int | str) -> int:
    n = _ascii_int("max_papers", value)
    if not 1 <= n <= MAX_PAPERS_LIMIT:
        raise InvalidSubscriber(f"max_papers: {n} is out of range 1..{MAX_PAPERS_LIMIT}")
    return n


def _check_status(status: str) -> str:
    s = (status or "").strip().lower()
    if s not in STATUSES:
        raise InvalidSubscriber(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    return s


def _parse_bool(field_name: str, value: bool | str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in ("1", "true", "yes", "y", "on"):
        return True
    if text in ("0", "false", "no", "n", "off"):
        return False
    raise InvalidSubscriber(f"{field_name}: {value!r} is not yes/no")
