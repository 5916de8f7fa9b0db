"""fashion-mini: small models trained on a catalog the project renders itself, in the production
architectures (Stable Diffusion, CLIP, MarianMT), so the default service draws real garments on a laptop.

`fashion-studio models train-mini` trains the family, `eval-mini` measures it with an independent judge,
`grid-mini` draws the docs' example grid. See docs/fashion-mini.md.
"""

from __future__ import annotations

from fashion_studio.settings import DEFAULT_MODELS_DIR, PROJECT_ROOT

MINI_DIR = DEFAULT_MODELS_DIR / "fashion-mini"
WORK_DIR = PROJECT_ROOT / "var" / "fashion-mini"
GRID_PATH = PROJECT_ROOT / "docs" / "images" / "fashion-mini-grid.png"
