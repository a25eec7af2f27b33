"""The docs hold together: every relative link and every repository path they name exists, and the README keeps CI's test line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.without_nats  # reads files only

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", ROOT / "bench" / "README.md", *(ROOT / "docs").glob("*.md")])
TEST_LINE = 'pip install -e ".[dev]" && pytest'

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
# a path inside backticks that starts at a top-level directory of the repository (or core/)
_REPO_PATH = re.compile(r"`((?:django_eventstore|core|demo_project|tests|bench|docs)/[\w./-]*\w)`")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in _HEADING.findall(_FENCE.sub("", path.read_text()))}


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_relative_links_resolve(doc: Path) -> None:
    """Every relative link (and #anchor) in a doc points at a file, and a heading, that exist."""
    broken = []
    for target in _LINK.findall(_FENCE.sub("", doc.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {_name(linked)}")
    assert not broken, f"{_name(doc)} has broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_named_repository_paths_exist(doc: Path) -> None:
    """Paths such as `bench/store_bench.py` or `core/engine.py` named in a doc are files of the repository."""
    missing = []
    for named in _REPO_PATH.findall(doc.read_text()):
        candidates = [ROOT / named] + ([ROOT / "django_eventstore" / named] if named.startswith("core/") else [])
        if not any(c.exists() for c in candidates):
            missing.append(named)
    assert not missing, f"{_name(doc)} names files that are not in the repository: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_docs_stand_alone(doc: Path) -> None:
    """The docs refer to nothing outside the repository (no private design notes)."""
    text = doc.read_text()
    assert "DESIGN" not in text and "/work/" not in text


def test_readme_has_the_ci_test_line() -> None:
    """CI runs the README's test line: it stays verbatim, on its own line, in a code block."""
    blocks = [m.group(0).splitlines()[1:-1] for m in _FENCE.finditer((ROOT / "README.md").read_text())]
    assert any(TEST_LINE in (line.strip() for line in block) for block in blocks)
