"""The documentation site builds with `mkdocs build --strict` (a broken link, anchor or page fails it), and the
README links every page. CI installs mkdocs through the `test` extra, so this runs there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.needs import require

require("mkdocs", "docs")
require("material", "docs")


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"), "-d", str(site)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=root)


def test_site_builds_strict_without_warnings(repo_root: Path, tmp_path: Path) -> None:
    done = _build(repo_root, tmp_path / "site")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert not re.search(r"^WARNING", log, re.MULTILINE), log
    pages = sorted(p.stem for p in (repo_root / "docs").glob("*.md"))
    for page in pages:  # every page was built (omitted_files: warn makes a page missing from the nav fail)
        built = tmp_path / "site" / ("index.html" if page == "index" else f"{page}/index.html")
        assert built.is_file(), page
    assert "yolo-adapters check" in (tmp_path / "site" / "cli" / "index.html").read_text()


def test_a_broken_link_fails_the_build(repo_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(repo_root / "mkdocs.yml", copy / "mkdocs.yml")
    shutil.copytree(repo_root / "docs", copy / "docs")
    with (copy / "docs" / "cli.md").open("a") as f:
        f.write("\nSee [the missing page](no-such-page.md) and [an anchor](options.md#no-such-section).\n")
    done = _build(copy, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stdout + done.stderr


def test_readme_links_every_page_and_every_link_resolves(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    links = set(re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme))
    for link in links:
        assert (repo_root / link).is_file(), f"README links {link}, which does not exist"
    pages = {f"docs/{p.name}" for p in (repo_root / "docs").glob("*.md")}
    assert pages <= links, f"README does not link {sorted(pages - links)}"
