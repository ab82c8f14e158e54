"""Helpers shared by the endpoint tests that drive the CLI and the load tests."""

from __future__ import annotations

import shutil
from pathlib import Path

PREDICTORS = Path(__file__).resolve().parent / "fixtures" / "models" / "custom"


def model_folder(parent: Path, tag: str) -> Path:
    """A model folder with the test predictor; ``tag`` makes its digest (and so its version) unique."""
    folder = parent / f"model-{tag}"
    folder.mkdir(parents=True)
    shutil.copy(PREDICTORS / "pred.py", folder / "pred.py")
    (folder / "VERSION").write_text(tag)
    return folder


def serving_pids(root: Path) -> list[int]:
    """Live (not zombie) gateway/worker processes whose command line names this state root."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if "cloudml.adapters.local.serving" in cmd and str(root) in cmd and state != "Z":
            pids.append(int(proc.name))
    return pids
