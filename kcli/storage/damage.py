"""What recovery found wrong in a partition's files, as fields rather than a sentence.

Opening a log for writing mends what a crash or a bad disk left (a torn tail, a corrupt batch, an index
that disagrees with its log) and reports each repair as a :class:`Damage`: the file, what was wrong and
done, and where in the file when known.  Callers log or print it (``str()`` is the one-line message);
tests and tools read the fields instead of parsing that line.
"""

from __future__ import annotations

from typing import NamedTuple


class Damage(NamedTuple):
    """(A named tuple, not a dataclass: it is imported by every write, and cheaper to define.)"""

    path: str
    reason: str
    position: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" + (f" at position {self.position}" if self.position is not None else "")
