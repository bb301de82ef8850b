"""The README's layer diagram ("How the parts fit") is the import-linter layers contract of
``pyproject.toml``, layer for layer: a layer added, moved or split in one and not the other
fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    return [re.sub(r"\barbsphere\.", "", layer) for layer in layers]


def _readme_layers() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## How the parts fit") :]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    diagram = next(b for b in blocks if b.lstrip().startswith("rig"))
    return [
        re.sub(r"\s*\(.*\)$", "", line).strip() for line in diagram.splitlines() if line.strip()
    ]


def test_the_readme_draws_the_layers_the_contract_enforces() -> None:
    readme, contract = _readme_layers(), _contract_layers()
    assert readme == contract, f"README: {readme}\npyproject.toml: {contract}"
    assert readme[0].startswith("rig") and readme[-1] == "errors"
