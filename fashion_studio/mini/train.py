"""`fashion-studio models train-mini`: the whole fashion-mini family, stage by stage, on a CPU.

Stages: data (render and cache) -> judge -> marian -> clip -> vae -> unet -> shots (the VAE and UNet
fine-tuned to draw dressed figures, model shots, beside the products) -> sd (assemble the pipeline) ->
editor (InstructPix2Pix from the generator's UNet, on rendered edit pairs) -> segmenter (SAM and a
clothes parser on dressed figures) -> inpainter (a 9-channel inpainting UNet from the generator's, for
masked re-generation and CatVTON-style try-on) -> eval. Each stage runs a fixed number of steps from
fixed seeds and also stops at its time cap (a safety net for a slow or shared machine); a stage that
stopped at its cap says so in the training record, which also keeps each stage's cap, time scale,
threads and wall time.
CLIP and the UNet never see the held-out (type, colour, pattern) combinations (`split.py`, checked in
the data stage); the judge and the VAE, which read no text, train on renders of every combination.
Intermediate results stay under the work folder, and a finished model folder carries a marker with the
configuration it was trained with and the runs of the stages it read, so a re-run skips what is already
done and redoes whatever a retrained stage feeds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fashion_studio.mini.common import MARKER, is_complete, mark_complete, read_json, write_json
from fashion_studio.mini.data import TRAIN, all_combinations_set, heldout_sets, text_pairs, trained_german, training_set
from fashion_studio.mini.editor import EDIT_DATA_VERSION
from fashion_studio.mini.inpainter import INPAINT_DATA_VERSION, INPAINTER_RECIPE_VERSION
from fashion_studio.mini.segmenter import FIGURE_DATA_VERSION, SEGMENTER_RECIPE_VERSION
from fashion_studio.mini.shots import SHOTS_RECIPE_VERSION
from fashion_studio.mini.split import SPLIT_VERSION, check_held_out, held_out_combinations, split_summary

logger = logging.getLogger(__name__)

TRAINER_VERSION = 1
STAGES: tuple[str, ...] = ("data", "judge", "marian", "clip", "vae", "unet", "shots", "sd", "editor", "segmenter", "figure-judge", "inpainter")
MODEL_STAGES = {
    "figure-judge": "figure-judge",
    "judge": "judge",
    "marian": "marian",
    "clip": "clip",
    "sd": "sd",
    "editor": "editor",
    "segmenter": "segmenter",
    "inpainter": "inpainter",
}
# What each stage reads from earlier stages.
UPSTREAM: dict[str, tuple[str, ...]] = {
    "data": (),
    "judge": ("data",),
    "marian": (),
    "clip": ("data",),
    "vae": ("data",),
    "unet": ("clip", "vae"),
    "shots": ("clip", "vae", "unet"),  # fine-tunes the product generator's VAE and UNet on figures and products
    "sd": ("clip", "shots"),
    "editor": ("sd",),  # starts from the generator's UNet; renders its own edit pairs
    "segmenter": (),  # renders its own figures
    "figure-judge": (),  # renders its own figures (every combination: it reads, it is not evaluated)
    "inpainter": ("sd",),  # starts from the generator's UNet and VAE; renders its own try-on examples
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
        default_factory=lambda: {
            "judge": 400,
            "marian": 800,
            "clip": 600,
            "vae": 1200,
            "unet": 2000,
            # The shots stage is bound by its steps: 1,000 more steps from the shipped UNet (the same recipe,
            # its schedule restarted) read 400 new figures of seen combinations at bottom colour 62.8 -> 69.5%,
            # top colour 86.3 -> 89.5%. Its cap stopped the shipped run at 1,915 of these steps; that run predates
            # `make mini-train` leaving OpenMP's wait policy unset (the target set PASSIVE; the run's record names
            # no policy), and unset trains the generator UNet 1.22x the steps a second (docs/training-speed.md).
            "shots": 2400,
            "shots_vae": 1200,
            "editor": 1200,
            "segmenter": 1000,
            "parser": 500,
            # The inpainter's UNet is not: on 400 new try-ons (inpainter.MASK_LOSS_WEIGHT's; colour / pattern read
            # inside the mask), 1,600 steps give 71.5 / 40.8%, 3,200 give 84.8 / 49.0%, and 3,200 more from those
            # (schedule restarted) 85.5 / 49.3%. Its pattern gap is the model's, not the training time's.
            "inpainter": 3200,
            "inpainter_vae": 800,
            "inpainter_decoder": 1500,
            "figure-judge": 1200,
        }
    )
    batch_sizes: dict[str, int] = field(
        default_factory=lambda: {
            "judge": 64,
            "marian": 64,
            "clip": 128,
            "vae": 12,
            "unet": 64,
            "shots": 64,
            "editor": 48,
            "segmenter": 12,
            "parser": 16,
            "inpainter": 8,
            "figure-judge": 32,
        }
    )
    max_minutes: dict[str, float] = field(
        default_factory=lambda: {
            "judge": 1.0,
            "marian": 6.0,
            "clip": 4.5,
            "vae": 5.5,
            "unet": 21.0,
            "shots": 30.0,
            "editor": 20.0,
            "segmenter": 10.0,
            "inpainter": 22.0,
            "figure-judge": 4.0,
        }
    )
    edit_pairs: int = 5000  # the editor's rendered (before, after) pairs
    figures: int = 2000  # the segmenter's rendered training figures
    shot_figures: int = 6000  # the shots stage's rendered training figures
    inpaint_examples: int = 3000  # the inpainter's rendered (person, garment, dressed person) examples
    threads: int = 2
    workers: int = 2
    time_scale: float = 1.0  # the factor `max_minutes` was multiplied by (train-mini --time-scale); recorded

    def key(self, stage: str) -> dict[str, Any]:
        """What a stage's result depends on (time caps are not part of it)."""
        key: dict[str, Any] = {"trainer_version": TRAINER_VERSION, "seed": self.seed, "stage": stage}
        if stage in ("data", "judge", "clip", "vae", "unet", "shots", "sd"):
            key.update(train_images=self.train_images, heldout_images=self.heldout_images)
        if stage in ("data", "clip", "unet", "shots", "sd"):  # what reads the split (the judge and the VAE see every combination)
            key["split_version"] = SPLIT_VERSION
        if stage == "marian":
            key["translation_pairs"] = self.translation_pairs
        if stage == "editor":
            key.update(edit_pairs=self.edit_pairs, edit_data_version=EDIT_DATA_VERSION)
        if stage == "segmenter":
            key.update(
                figures=self.figures,
                figure_data_version=FIGURE_DATA_VERSION,
                recipe=SEGMENTER_RECIPE_VERSION,
                split_version=SPLIT_VERSION,
                parser_steps=self.steps["parser"],
            )
        if stage == "shots":
            key.update(
                shot_figures=self.shot_figures,
                figure_data_version=FIGURE_DATA_VERSION,
                recipe=SHOTS_RECIPE_VERSION,
                shots_vae_steps=self.steps["shots_vae"],
            )
        if stage == "inpainter":
            key.update(
                examples=self.inpaint_examples,
                data_version=INPAINT_DATA_VERSION,
                recipe=INPAINTER_RECIPE_VERSION,
                split_version=SPLIT_VERSION,
                vae_steps=self.steps["inpainter_vae"],
                decoder_steps=self.steps["inpainter_decoder"],
            )
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
        """CLIP's and the UNet's data: the held-out combinations left out."""
        c = self.config
        return training_set(self.work_dir, c.train_images, c.seed, workers=c.workers)

    def all_combinations_set(self):
        """The judge's and the VAE's renders (they read no text): every combination."""
        c = self.config
        return all_combinations_set(self.work_dir, c.train_images, c.seed, workers=c.workers)

    def heldout_sets(self):
        """(seen, unseen) held-out products, with no German description a model trained on."""
        c = self.config
        trained = trained_german(self.train_set().items, c.translation_pairs, c.seed)
        return heldout_sets(self.work_dir, c.heldout_images, c.seed, trained, workers=c.workers)

    def heldout_set(self):
        return self.heldout_sets()[0]

    def _from_pipeline(self, folder: Path, parts: dict[str, str], allowed: bool, missing: str) -> Path:
        """`folder` with each of `parts` (its subfolder -> the assembled pipeline's component) in place: as
        it is, or, when `allowed`, copied from the shipped pipeline (a fresh checkout has no work folder)."""
        shipped = self.out_dir / MODEL_STAGES["sd"]
        if all((folder / part / "config.json").is_file() for part in parts):
            return folder
        if allowed and all((shipped / component / "config.json").is_file() for component in parts.values()):
            logger.info("restoring %s from %s", folder, shipped)
            for part, component in parts.items():
                shutil.copytree(shipped / component, folder / part, dirs_exist_ok=True)
            return folder
        raise RuntimeError(missing)

    def _restored(self, stage: str) -> Path:
        """The vae or unet stage's weights in the work folder. A family assembled before the shots stage
        existed shipped them in its pipeline: restored from there when the work folder is gone."""
        folder = self.work_dir / stage
        return self._from_pipeline(
            folder,
            {"": stage},
            stage in self.record["stages"] and "shots" not in self.record["stages"],
            f"the {stage} stage's weights are not in {folder} and not shipped (the pipeline holds the shots stage's): "
            f"retrain from the {stage} stage on (train-mini --only {stage} and every stage after it that you want)",
        )

    def shots_folder(self) -> Path:
        """The shots stage's VAE and UNet: its work folder, restored from the assembled pipeline (which
        holds exactly them) when the work folder is gone, so `--only sd` works on a fresh checkout."""
        folder = self.work_dir / "shots"
        return self._from_pipeline(
            folder,
            {"vae": "vae", "unet": "unet"},
            "shots" in self.record["stages"],
            f"the shots stage's weights are not in {folder}: run train-mini --only shots first",
        )

    def vae_folder(self) -> Path:
        return self._restored("vae")

    def unet_folder(self) -> Path:
        return self._restored("unet")

    def translation_pairs(self) -> list[tuple[str, str]]:
        return text_pairs(self.config.translation_pairs, self.config.seed, TRAIN)

    # -- stages ------------------------------------------------------------------------------------

    def _data(self, folder: Path) -> dict[str, Any]:
        train, every = self.train_set(), self.all_combinations_set()
        seen, unseen = self.heldout_sets()
        held = held_out_combinations(self.config.seed)
        checked = check_held_out(train.items, held)  # raises if a training item or caption names one
        return {
            "train_images": len(train.items),
            "all_combinations_images": len(every.items),
            "heldout_images": len(seen.items),
            "unseen_images": len(unseen.items),
            "split": {**split_summary(self.config.seed), "checked": checked},
        }

    def _judge(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import judge

        c = self.config
        train = self.all_combinations_set()
        model, info = judge.train(
            folder,
            train.images,
            [i.spec for i in train.items],
            c.seed,
            c.steps["judge"],
            60 * c.max_minutes["judge"],
            batch_size=c.batch_sizes["judge"],
        )
        seen, unseen = self.heldout_sets()
        info["heldout_accuracy"] = judge.accuracy(model, seen.images, [i.spec for i in seen.items])
        info["unseen_accuracy"] = judge.accuracy(model, unseen.images, [i.spec for i in unseen.items])
        return info

    def _marian(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import marian

        c = self.config
        return marian.train(folder, self.translation_pairs(), c.seed, c.steps["marian"], 60 * c.max_minutes["marian"], batch_size=c.batch_sizes["marian"])

    def _clip(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import clip

        c = self.config
        train = self.train_set()
        return clip.train(folder, train.items, train.images, c.seed, c.steps["clip"], 60 * c.max_minutes["clip"], batch_size=c.batch_sizes["clip"])

    def _vae(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import sd

        c = self.config
        train = self.all_combinations_set()
        vae, info = sd.train_vae(folder, train.images, c.seed, c.steps["vae"], 60 * c.max_minutes["vae"], batch_size=c.batch_sizes["vae"])
        means, _ = sd.encode_latents(vae, train.images)
        info["scaling_factor"] = round(float(1.0 / means.std()), 5)
        info["heldout_reconstruction_mae"] = round(sd.reconstruction_error(vae, self.heldout_set().images[:256]), 3)
        return info

    def _unet(self, folder: Path) -> dict[str, Any]:
        from diffusers import AutoencoderKL

        from fashion_studio.mini import sd

        c = self.config
        vae_info = self.record["stages"]["vae"]
        text_encoder, tokenizer = sd.text_encoder_from_clip(self.out_dir / "clip")
        train = self.train_set()
        started = time.perf_counter()
        latents = sd.encode_latents(AutoencoderKL.from_pretrained(self.vae_folder()).eval(), train.images)
        encode_seconds = time.perf_counter() - started
        _, info = sd.train_unet(
            folder,
            train.items,
            latents,
            vae_info["scaling_factor"],
            text_encoder,
            tokenizer,
            c.seed,
            c.steps["unet"],
            60 * c.max_minutes["unet"],
            batch_size=c.batch_sizes["unet"],
        )
        info["latent_encoding_seconds"] = round(encode_seconds, 1)
        return info

    def _shots(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import shots
        from fashion_studio.mini.segmenter import figure_set

        c = self.config
        vae_dir, unet_dir = self.vae_folder(), self.unet_folder()
        figures = figure_set(self.work_dir, c.shot_figures, c.seed, TRAIN, c.workers)
        steps = {"unet": c.steps["shots"], "vae": c.steps["shots_vae"]}
        return shots.train(
            folder,
            vae_dir,
            unet_dir,
            self.out_dir / "clip",
            self.train_set(),
            figures,
            c.seed,
            steps,
            60 * c.max_minutes["shots"],
            self.record["stages"]["vae"]["scaling_factor"],
            batch_size=c.batch_sizes["shots"],
        )

    def _sd(self, folder: Path) -> dict[str, Any]:
        from diffusers import AutoencoderKL, UNet2DConditionModel

        from fashion_studio.mini import sd

        shots = self.shots_folder()
        vae = AutoencoderKL.from_pretrained(shots / "vae")
        unet = UNet2DConditionModel.from_pretrained(shots / "unet")
        text_encoder, tokenizer = sd.text_encoder_from_clip(self.out_dir / "clip")
        sd.assemble(folder, vae, unet, text_encoder, tokenizer, self.record["stages"]["vae"]["scaling_factor"])
        return {"vae": self.record["stages"]["vae"], "unet": self.record["stages"]["unet"], "shots": self.record["stages"]["shots"]}

    def _editor(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import editor

        c = self.config
        started = time.perf_counter()
        pairs = editor.pair_set(self.work_dir, c.edit_pairs, c.seed, TRAIN, workers=c.workers)
        render_seconds = time.perf_counter() - started
        _, info = editor.train_editor(
            folder,
            self.out_dir / MODEL_STAGES["sd"],
            pairs,
            c.seed,
            c.steps["editor"],
            60 * c.max_minutes["editor"],
            batch_size=c.batch_sizes["editor"],
        )
        info["pair_rendering_seconds"] = round(render_seconds, 1)
        return info

    def _segmenter(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import segmenter

        c = self.config
        steps = {"sam": c.steps["segmenter"], "parser": c.steps["parser"]}
        batches = {"sam": c.batch_sizes["segmenter"], "parser": c.batch_sizes["parser"]}
        return segmenter.train(folder, self.work_dir, c.figures, c.seed, steps, 60 * c.max_minutes["segmenter"], batches, workers=c.workers)

    def _figure_judge(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import figure_judge

        c = self.config
        _, info = figure_judge.train(
            folder, c.seed, c.steps["figure-judge"], 60 * c.max_minutes["figure-judge"], batch_size=c.batch_sizes["figure-judge"], workers=c.workers
        )
        return info

    def _inpainter(self, folder: Path) -> dict[str, Any]:
        from fashion_studio.mini import inpainter

        c = self.config
        steps = {"unet": c.steps["inpainter"], "vae": c.steps["inpainter_vae"], "decoder": c.steps["inpainter_decoder"]}
        return inpainter.train(
            folder,
            self.work_dir,
            self.out_dir / MODEL_STAGES["sd"],
            c.inpaint_examples,
            c.seed,
            steps,
            60 * c.max_minutes["inpainter"],
            c.batch_sizes["inpainter"],
            c.workers,
        )

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
        if wanted & {"unet", "shots", "sd"}:
            # before the sd stage empties the pipeline folder they may be restored from
            for stage in ("vae", "unet"):
                if stage in self.record["stages"] and "shots" not in self.record["stages"]:
                    self._restored(stage)
            if "sd" in wanted and "shots" not in wanted and "shots" in self.record["stages"]:
                self.shots_folder()
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
            info = getattr(self, f"_{stage.replace('-', '_')}")(_fresh(folder) if stage != "data" else folder)
            info["wall_seconds"] = round(time.perf_counter() - started, 1)
            info["run_id"] = f"{stage}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
            # The cap this stage ran under (time-scale included): stages of one family may come from runs
            # with different options, and `config` holds only the latest run's.
            info["max_minutes"] = self.config.max_minutes.get(stage)
            info["time_scale"] = self.config.time_scale
            info["machine"] = machine(self.config.threads)
            self.record["stages"][stage] = info
            self.record["config"] = asdict(self.config)
            folder.mkdir(parents=True, exist_ok=True)
            mark_complete(folder, {"family": f"fashion-mini/{stage}", "key": key})
            write_json(self.record_path, self.record)
            logger.info("stage %s done in %.0f s", stage, info["wall_seconds"])
        self.record["total_training_seconds"] = round(sum(s.get("wall_seconds", 0.0) for name, s in self.record["stages"].items() if name in STAGES), 1)
        write_json(self.record_path, self.record)
        return self.record


def machine(threads: int) -> dict[str, Any]:
    """Where a stage ran: the CPU, its logical cores, the torch threads it was given and OpenMP's wait policy
    (PASSIVE costs a capped stage a share of its steps: docs/training-speed.md)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "torch_threads": threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset")}


# Where each stage leaves its weights (relative to the family folder, or to the work folder for "work/").
WEIGHTS: dict[str, str] = {
    "judge": "judge/model.safetensors",
    "marian": "marian/model.safetensors",
    "clip": "clip/model.safetensors",
    "vae": "work/vae/diffusion_pytorch_model.safetensors",
    "unet": "work/unet/diffusion_pytorch_model.safetensors",
    "shots": "work/shots/unet/diffusion_pytorch_model.safetensors",
}
# Where the shipped family keeps them: the pipeline holds the shots stage's UNet (the vae and unet
# stages' weights stay in the work folder, compared there).
SHIPPED_WEIGHTS = {**WEIGHTS, "shots": "sd/unet/diffusion_pytorch_model.safetensors"}


def weights_path(where: str, family: Path, work: Path) -> Path:
    """A `WEIGHTS` / `SHIPPED_WEIGHTS` entry as a path: under the work folder for "work/...", else the family's."""
    return work / where.removeprefix("work/") if where.startswith("work/") else family / where


def file_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_reproducible(out_dir: Path, work_dir: Path, stages: Iterable[str], scratch: Path) -> dict[str, Any]:
    """Retrain `stages` of the family in `out_dir` from its own record (same configuration, same inputs:
    the upstream models are copied, the rendered data is shared) into `scratch`, compare the weights byte
    for byte with the shipped ones, and keep the verdict in the family's training record."""
    out_dir, work_dir, scratch = Path(out_dir), Path(work_dir), Path(scratch)
    record = read_json(out_dir / TRAINING_RECORD)
    fields = {k: v for k, v in record["config"].items() if k in MiniConfig.__dataclass_fields__}
    results: dict[str, Any] = {}
    for stage in stages:
        if stage not in WEIGHTS:
            raise ValueError(f"stage {stage!r} has no weights to compare; one of {sorted(WEIGHTS)}")
        info = record["stages"][stage]
        # The stage's own configuration: the steps and batch of the run that made the shipped weights.
        config = MiniConfig(**fields)
        config.steps = {**config.steps, stage: info.get("planned_steps", config.steps[stage])}
        config.batch_sizes = {**config.batch_sizes, stage: info.get("batch_size", config.batch_sizes[stage])}
        config.max_minutes = {**config.max_minutes, stage: 1e6}  # never cut short: the steps decide
        if info.get("stopped_early") or any(isinstance(part, dict) and part.get("stopped_early") for part in info.values()):
            raise ValueError(f"the shipped {stage} stopped at its time cap: its steps cannot be repeated")
        kept = weights_path(SHIPPED_WEIGHTS[stage], out_dir, work_dir)
        if not kept.is_file():
            raise ValueError(f"the {stage} stage's weights are not at {kept} (the vae and unet stages' are kept in the work folder, not shipped)")
        if scratch.exists():
            shutil.rmtree(scratch)
        family, work = scratch / "family", scratch / "work"
        family.mkdir(parents=True)
        work.mkdir()
        (work / "data").symlink_to((work_dir / "data").resolve(), target_is_directory=True)
        for name in ("vae", "unet"):  # what the shots stage fine-tunes
            if name != stage and (work_dir / name).is_dir():
                shutil.copytree(work_dir / name, work / name)
        for name in ("clip", "sd"):
            if (out_dir / name).is_dir():
                shutil.copytree(out_dir / name, family / name)
        (family / TRAINING_RECORD).write_text((out_dir / TRAINING_RECORD).read_text())
        trainer = Trainer(family, work, config)
        if stage == "unet":
            trainer.vae_folder()
        started = time.perf_counter()
        trainer.run([stage], force=True)
        shipped, again = file_digest(kept), file_digest(weights_path(WEIGHTS[stage], family, work))
        results[stage] = {
            "identical": shipped == again,
            "shipped_sha256": shipped,
            "rerun_sha256": again,
            "shipped_run": info.get("run_id"),
            "checked": time.strftime("%Y-%m-%d"),
            "seconds": round(time.perf_counter() - started, 1),
            "machine": machine(config.threads),
        }
        logger.info("%s: %s", stage, "identical" if shipped == again else "different")
    record = read_json(out_dir / TRAINING_RECORD)
    record.setdefault("reproducibility", {}).update(results)
    write_json(out_dir / TRAINING_RECORD, record)
    return results


def train_all(out_dir: Path, work_dir: Path, config: MiniConfig | None = None, only: Iterable[str] | None = None, force: bool = False) -> dict[str, Any]:
    return Trainer(out_dir, work_dir, config or MiniConfig()).run(only, force)


__all__ = ["MARKER", "MiniConfig", "STAGES", "Trainer", "check_reproducible", "train_all"]
