"""Five-field cron expressions: parse them and compute when they fire.

The grammar is the one the spec accepts (``cloudml.spec.pipeline.Schedule``): minute, hour,
day-of-month, month, day-of-week; each field ``*``, a number, a range ``a-b``, any of those with a
step ``/n``, comma lists of them, or a three-letter name (``MON``, ``MON-FRI``, ``JAN``). Day of
week counts 0-7 with both 0 and 7 for Sunday. As in Vixie cron, when both day-of-month and
day-of-week are restricted a day matches if **either** does.

Times are computed on the wall clock of the schedule's time zone (``zoneinfo``) and returned as
aware datetimes in that zone. A wall time that does not exist (skipped by a DST change) is skipped;
one that exists twice fires once, at its first occurrence.

Example:
    >>> from datetime import datetime, timezone
    >>> [t.isoformat() for t in next_fire_times("30 9 * * MON-FRI", datetime(2026, 11, 27, 12, tzinfo=timezone.utc), 2)]
    ['2026-11-30T09:30:00+00:00', '2026-12-01T09:30:00+00:00']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

__all__ = ["Cron", "next_fire_times", "parse_cron"]

_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_NAMES = {
    3: {m: i + 1 for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                                         "NOV", "DEC"])},
    4: {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])},
}
_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression: the allowed values of each field.

    Example:
        >>> c = parse_cron("*/15 8-18 * * 1-5")
        >>> sorted(c.minutes), min(c.hours), max(c.hours), sorted(c.weekdays)
        ([0, 15, 30, 45], 8, 18, [1, 2, 3, 4, 5])
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day-of-month is '*'
    any_weekday: bool  # day-of-week is '*'

    def matches_day(self, d: date) -> bool:
        """Whether the schedule may fire on this calendar day.

        Example:
            >>> from datetime import date
            >>> parse_cron("0 0 13 * FRI").matches_day(date(2026, 11, 13)), parse_cron("0 0 * * SAT").matches_day(date(2026, 11, 27))
            (True, False)
        """
        if d.month not in self.months:
            return False
        weekday = (d.weekday() + 1) % 7  # Python: Monday = 0; cron: Sunday = 0
        dom, dow = d.day in self.days, weekday in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow


def _field(text: str, index: int) -> frozenset[int]:
    lo, hi = _RANGES[index]
    names = _NAMES.get(index, {})
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
            if step < 1:
                raise ValueError(f"cron {_FIELD_NAMES[index]} step must be at least 1, got '{step_text}'")
        if part == "*":
            start, end = lo, hi
        else:
            bounds = [names[b.upper()] if b.upper() in names else int(b) for b in part.split("-", 1)]
            start, end = bounds[0], bounds[-1]
            if "/" in text and len(bounds) == 1:
                end = hi  # "5/15" means from 5 to the end, every 15
        if not (lo <= start <= hi and lo <= end <= hi) or start > end:
            raise ValueError(f"cron {_FIELD_NAMES[index]} '{text}' is outside {lo}-{hi} or reversed")
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def parse_cron(expression: str) -> Cron:
    """Parse a five-field cron expression; raises ``ValueError`` naming the bad field.

    Example:
        >>> sorted(parse_cron("0 3 1,15 * *").days)
        [1, 15]
        >>> parse_cron("0 25 * * *")
        Traceback (most recent call last):
        ...
        ValueError: cron hour '25' is outside 0-23 or reversed
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"cron '{expression}' has {len(fields)} fields; write 5: minute hour day month weekday")
    try:
        parsed = [_field(f, i) for i, f in enumerate(fields)]
    except (KeyError, ValueError) as e:
        if isinstance(e, ValueError) and str(e).startswith("cron "):
            raise
        raise ValueError(f"cron '{expression}' has a field that is not a number, range or name") from None
    minutes, hours, days, months, weekdays = parsed
    return Cron(minutes, hours, days, months, weekdays, any_day=fields[2].split("/")[0] == "*",
                any_weekday=fields[4].split("/")[0] == "*")


def next_fire_times(expression: str | Cron, after: datetime, count: int = 1, tz: str = "UTC") -> list[datetime]:
    """The next ``count`` times strictly after ``after`` at which the schedule fires, in zone ``tz``.

    ``after`` must be timezone-aware. Searches up to eight years ahead (``0 0 29 2 MON`` fires rarely,
    but does); an expression that never fires (``0 0 31 2 *``) returns fewer times.

    Example:
        >>> from datetime import datetime, timezone
        >>> t = next_fire_times("0 3 * * *", datetime(2026, 3, 28, 12, tzinfo=timezone.utc), 2, "Europe/Berlin")
        >>> [x.isoformat() for x in t]
        ['2026-03-29T03:00:00+02:00', '2026-03-30T03:00:00+02:00']
    """
    if after.tzinfo is None:
        raise ValueError("next_fire_times needs a timezone-aware 'after'")
    cron = parse_cron(expression) if isinstance(expression, str) else expression
    zone = ZoneInfo(tz) if tz != "UTC" else timezone.utc
    start = after.astimezone(zone)
    found: list[datetime] = []
    day = start.date()
    for _ in range(366 * 8 + 2):
        if cron.matches_day(day):
            for hour in sorted(cron.hours):
                for minute in sorted(cron.minutes):
                    wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    # a wall time skipped by DST does not survive the round trip through UTC
                    if wall.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
                        continue
                    if wall.astimezone(timezone.utc) > after.astimezone(timezone.utc):
                        found.append(wall)
                        if len(found) == count:
                            return found
        day += timedelta(days=1)
    return found
