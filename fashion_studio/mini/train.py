"""`fashion-studio models train-mini`: the whole fashion-mini family, stage by stage, on a CPU.

Stages: data (render and cache) -> judge -> marian -> clip -> vae -> unet -> sd (assemble the
pipeline) -> eval. Each stage runs a fixed number of steps from fixed seeds and also stops at its time
cap, so the family trains in under 40 minutes on two cores; a stage that stopped at its cap says so in
the training record. Intermediate results stay under the work folder, and a finished model folder
carries a marker with the configuration it was trained with and the runs of the stages it read, so a
re-run skips what is already done and redoes whatever a retrained stage feeds.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashion_studio.mini.common import MARKER, is_complete, mark_complete, read_json, write_json
from fashion_studio.mini.data import HELDOUT, TRAIN, rendered_set, text_pairs

logger = logging.getLogger(__name__)

TRAINER_VERSION = 1
STAGES: tuple[str, ...] = ("data", "judge", "marian", "clip", "vae", "unet", "sd")
MODEL_STAGES = {"judge": "judge", "marian": "marian", "clip": "clip", "sd": "sd"}
# What each stage reads from earlier stages.
UPSTREAM: dict[str, tuple[str, ...]] = {
    "data": (),
    "judge": ("data",),
    "marian": (),
    "clip": ("data",),
    "vae": ("data",),
    "unet": ("clip", "vae"),
    "sd": ("clip", "vae", "unet"),
}
TRAINING_RECORD = "training.json"


@dataclass
class MiniConfig:
    """Sizes, steps and time caps of every stage (the defaults are what the shipped weights used)."""

    seed: int = 0
    train_images: int = 24000
    heldout_images: int = 1000
    translation_pairs: int = 40000
    steps: dict[str, int] = field(
        default_factory=lambda: {"judge": 400, "marian": 800, "clip": 600, "vae": 1200, "unet": 2000}
    )
    batch_sizes: dict[str, int] = field(
        default_factory=lambda: {"judge": 64, "marian": 64, "clip": 128, "vae": 12, "unet": 64}
    )
    max_minutes: dict[str, float] = field(
        default_factory=lambda: {"judge": 1.0, "marian": 4.0, "clip": 4.5, "vae": 5.5, "unet": 21.0}
    )
    threads: int = 2
    workers: int = 2

    def key(self, stage: str) -> dict[str, Any]:
        """What a stage's result depends on (time caps are not part of it)."""
        key: dict[str, Any] = {"trainer_version": TRAINER_VERSION, "seed": self.seed, "stage": stage}
        if stage in ("data", "judge", "clip", "vae", "unet", "sd"):
            key.update(train_images=self.train_images, heldout_images=self.heldout_images)
        if stage == "marian":
            key["translation_pairs"] = self.translation_pairs
        for name in (stage, *UPSTREAM.get(stage, ())):
            if name in self.steps:
                key[f"{name}_steps"] = self.steps[name]
                key[f"{name}_batch"] = self.batch_sizes[name]
        return key


def _stage_folder(stage: str, out_dir: Path, work_dir: Path) -> Path:
    return out_dir / MODEL_STAGES[stage] if stage in MODEL_STAGES else work_dir / stage


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


class Trainer:
    def __init__(self, out_dir: Path, work_dir: Path, config: MiniConfig) -> None:
        self.out_dir = Path(out_dir)
        self.work_dir = Path(work_dir)
        self.config = config
        self.record_path = self.out_dir / TRAINING_RECORD
        self.record: dict[str, Any] = read_json(self.record_path) if self.record_path.is_file() else {}
        self.record.setdefault("stages", {})

    # -- shared data -------------------------------------------------------------------------------

    def train_set(self):
        c = self.config
        return rendered_set(self.work_dir, c.train_images, c.seed, TRAIN, workers=c.workers)

    def heldout_set(self):
        c = self.config
        exclude = {item.german for item in self.train_set().items} | {de for de, _ in self.translation_pairs()}
        return rendered_set(self.work_dir, c.heldout_images, c.seed, HELDOUT, exclude=exclude, workers=c.workers)

    def translation_pairs(self) -> list[tuple[str, str]]:
        return text_pairs(self.config.translation_pairs, self.config.seed, TRAIN)

    # -- stages ------------------------------------------------------------------------------------

    def _data(self, folder: Path) -> dict[str, Any]:
        train, heldout = self.train_set(), self.heldout_set()
        return {"train_images": len(train.items), "heldout_images": len(heldout.items)}

    def _judge(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import judge

        c = self.config
        train = self.train_set()
        model, info = judge.train(
            folder, train.images, [i.spec for i in train.items], c.seed, c.steps["judge"], 60 * c.max_minutes["judge"],
            batch_size=c.batch_sizes["judge"],
        )
        heldout = self.heldout_set()
        info["heldout_accuracy"] = judge.accuracy(model, heldout.images, [i.spec for i in heldout.items])
        return info

    def _marian(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import marian

        c = self.config
        return marian.train(
            folder, self.translation_pairs(), c.seed, c.steps["marian"], 60 * c.max_minutes["marian"], batch_size=c.batch_sizes["marian"]
        )

    def _clip(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import clip

        c = self.config
        train = self.train_set()
        return clip.train(
            folder, train.items, train.images, c.seed, c.steps["clip"], 60 * c.max_minutes["clip"], batch_size=c.batch_sizes["clip"]
        )

    def _vae(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import sd

        c = self.config
        train = self.train_set()
        vae, info = sd.train_vae(folder, train.images, c.seed, c.steps["vae"], 60 * c.max_minutes["vae"], batch_size=c.batch_sizes["vae"])
        means, stds = sd.encode_latents(vae, train.images)
        np.save(folder / "latent_means.npy", means)
        np.save(folder / "latent_stds.npy", stds)
        info["scaling_factor"] = round(float(1.0 / means.std()), 5)
        info["heldout_reconstruction_mae"] = round(sd.reconstruction_error(vae, self.heldout_set().images[:256]), 3)
        return info

    def _unet(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import sd

        c = self.config
        vae_folder = self.work_dir / "vae"
        vae_info = self.record["stages"]["vae"]
        text_encoder, tokenizer = sd.text_encoder_from_clip(self.out_dir / "clip")
        latents = (np.load(vae_folder / "latent_means.npy"), np.load(vae_folder / "latent_stds.npy"))
        _, info = sd.train_unet(
            folder, self.train_set().items, latents, vae_info["scaling_factor"], text_encoder, tokenizer, c.seed,
            c.steps["unet"], 60 * c.max_minutes["unet"], batch_size=c.batch_sizes["unet"],
        )
        return info

    def _sd(self, folder: Path) -> dict[str, Any]:
        from diffusers import AutoencoderKL, UNet2DConditionModel

        from fashion_studio.mini import sd

        vae = AutoencoderKL.from_pretrained(self.work_dir / "vae")
        unet = UNet2DConditionModel.from_pretrained(self.work_dir / "unet")
        text_encoder, tokenizer = sd.text_encoder_from_clip(self.out_dir / "clip")
        sd.assemble(folder, vae, unet, text_encoder, tokenizer, self.record["stages"]["vae"]["scaling_factor"])
        return {"vae": self.record["stages"]["vae"], "unet": self.record["stages"]["unet"]}

    # -- running -----------------------------------------------------------------------------------

    def _key(self, stage: str) -> dict[str, Any]:
        """The stage's configuration plus the runs of the stages it reads, so a retrained input invalidates it."""
        key = self.config.key(stage)
        key["upstream"] = {u: self.record["stages"].get(u, {}).get("run_id") for u in UPSTREAM[stage]}
        return key

    def run(self, only: Iterable[str] | None = None, force: bool = False) -> dict[str, Any]:
        """Run the stages (all, or those in `only`) that are not complete for the current configuration."""
        import torch

        torch.set_num_threads(self.config.threads)
        wanted = set(only) if only else set(STAGES)
        unknown = wanted - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stages {sorted(unknown)}; known: {list(STAGES)}")
        for stage in STAGES:
            if stage not in wanted:
                continue
            folder = _stage_folder(stage, self.out_dir, self.work_dir)
            key = self._key(stage)
            if not force and is_complete(folder, key) and stage in self.record["stages"]:
                logger.info("stage %s is complete in %s; kept", stage, folder)
                continue
            missing = [u for u in UPSTREAM[stage] if u not in self.record["stages"]]
            if missing:
                raise RuntimeError(f"stage {stage} needs {missing} first (run train-mini without --only, or add them)")
            logger.info("stage %s -> %s", stage, folder)
            started = time.perf_counter()
            info = getattr(self, f"_{stage}")(_fresh(folder) if stage != "data" else folder)
            info["wall_seconds"] = round(time.perf_counter() - started, 1)
            info["run_id"] = f"{stage}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
            # The cap this stage ran under (time-scale included): stages of one family may come from runs
            # with different options, and `config` holds only the latest run's.
            info["max_minutes"] = self.config.max_minutes.get(stage)
            self.record["stages"][stage] = info
            self.record["config"] = asdict(self.config)
            folder.mkdir(parents=True, exist_ok=True)
            mark_complete(folder, {"family": f"fashion-mini/{stage}", "key": key})
            write_json(self.record_path, self.record)
            logger.info("stage %s done in %.0f s", stage, info["wall_seconds"])
        self.record["total_training_seconds"] = round(
            sum(s.get("wall_seconds", 0.0) for name, s in self.record["stages"].items() if name in STAGES), 1
        )
        write_json(self.record_path, self.record)
        return self.record


def train_all(out_dir: Path, work_dir: Path, config: MiniConfig | None = None, only: Iterable[str] | None = None, force: bool = False) -> dict[str, Any]:
    return Trainer(out_dir, work_dir, config or MiniConfig()).run(only, force)


__all__ = ["MARKER", "MiniConfig", "STAGES", "Trainer", "train_all"]
