from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)
# Paths of the repository named in backticks, e.g. `src/apiclub/units.py` or `docs/scaling.md`.
NAMED_PATH = re.compile(r"`((?:src|docs|tests|bench|deploy)/[A-Za-z0-9_./-]*[A-Za-z0-9_])`")
WRITTEN_BY_RUNS = frozenset({"bench/results/results.md"})
"""Named as where a run writes its output (`python -m bench`), so absent from a clean clone."""


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(heading) for heading in HEADING.findall(text)}


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Relative links in the Markdown file `path` to a file, or a heading, that does not exist;
    and repository paths it names in backticks that do not exist."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    problems = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{path.name}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{path.name}: {target} (no such heading)")
    for named in NAMED_PATH.findall(text):
        if not (root / named).exists() and named not in WRITTEN_BY_RUNS:
            problems.append(f"{path.name}: `{named}` (no such path)")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_points_at_a_file_that_exists(doc: Path) -> None:
    assert broken_links(doc) == []


def test_a_link_to_a_missing_file_or_heading_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A: part\n")
    (tmp_path / "src").mkdir()
    doc = tmp_path / "page.md"
    doc.write_text(
        "# Page\n\n[ok](other.md#a-part) [ok](#page) [web](https://example.com/x.md)\n"
        "[gone](gone.md) [bad anchor](other.md#nothing) [here](#nowhere) `src/missing.py`\n"
        "```\n[in code](ignored.md)\n```\n"
    )
    assert broken_links(doc, root=tmp_path) == [
        "page.md: gone.md (no such file)",
        "page.md: other.md#nothing (no such heading)",
        "page.md: #nowhere (no such heading)",
        "page.md: `src/missing.py` (no such path)",
    ]


SOURCE_PATH = re.compile(
    r"(?<![\w./-])((?:docs|tests|bench|deploy)/[\w./-]*\w\.(?:md|py|yaml|conf|sh))"
)
MODULE_PATH = re.compile(r"(?<![\w./-])((?:api|backup|db|ops|server|tls|tokens)/[\w/]*\w\.py)\b")


def missing_files(source: str, root: Path = ROOT) -> list[str]:
    """Files that comments and docstrings in `source` name but the repository lacks: paths from
    the repository's root (`docs/...`), and modules from `src/apiclub/` (`server/config.py`)."""
    missing = [p for p in SOURCE_PATH.findall(source) if not (root / p).exists()]
    package = root / "src" / "apiclub"
    return missing + [p for p in MODULE_PATH.findall(source) if not (package / p).exists()]


def test_src_names_only_files_that_exist() -> None:
    found = {}
    for path in sorted((ROOT / "src" / "apiclub").rglob("*.py")):
        if names := missing_files(path.read_text(encoding="utf-8")):
            found[path.relative_to(ROOT).as_posix()] = names
    assert found == {}


def test_a_comment_naming_a_missing_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "here.md").write_text("")
    (tmp_path / "src" / "apiclub" / "db").mkdir(parents=True)
    (tmp_path / "src" / "apiclub" / "db" / "tasks.py").write_text("")
    source = '"""See docs/here.md, docs/gone.md, db/tasks.py and db/engines.py."""\n'
    assert missing_files(source, tmp_path) == ["docs/gone.md", "db/engines.py"]
