"""Phone numbers as the platform stores and dials them: E.164.

The scheduler takes a client's backup phone at check-in, the crisis service calls it back: one
reading of a number for both (a number one accepts and the other cannot dial would be a callback
that never happens)."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s().\-]")
_ASCII_DIGITS = re.compile(r"[0-9]+")  # not str.isdigit(): it accepts fullwidth, Arabic-Indic, superscript digits


class PhoneError(ValueError):
    pass


def normalize_phone(raw: str) -> str:
    """A phone number in E.164 (`+<country><number>`), or a NANP number (10 digits,
    optionally with a leading 1), normalized to E.164. NANP numbers must have a valid
    area code and exchange (first digit 2-9, not an N11 service code)."""
    text = _SEPARATORS.sub("", raw.strip())
    if not text:
        raise PhoneError("required")
    international = text.startswith("+")
    digits = text[1:] if international else text
    if not _ASCII_DIGITS.fullmatch(digits):
        raise PhoneError("may contain only digits 0-9, spaces, '(', ')', '-', '.' and a leading '+'")
    if international:
        if not 8 <= len(digits) <= 15 or digits[0] == "0":
            raise PhoneError("E.164 numbers have a country code (not starting with 0) and 8-15 digits")
        if digits[0] != "1":
            return "+" + digits
        digits = digits[1:]
        if len(digits) != 10:
            raise PhoneError("NANP numbers (+1) have exactly 10 digits after the country code")
    elif len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    elif len(digits) != 10:
        raise PhoneError("use E.164 (+<country code><number>) or a 10-digit NANP number")
    area, exchange = digits[:3], digits[3:6]
    if area[0] in "01" or area[1:] == "11":
        raise PhoneError(f"NANP area code {area} is not valid")
    if exchange[0] in "01" or exchange[1:] == "11":
        raise PhoneError(f"NANP exchange {exchange} is not valid")
    return "+1" + digits
