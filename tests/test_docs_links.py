"""The documentation's links hold: every relative link of every Markdown file of the repository
(outside hidden folders, .venv and node_modules) names a file that exists, and every `#anchor`
names a heading (or an explicit HTML anchor) of the file it points into, by GitHub's rules.
The README stays a front door: under 200 lines, with the two set-up commands.

No Django needed: ``.venv/bin/python -m pytest tests/test_docs_links.py``."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIPPED_FOLDERS = {"node_modules"}  # and every folder whose name starts with a dot (.venv, .git, ...)

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+\"[^\"]*\")?\s*\)")
HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
HTML_LINK = re.compile(r"<(?:a|img)\s+[^>]*(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, data:, ...


def markdown_files() -> list[Path]:
    found = []
    for path in sorted(REPO.rglob("*.md")):
        parts = path.relative_to(REPO).parts[:-1]
        if any(part.startswith(".") or part in SKIPPED_FOLDERS for part in parts):
            continue
        found.append(path)
    return found


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        opened = FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: the rendered text (links and inline code reduced to
    their text, emphasis and HTML tags dropped), lower-cased, every character that is not a
    letter, digit, space, hyphen or underscore removed, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = INLINE_CODE.sub(lambda match: match.group(2), text)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("*", "")  # emphasis; an underscore stays (GitHub keeps it)
    text = text.strip().lower()
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in " -_" or category[0] in "LN" or category == "Mn":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub makes in ``path``: one per heading, repeated texts suffixed -1, -2,
    ...; plus explicit <a name="..."> / id="..." anchors."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    lines = prose_lines(path.read_text(encoding="utf-8"))
    previous = ""
    for _, line in lines:
        heading = HEADING.match(line)
        text = heading.group(2) if heading else None
        if text is None and previous.strip() and SETEXT.match(line) and not HEADING.match(previous) \
                and not previous.lstrip().startswith(("|", "-", "*", ">")):
            text = previous.strip()
        if text is not None:
            base = slug(text)
            count = seen.get(base, 0)
            found.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
        found.update(match.lower() for match in HTML_ANCHOR.findall(line))
        previous = line
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link in the prose of ``path`` (not in code); a link's text may
    run over several lines."""
    text = path.read_text(encoding="utf-8")
    numbered = [(number, INLINE_CODE.sub("", line)) for number, line in prose_lines(text)]
    prose = "\n".join(line for _, line in numbered)
    found = []
    for pattern in (LINK, HTML_LINK):
        for match in pattern.finditer(prose):
            line_index = prose.count("\n", 0, match.start(1))
            found.append((numbered[line_index][0], match.group(1).strip("<>")))
    return sorted(found)


FILES = markdown_files()


def test_the_markdown_files_are_found():
    names = {path.relative_to(REPO).as_posix() for path in FILES}
    assert {"README.md", "docs/websocket-guide.md", "demo_assets/README.md"} <= names
    assert not any(name.startswith((".venv/", ".git/")) for name in names)


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    """Every relative link of ``path`` whose file is missing or whose #anchor no heading gives."""
    broken = []
    for number, target in links(path):
        if not target or EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        file_part = unquote(file_part.split("?")[0])
        destination = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not destination.exists():
            broken.append(f"{where}: no such file")
            continue
        if anchor:
            if destination.suffix.lower() != ".md" or destination.is_dir():
                broken.append(f"{where}: an anchor into a file that is not Markdown")
            elif unquote(anchor).lower() not in anchors(destination):
                broken.append(f"{where}: no heading gives #{anchor}")
    return broken


@pytest.mark.parametrize("path", FILES, ids=[path.relative_to(REPO).as_posix() for path in FILES])
def test_every_relative_link_and_anchor_resolves(path: Path):
    broken = broken_links(path)
    assert not broken, "\n".join(broken)


def test_broken_links_are_caught(tmp_path: Path):
    (tmp_path / "other.md").write_text("# Other page\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[fine](other.md#other-page) [fine too](#page) [web](https://example.com/#x)\n"
        "[missing](absent.md) [bad anchor](other.md#nowhere) [over\ntwo lines](#gone)\n"
        "`[in code](absent.md)`\n\n```\n[fenced](absent.md)\n```\n"
    )
    assert [line.split(": ", 1)[1] for line in broken_links(page, tmp_path)] == [
        "absent.md: no such file",
        "other.md#nowhere: no heading gives #nowhere",
        "#gone: no heading gives #gone",
    ]


@pytest.mark.parametrize(("heading", "anchor"), [
    ("8. Browser client module (`faceauth-client.js`)", "8-browser-client-module-faceauth-clientjs"),
    ("FaceAuthClient — the REST calls", "faceauthclient--the-rest-calls"),
    ("Security levels and 1:N identification", "security-levels-and-1n-identification"),
    ("Operators' commands", "operators-commands"),
    ("FACEAUTH_MAX_FPS and _burst", "faceauth_max_fps-and-_burst"),
    ("A [linked](x.md) *word*", "a-linked-word"),
])
def test_anchor_rules_are_githubs(heading: str, anchor: str):
    assert slug(heading) == anchor


def test_duplicate_headings_get_numbered_anchors(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# Notes\n\n## Notes\n\n```\n# Notes\n```\n\n### Notes\n\nSetext\n------\n")
    assert anchors(page) == {"notes", "notes-1", "notes-2", "setext"}


def test_the_readme_is_a_front_door():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    assert "./scripts/serve.sh" in text
    assert "./scripts/test.sh" in text
