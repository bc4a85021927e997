"""A patient's DICOM demographics (person name, sex) as people read them."""

from __future__ import annotations

import re

_LETTERS = re.compile(r"[^\W\d_]+")


def _word(part: str) -> str:
    # Names arrive in capitals from most systems; "JANE" reads as "Jane", "MARY-KATE" as
    # "Mary-Kate". A name someone typed in mixed case ("McAllister") is kept as it is.
    return _LETTERS.sub(lambda letters: letters.group().capitalize(), part) if part.isupper() else part


def person_name_display(value: str) -> str:
    """``DOE^JANE^A^DR^JR`` → ``DOE, Jane A, Jr``: family name first, in capitals, then the rest.

    Only the alphabetic group (before any "="; the others are ideographic and phonetic spellings)
    is used. The family name is in capitals, as on a clinical viewer's overlay, so a reader knows
    which word it is; a prefix such as "Dr" is left out, a suffix kept. A name with one component
    is shown as it is.
    """
    alphabetic = value.split("=", 1)[0]
    family, given, middle, _prefix, suffix = [*alphabetic.split("^"), "", "", "", "", ""][:5]
    family = " ".join(family.split())
    first = " ".join(_word(part) for part in f"{given} {middle}".split())
    suffix = " ".join(_word(part) for part in suffix.split())
    if not first:
        return " ".join(part for part in (family.upper(), suffix) if part)
    name = f"{family.upper()}, {first}" if family else first
    return f"{name}, {suffix}" if suffix else name


_SEXES = {"F": "Female", "M": "Male", "O": "Other"}


def patient_sex_display(value: str) -> str:
    """Patient's Sex (0010,0040) in words; a value outside the standard's F, M and O as it is."""
    value = value.strip()
    return _SEXES.get(value.upper(), value)
