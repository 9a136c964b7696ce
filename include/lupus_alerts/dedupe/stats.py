"""What an upsert did (`UpsertStats`) and how it fails (`MergeError`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


class MergeError(Exception):
    """The batch could not be written after repeated conflicts with concurrent writers."""


class _Retry(Exception):
    """A row we matched changed under us (merged away by a concurrent writer): redo the batch."""


@dataclass(slots=True)
class UpsertStats:
    """What one `upsert_papers` call did, in paper counts and ids.

    `merged` counts stored papers that were joined into another paper (their ids are in
    `merged_ids`, the paper they joined is in `updated_ids`).
    """

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    sources_new: int = 0
    sources_updated: int = 0
    notices_new: int = 0
    attempts: int = 0
    new_ids: list[int] = field(default_factory=list)
    updated_ids: list[int] = field(default_factory=list)
    unchanged_ids: list[int] = field(default_factory=list)
    merged_ids: list[int] = field(default_factory=list)

    def add(self, other: UpsertStats) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
