"""Numeric ranges of settings: an ``Interval`` checks a value and says what it must be, for messages."""

from __future__ import annotations

import math
from dataclasses import dataclass


def power_text(number: float) -> str:
    """``number`` as written in range messages: 2**63 - 1 and 2**64 rather than their 19 or 20 digits."""
    if isinstance(number, int) and number >= 2**20:
        if (number + 1).bit_count() == 1:
            return f"2**{number.bit_length()} - 1"
        if number.bit_count() == 1:
            return f"2**{number.bit_length() - 1}"
    return f"{number:g}" if isinstance(number, float) else str(number)


@dataclass(frozen=True)
class Interval:
    """The values a numeric setting takes: ``low`` to ``high``, each end included unless ``open_low`` /
    ``open_high``. Integer bounds make an integer setting; nan lies in no interval."""

    low: float
    high: float
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below

    def __str__(self) -> str:
        """What a value must be, after "must be": "at least 1 and at most 2**63 - 1", "in [0, 1)"."""
        if isinstance(self.low, int) and isinstance(self.high, int) and not (self.open_low or self.open_high):
            return f"at least {self.low} and at most {power_text(self.high)}"
        if self.high == math.inf and self.open_high and self.low == 0:
            return "a positive finite number" if self.open_low else "a finite number >= 0"
        return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"


# Each count reaches torch or NumPy, whose sizes, indices and split sizes are int64 ("Overflow when
# unpacking long long" beyond).
INDEX_MAX = 2**63 - 1
COUNT = Interval(1, INDEX_MAX)
POSITIVE = Interval(0.0, math.inf, open_low=True, open_high=True)
NONNEGATIVE = Interval(0.0, math.inf, open_high=True)
FRACTION = Interval(0.0, 1.0, open_high=True)
UNIT = Interval(0.0, 1.0)
