"""The CPU thread budget of the model processes: each process's PyTorch pool from settings."""

from __future__ import annotations

import subprocess
import sys

from fashion_studio.settings import Settings, available_cores
from tests.helpers import ROOT


def test_the_default_budget_gives_the_generator_every_core_and_the_others_one():
    settings = Settings()
    assert settings.threads_for("generator") == available_cores() >= 1
    assert settings.threads_for("scorer") == settings.threads_for("translator") == 1
    assert Settings(torch_threads=3).threads_for("scorer") == 3  # one setting for every process
    explicit = Settings(torch_threads=3, threads={"generator": 2, "translator": 4})
    assert (explicit.threads_for("generator"), explicit.threads_for("scorer"), explicit.threads_for("translator")) == (2, 3, 4)
    assert Settings().for_process("scorer").torch_threads == 1


def printed_by(code: str) -> list[str]:
    """What `code` prints, split into words, run in a fresh Python process (a fresh PyTorch pool)."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_a_model_process_runs_with_its_budget():
    """In a fresh process, as the scorer service loads: its PyTorch pool has its one thread, not
    PyTorch's default of every core."""
    code = (
        "import torch\n"
        "from fashion_studio.scoring import Scorer\n"
        "from fashion_studio.settings import Settings\n"
        "Scorer.load(Settings(threads={'scorer': 1}).for_process('scorer'))\n"
        "print(torch.get_num_threads())\n"
    )
    assert printed_by(code)[-1] == "1"


def test_a_warm_up_runs_on_one_thread_and_the_budget_comes_back():
    """The generator's and editor's warm-ups run on one PyTorch thread (no OpenMP pool spinning on
    cores that the other starting processes want), then the process has its budget again, also
    when the warm-up fails."""
    code = (
        "import torch\n"
        "from fashion_studio import models\n"
        "torch.set_num_threads(2)\n"
        "with models.one_thread():\n"
        "    inside = torch.get_num_threads()\n"
        "try:\n"
        "    with models.one_thread():\n"
        "        raise RuntimeError('warm-up failed')\n"
        "except RuntimeError:\n"
        "    pass\n"
        "print(inside, torch.get_num_threads())\n"
    )
    assert printed_by(code)[-2:] == ["1", "2"]
