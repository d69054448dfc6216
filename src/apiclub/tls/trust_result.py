"""What `apiclub ca trust` / `untrust` did to one trust store, as the operator reads it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["added", "present", "removed", "absent", "skipped", "failed"]


@dataclass(frozen=True)
class StoreResult:
    """One store's outcome: `skipped` and `failed` say why in `detail`."""

    store: str
    outcome: Outcome
    detail: str

    @property
    def changed_or_fine(self) -> bool:
        """Tell whether the store now is as asked (added/present, or removed/absent)."""
        return self.outcome not in {"skipped", "failed"}

    def line(self) -> str:
        """One line for the terminal."""
        return f"{self.store}: {self.outcome}: {self.detail}"
