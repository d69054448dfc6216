"""What a patch of another project's internals is: its targets, the versions it fits, undo.

A patch that replaces a method of Hypercorn or asyncio is written against one release. A newer
release can rename the method (the patch then sets a dead attribute and the bug is back,
silently) or change its body (a copied body then undoes the upstream fix). So every patch
declares the versions it was written for, each attribute it replaces, and for a body copied
from upstream the hash of the source it was copied from; `problems()` compares them with what
is installed. `install()` remembers what it replaced so `remove()` can put it back: tests
prove each patch is needed by running with it removed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import platform
from collections.abc import Callable
from dataclasses import dataclass, field

_MISSING = object()


@dataclass(frozen=True)
class Fits:
    """A distribution (or `python`) and the version prefixes a patch was written for."""

    distribution: str
    prefixes: tuple[str, ...]

    def problem(self) -> str | None:
        """Why the installed version does not fit, or None."""
        installed = installed_version(self.distribution)
        if installed is None:
            return f"{self.distribution} is not installed"
        if installed.startswith(self.prefixes):
            return None
        wanted = " or ".join(prefix.rstrip(".") for prefix in self.prefixes)
        return f"{self.distribution} {installed} is not the {wanted} it was written for"


def installed_version(distribution: str) -> str | None:
    """The installed version of `distribution` (`python`: the interpreter's), or None."""
    if distribution == "python":
        return platform.python_version()
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Target:
    """One attribute a patch replaces or relies on.

    Attributes:
        owner: the class (or module) that holds it.
        name: the attribute.
        copied_from: for a body copied from upstream, the SHA-256 of the original's source.
        mentions: names the original's source must still use (for CPython, whose source
            differs between patch releases, so no hash fits all of them).
    """

    owner: object
    name: str
    copied_from: str | None = None
    mentions: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        owner = self.owner
        qualname = getattr(owner, "__qualname__", getattr(owner, "__name__", repr(owner)))
        return f"{getattr(owner, '__module__', '')}.{qualname}.{self.name}".lstrip(".")

    def problem(self, original: object) -> str | None:
        """Why `original` (the attribute as upstream ships it) is not what the patch expects."""
        if original is _MISSING:
            return f"{self.label} is gone"
        if self.copied_from is None and not self.mentions:
            return None
        source = source_of(original)
        if source is None:
            return f"the source of {self.label} cannot be read to check it"
        if self.copied_from is not None and source_hash(source) != self.copied_from:
            return f"{self.label} changed since the patch copied it"
        missing = [name for name in self.mentions if name not in source]
        if missing:
            return f"{self.label} no longer uses {', '.join(missing)}"
        return None


def source_of(function: object) -> str | None:
    try:
        return inspect.getsource(function)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return None


def source_hash(source: str) -> str:
    """The hash a `Target.copied_from` records: of the source with its indentation removed."""
    return hashlib.sha256(inspect.cleandoc(source).encode()).hexdigest()


@dataclass
class Patch:
    """One workaround: the upstream problem it answers, what it replaces, how to apply it.

    Attributes:
        name: short and stable; tests remove a patch by it.
        upstream: the upstream issue, or the section of docs/upstream.md with the report.
        fits: the versions it was written for.
        targets: the attributes `apply` replaces or relies on.
        apply: replaces the targets (each capturing the attribute it wraps).
    """

    name: str
    upstream: str
    fits: tuple[Fits, ...]
    targets: tuple[Target, ...]
    apply: Callable[[], None]
    _saved: list[tuple[object, str, object]] = field(default_factory=list, repr=False)
    _upstream: dict[tuple[int, str], object] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # What upstream ships, taken before any patch goes in: a patch wrapping the same
        # method later must not make this one's check fail.
        for target in self.targets:
            self._upstream[id(target.owner), target.name] = getattr(
                target.owner, target.name, _MISSING
            )

    @property
    def installed(self) -> bool:
        return bool(self._saved)

    def problems(self) -> list[str]:
        """What in the installed versions does not fit this patch (empty: it fits)."""
        found = [problem for fits in self.fits if (problem := fits.problem()) is not None]
        for target in self.targets:
            original = self._upstream[id(target.owner), target.name]
            if getattr(target.owner, target.name, _MISSING) is _MISSING:
                original = _MISSING
            if (problem := target.problem(original)) is not None:
                found.append(problem)
        return found

    def install(self) -> None:
        """Apply the patch, remembering what it replaces; a second call does nothing."""
        if self.installed:
            return
        self._saved = [
            (target.owner, target.name, vars(target.owner).get(target.name, _MISSING))
            for target in self.targets
        ]
        self.apply()

    def remove(self) -> None:
        """Put back what `install` replaced."""
        for owner, name, value in reversed(self._saved):
            if value is _MISSING:
                if name in vars(owner):
                    delattr(owner, name)
            else:
                setattr(owner, name, value)
        self._saved = []
