"""The training log: one record per epoch, in memory and in a ``.jsonl`` or ``.csv`` file."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Optional, Sequence

from lipsdf.errors import LipsdfError
from lipsdf.files import PathLike


class EpochLog:
    """One record per epoch, appended to a ``.jsonl`` or ``.csv`` file as training goes."""

    def __init__(self, path: Optional[PathLike], records: Sequence[dict[str, Any]] = ()) -> None:
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = []
        if self.path is not None:
            if self.path.suffix.lower() not in (".jsonl", ".csv"):
                raise LipsdfError(f"training log {self.path} must end in .jsonl or .csv", option="log")
            if not self.path.parent.is_dir():
                raise LipsdfError(f"log directory {self.path.parent} does not exist; create it first", option="log")
            self.path.write_text("")
        for record in records:  # a resumed run's log restarts from its checkpoint's records
            self.write(record)

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.path is None:
            return
        with open(self.path, "a", newline="") as handle:
            if self.path.suffix.lower() == ".jsonl":
                handle.write(json.dumps(record) + "\n")
                return
            writer = csv.DictWriter(handle, fieldnames=list(self.records[0]), extrasaction="ignore")
            if len(self.records) == 1:
                writer.writeheader()
            writer.writerow(record)
