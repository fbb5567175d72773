"""Every relative link of README.md, CHANGELOG.md and docs/ reaches a file that exists and, with an anchor, a
heading of that file (GitHub's heading ids)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def prose_lines(path: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def heading_ids(path: Path) -> set[str]:
    """GitHub's ids of the page's headings: lowercased, punctuation dropped (hyphens and underscores kept), spaces
    to hyphens; a repeated heading gets `-1`, `-2`, ..."""
    ids, seen = set(), {}
    for line in prose_lines(path):
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower().replace("`", "")).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def relative_links(path: Path) -> list[str]:
    links = []
    for line in prose_lines(path):
        for match in LINK.finditer(line):
            target = match.group(1) or match.group(2)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ... are not checked here
                links.append(target)
    return links


def test_heading_ids_follow_github(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# llmsrt — speech\n## Subtitles (`python -m llmsrt.translate`)\n```\n# not a heading\n```\n"
                    "## Notes\n### Notes\n## CPU: 1.65x, int8_float\n", encoding="utf-8")
    assert heading_ids(page) == {"llmsrt--speech", "subtitles-python--m-llmsrttranslate", "notes", "notes-1",
                                 "cpu-165x-int8_float"}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(page):
    broken = []
    for link in relative_links(page):
        target, _, anchor = link.partition("#")
        resolved = (page.parent / target).resolve() if target else page
        if not resolved.exists():
            broken.append(f"{link}: no file {resolved.relative_to(ROOT) if ROOT in resolved.parents else resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in heading_ids(resolved):
            broken.append(f"{link}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert broken == []
