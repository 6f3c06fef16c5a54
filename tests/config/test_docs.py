"""The project documents itself: nothing points outside the repository, and the docs' links work.

A clone holds only this repository, so no file may cite notes that live beside it; the
documentation is docs/ (see docs/README.md).
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()

# Citations of notes that are not part of the repository.
FORBIDDEN = ("../shared", "shared/docs", "field-notes.md", "cronofy-api.md", "reliability.md")

# [text](target) or [text](target "title"); images too.
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCED_BLOCK = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
EXTERNAL = ("http://", "https://", "#", "mailto:")


def _git_files(*args: str) -> list[str]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    result = subprocess.run(
        ["git", "ls-files", "-z", *args],
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        pytest.skip(f"not a git work tree: {result.stderr.decode(errors='replace').strip()}")
    return [name for name in result.stdout.decode().split("\0") if name]


def repository_files() -> list[str]:
    """Tracked files plus untracked files that are not ignored, as repository-relative paths."""
    names = set(_git_files()) | set(_git_files("--others", "--exclude-standard"))
    return sorted(name for name in names if (ROOT / name).is_file())


def forbidden_citations(root: Path, names: list[str]) -> list[str]:
    """`path:line: string` for every forbidden string in the given files (binaries skipped)."""
    hits = []
    for name in names:
        if name == THIS_FILE:
            continue
        data = (root / name).read_bytes()
        if b"\0" in data:
            continue
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            hits += [f"{name}:{number}: {text}" for text in FORBIDDEN if text in line]
    return hits


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def relative_link_targets(markdown: str) -> list[str]:
    """The targets of relative links (no URL, anchor or mailto), outside code."""
    prose = INLINE_CODE.sub("", FENCED_BLOCK.sub("", markdown))
    targets = (match.group(1) for match in MARKDOWN_LINK.finditer(prose))
    return [target for target in targets if not target.startswith(EXTERNAL)]


def broken_links(files: list[Path]) -> list[str]:
    """`file: target` for every relative link whose file does not exist."""
    broken = []
    for markdown in files:
        for target in relative_link_targets(markdown.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0].split("?", 1)[0]
            if not (markdown.parent / path).exists():
                broken.append(f"{markdown.relative_to(ROOT).as_posix()}: {target}")
    return broken


def test_repository_files_cite_no_notes_outside_the_repository():
    hits = forbidden_citations(ROOT, repository_files())
    assert not hits, "cite docs/ instead:\n" + "\n".join(hits)


def test_repository_scan_reports_file_and_line(tmp_path):
    (tmp_path / "notes.py").write_text("x = 1\n# see field-notes.md\n", encoding="utf-8")
    (tmp_path / "blob.bin").write_bytes(b"\0field-notes.md")
    hits = forbidden_citations(tmp_path, ["notes.py", "blob.bin"])
    assert hits == ["notes.py:2: field-notes.md"]


def test_docs_relative_links_point_at_existing_files():
    files = markdown_files()
    assert (ROOT / "docs" / "README.md") in files
    broken = broken_links(files)
    assert not broken, "broken relative links:\n" + "\n".join(broken)


def test_docs_link_check_ignores_urls_anchors_and_code():
    markdown = (
        "[a](https://example.com) [b](#errors) [c](mailto:x@example.com) `[d](nowhere.md)`\n"
        '```\n[e](nowhere.md)\n```\n[f](api.md#paging) [g](../README.md "title")\n'
    )
    assert relative_link_targets(markdown) == ["api.md#paging", "../README.md"]
