"""Generated documentation stays in sync with the code it is generated from."""

from __future__ import annotations

import re

from cloudml.adapter import capabilities_markdown
from cloudml.loader import load
from cloudml.registry import adapter_class, adapter_names
from cloudml.render import to_mermaid
from tests.conftest import REPO


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0].strip()


def test_capabilities_page_matches_the_adapters() -> None:
    page = (REPO / "docs" / "capabilities.md").read_text()
    expected = capabilities_markdown([adapter_class(n).capabilities for n in adapter_names()])
    assert _between(page, "<!-- capabilities:start -->", "<!-- capabilities:end -->") == expected, (
        "run `cloudml backends --markdown` and paste it into docs/capabilities.md"
    )


def test_blueprint_readmes_show_their_current_graph() -> None:
    for folder in sorted((REPO / "blueprints").iterdir()):
        if not (folder / "pipeline.yaml").is_file():
            continue
        readme = (folder / "README.md").read_text()
        block = re.search(r"```mermaid\n(.*?)\n```", readme, re.S)
        assert block, f"{folder.name}/README.md has no mermaid graph"
        assert block.group(1) == to_mermaid(load(folder / "pipeline.yaml")), (  # type: ignore[arg-type]
            f"regenerate with: cloudml graph blueprints/{folder.name}/pipeline.yaml -f mermaid"
        )


def test_every_adapter_has_a_docs_page() -> None:
    for name in adapter_names():
        assert (REPO / "docs" / "adapters" / f"{name}.md").is_file(), name


def test_readme_gives_the_two_fresh_machine_commands() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## On a fresh machine", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", section, re.S)
    assert len(commands) == 2, "exactly two commands: the demo, then the tests"
    assert "pip install -e '.[examples,serve,plot]'" in commands[0]
    assert "cloudml run $B/pipeline.yaml" in commands[0] and "cloudml deploy $B/deployment.yaml" in commands[0]
    assert "pip install -e '.[test]' && python -m pytest" in commands[1]
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install -e '.[test]'" in ci and "python -m pytest" in ci
