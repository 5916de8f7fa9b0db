"""Step-level scheduling of diffusion requests, so that a long request does not hold short ones hostage.

Batch-at-a-time dispatch runs a batch to its end: behind a 100-step request with four guided images,
every other request waits for all of its UNet calls. Here the unit of work is one denoising step, as
continuous batching does it for language models:

- each request keeps its own diffusers scheduler (DPM-Solver++ is multistep, its history is per
  request), its own latents and its own `torch.Generator`s, so its image depends only on its seed and
  parameters, as with a pipeline call;
- requests with equal group keys (`GenerationRequest.shape_key`, the key `group_by_shape` batches by:
  size, steps, guidance and LoRA adapters) join and leave a running batch between steps: their
  latents and timesteps are concatenated for one UNet call, whatever step each of them is at, with
  the group's adapters active;
- groups of different keys take turns, one UNet call each, so a request waits at most one step of
  every other group between two of its own;
- a request cancelled by its client, or past its deadline, leaves at the next step and its remaining
  steps never run; a queued one never starts.

The scheduler's thread is the only user of the pipeline once it runs. The step loop drives Stable
Diffusion 1.x/2.x UNets (any runtime: the ONNX and Triton UNets take one timestep per sample too).
Other families (SDXL, FLUX) run one whole request per turn through `Generator.generate`, which stops
at the deadline; there, cancellation reaches queued requests only.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Hashable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fashion_studio import metrics
from fashion_studio.errors import DeadlineExceededError, InvalidInputError, RequestCancelledError
from fashion_studio.generation import MAX_SEED, GenerationRequest, GenerationResult, Generator
from fashion_studio.settings import Settings

if TYPE_CHECKING:
    from fashion_studio.scoring import Scorer

logger = logging.getLogger(__name__)

StopReason = Literal["client", "deadline"]


# How far past its native resolution a model is asked to draw: beyond about twice the size it was
# trained at, a diffusion model repeats its subject and the work grows with the square of the side.
NATIVE_SIZE_RATIO = 2
# FLUX's transformer config has no sample size; its pipeline defaults to 128 latent pixels a side.
FLUX_LATENT_SIDE = 128


@dataclass(frozen=True)
class CostLimits:
    """What one request may cost, following the model it runs on.

    A request's cost is its UNet (or transformer) work: pixels x steps x images x guidance passes,
    counted in units of one step of one image at the model's native size. A request may spend at most
    what the deployment's largest request at native size would (`max_steps` steps of
    `max_images_per_prompt` guided images), and no side may exceed `NATIVE_SIZE_RATIO` times the
    native one (nor `max_size`, nor fall under what the deployment's defaults ask for).
    """

    native_width: int
    native_height: int
    max_width: int
    max_height: int
    max_cost: float
    guidance_passes: int = 2

    @classmethod
    def for_native_size(cls, width: int, height: int, settings: Settings, guidance_passes: int = 2) -> CostLimits:
        limits = settings.limits

        def side(native: int, default: int) -> int:
            wanted = max(native * NATIVE_SIZE_RATIO, default)
            return max(limits.min_size, min(limits.max_size, wanted - wanted % limits.size_multiple))

        return cls(
            native_width=width,
            native_height=height,
            max_width=side(width, settings.default_width),
            max_height=side(height, settings.default_height),
            max_cost=float(limits.max_steps * limits.max_images_per_prompt * guidance_passes),
            guidance_passes=guidance_passes,
        )

    @classmethod
    def for_model(cls, folder: str | Path | None, settings: Settings) -> CostLimits:
        """From a diffusers folder's configs (UNet sample size x VAE scale factor); with no readable
        folder, the deployment's default size counts as native."""
        native = native_size(Path(folder)) if folder is not None else None
        width, height = native or (settings.default_width, settings.default_height)
        passes = 1 if folder is not None and (Path(folder) / "transformer").is_dir() else 2  # FLUX embeds guidance
        return cls.for_native_size(width, height, settings, passes)

    def passes(self, guidance: float) -> int:
        return self.guidance_passes if guidance > 1.0 else 1

    def cost(self, width: int, height: int, steps: int, num_images: int, guidance: float) -> float:
        pixels = width * height / (self.native_width * self.native_height)
        return pixels * steps * num_images * self.passes(guidance)

    def check(self, request: GenerationRequest) -> GenerationRequest:
        """Raise `InvalidInputError` naming the field to change, its value and its limit here."""
        for name, limit in (("width", self.max_width), ("height", self.max_height)):
            value = getattr(request, name)
            if value > limit:
                raise InvalidInputError(
                    name, value, f"must be at most {limit} for this model (native {self.native_width}x{self.native_height}, at most {NATIVE_SIZE_RATIO}x that)"
                )
        self.check_cost(request.width, request.height, request.steps, request.num_images, request.guidance)
        return request

    def check_cost(self, width: int, height: int, steps: int, num_images: int, guidance: float) -> None:
        """Over the budget, name `steps` with the most that fit (or `num_images` when no step does)."""
        cost = self.cost(width, height, steps, num_images, guidance)
        if cost <= self.max_cost:
            return
        per_image_step = cost / (steps * num_images)
        budget = f"a request may cost {self.max_cost:g} image-steps at {self.native_width}x{self.native_height}; this one costs {cost:g}"
        most_steps = math.floor(self.max_cost / (per_image_step * num_images))
        if most_steps >= 1:
            guided = " and guidance" if self.passes(guidance) > 1 else ""
            raise InvalidInputError("steps", steps, f"must be at most {most_steps} at {width}x{height} with {num_images} image(s){guided} ({budget})")
        most_images = max(1, math.floor(self.max_cost / per_image_step))
        raise InvalidInputError("num_images", num_images, f"must be at most {most_images} at {width}x{height} ({budget})")


def _settle(future: Future, result: GenerationResult | None = None, error: BaseException | None = None) -> None:
    """Complete a future unless its owner cancelled it first."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


def local_model_folder(settings: Settings) -> Path | None:
    """The generator's folder when it is on this machine (a folder, or in the Hugging Face cache),
    without downloading anything: a gateway reads the model's configs, never its weights."""
    local = Path(settings.model_path(settings.generator)).expanduser()
    if local.is_dir():
        return local
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(settings.generator, revision=settings.revision, local_files_only=True))
    except Exception:  # huggingface_hub raises several kinds; all mean "not here"
        return None


def native_size(folder: Path) -> tuple[int, int] | None:
    """The width and height a diffusers pipeline folder was trained at, from its configs."""
    try:
        vae = json.loads((folder / "vae" / "config.json").read_text())
        scale = 2 ** (len(vae["block_out_channels"]) - 1)
        unet = folder / "unet" / "config.json"
        if unet.is_file():
            sample = json.loads(unet.read_text())["sample_size"]
        elif (folder / "transformer").is_dir():
            sample = FLUX_LATENT_SIDE
        else:
            return None
    except (OSError, KeyError, TypeError, ValueError) as exc:
        logger.warning("native size of %s unreadable (%s); the default size counts as native", folder, exc)
        return None
    height, width = (sample, sample) if isinstance(sample, int) else sample
    return int(width) * scale, int(height) * scale


@dataclass(eq=False)
class _Job:
    """One request in the scheduler, with its own denoising state once it has started."""

    id: str
    request_id: str
    request: GenerationRequest
    deadline: float | None
    future: Future
    # Futures of the same request submitted again under the same id while this one ran (a call the
    # gateway made again after its connection was lost): they share this job's one result.
    followers: list[Future] = field(default_factory=list)
    submitted: float = field(default_factory=time.perf_counter)
    stop: StopReason | None = None
    seeds: list[int] = field(default_factory=list)
    generators: list[Any] = field(default_factory=list)
    scheduler: Any = None
    timesteps: Any = None
    latents: Any = None
    embeds: Any = None
    negative_embeds: Any = None
    step_kwargs: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    started: float = 0.0
    encode_s: float = 0.0
    denoise_s: float = 0.0
    compute_s: float = 0.0
    batch_images: int = 0
    batch_items: int = 0
    score: bool = False  # CLIP-score its images against its prompt, with the scheduler's scorer

    @property
    def key(self) -> Hashable:
        return self.request.shape_key()

    @property
    def abandoned(self) -> bool:
        """Every caller waiting on this job has cancelled its future."""
        return all(f.cancelled() for f in (self.future, *self.followers))

    def settle(self, result: GenerationResult | None = None, error: BaseException | None = None) -> None:
        for future in (self.future, *self.followers):
            _settle(future, result, error)

    @property
    def images(self) -> int:
        return self.request.num_images

    @property
    def steps_left(self) -> int:
        return self.request.steps - self.step


class StepScheduler:
    """Runs generation requests one denoising step at a time on one thread that owns the pipeline.

    `submit` returns a `concurrent.futures.Future` of the request's `GenerationResult`; `cancel` drops a
    request by id. `max_batch_images` bounds the images of one UNet call (guidance doubles the rows).
    With a `scorer`, the images finishing at a step are CLIP-scored against their prompts on this same
    thread before their futures settle (`GenerationResult.scores`): the scoring takes its turn between
    steps instead of taking the cores from under one, as a process of its own on the same cores does.
    """

    def __init__(self, generator: Generator, max_batch_images: int = 8, scorer: Scorer | None = None) -> None:
        self.generator = generator
        self.scorer = scorer
        self.pipeline = generator.pipeline
        self.max_batch_images = max(1, max_batch_images)
        self.stepwise = generator.family == "sd"
        self._cond = threading.Condition()
        self._waiting: dict[Hashable, deque[_Job]] = {}
        self._running: dict[Hashable, list[_Job]] = {}
        self._turns: deque[Hashable] = deque()
        self._jobs: dict[str, _Job] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="step-scheduler", daemon=True)
        self._thread.start()

    # --- the public side, called from any thread ---------------------------------------------------

    def submit(self, request: GenerationRequest, request_id: str | None = None, deadline: float | None = None, score: bool = False) -> Future:
        """Queue a request; `request_id` names it for `cancel` (several requests may share one, as the
        attempts of one catalog article do). Cancelling the returned future cancels the request too, so
        an awaiting task that is cancelled (`asyncio.wrap_future`) takes its work with it. With `score`
        (and a scorer), its images come back CLIP-scored against its prompt."""
        job = _Job(id=uuid.uuid4().hex, request_id=request_id or "", request=request.with_seed(), deadline=deadline, future=Future(), score=score)
        with self._cond:
            if self._closed:
                raise RuntimeError("the step scheduler is closed")
            twin = self._twin(job) if request.seed is not None else None
            if twin is not None:  # the same call made again: wait on the work already under way
                logger.info("request %s: a seeded request submitted again joins its unfinished twin", job.request_id)
                twin.followers.append(job.future)
                if deadline is not None and twin.deadline is not None:
                    twin.deadline = max(twin.deadline, deadline)
                return job.future
            self._jobs[job.id] = job
            if job.key not in self._waiting and job.key not in self._running:
                self._turns.append(job.key)
            self._waiting.setdefault(job.key, deque()).append(job)
            self._cond.notify()
        return job.future

    def _twin(self, job: _Job) -> _Job | None:
        """An unfinished job of the same request id and the same request, for a request submitted with
        its seed (one that draws its own in `with_seed` is new work each time). Called with the lock held."""
        if not job.request_id:
            return None
        for other in self._jobs.values():
            if other.request_id == job.request_id and other.request == job.request and other.stop is None:
                return other
        return None

    def cancel(self, request_id: str, reason: StopReason = "client") -> int:
        """Drop every request submitted under `request_id`: a queued one at once, a running one before
        its next step. Returns how many were still unfinished."""
        with self._cond:
            jobs = [job for job in self._jobs.values() if request_id and job.request_id == request_id]
            for job in jobs:
                job.stop = job.stop or reason
                queue = self._waiting.get(job.key)
                if queue is not None and job in queue:
                    queue.remove(job)
                    self._drop(job)
                    self._forget_key_if_idle(job.key)
            self._cond.notify()
        return len(jobs)

    def pending(self) -> int:
        """Requests submitted and not finished."""
        with self._cond:
            return len(self._jobs)

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    # --- the loop, on the scheduler thread -----------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._turns and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                key = self._turns[0]
                self._turns.rotate(-1)
                batch = self._fill(key)
            if not batch:
                continue
            try:
                self._run_turn(batch)
            except Exception as exc:  # a failing turn fails its members only; the loop goes on
                logger.exception("generation step failed for %d request(s)", len(batch))
                self._fail(batch, exc)

    def _fill(self, key: Hashable) -> list[_Job]:
        """The key's running batch for its next step: stopped members leave, waiting ones join while
        they fit. Called with the lock held."""
        now = time.time()
        running = self._running.setdefault(key, [])
        queue = self._waiting.setdefault(key, deque())
        for job in [*running, *queue]:
            if job.stop is None and job.abandoned:
                job.stop = "client"
            elif job.stop is None and job.deadline is not None and now > job.deadline:
                job.stop = "deadline"
        for job in [j for j in running if j.stop]:
            running.remove(job)
            self._drop(job)
        for job in [j for j in queue if j.stop]:
            queue.remove(job)
            self._drop(job)
        images = sum(j.images for j in running)
        capacity = self.max_batch_images if self.stepwise else 1
        while queue and (not running or (self.stepwise and images + queue[0].images <= capacity)):
            job = queue.popleft()
            running.append(job)
            images += job.images
        self._forget_key_if_idle(key)
        return list(running)

    def _forget_key_if_idle(self, key: Hashable) -> None:
        if not self._running.get(key) and not self._waiting.get(key):
            self._running.pop(key, None)
            self._waiting.pop(key, None)
            if key in self._turns:
                self._turns.remove(key)

    def _drop(self, job: _Job) -> None:
        """Settle a stopped request and count the work it no longer needs. Called with the lock held."""
        self._jobs.pop(job.id, None)
        stage = "running" if job.started else "queued"
        reason = job.stop or "client"
        metrics.GENERATION_CANCELLATIONS.labels(reason=reason, stage=stage).inc()
        metrics.DENOISING_STEPS_SKIPPED.labels(reason=reason).inc(job.steps_left * job.images)
        logger.info("request %s dropped (%s, %s) with %d of %d steps left", job.request_id or job.id, reason, stage, job.steps_left, job.request.steps)
        if reason == "deadline":
            error: Exception = DeadlineExceededError(f"generation stopped at its deadline, after step {job.step} of {job.request.steps}")
        else:
            error = RequestCancelledError(f"request {job.request_id or job.id} was cancelled after step {job.step} of {job.request.steps}")
        job.settle(error=error)

    def _finish(self, job: _Job, result: GenerationResult | None = None, error: BaseException | None = None) -> None:
        with self._cond:
            self._jobs.pop(job.id, None)
            running = self._running.get(job.key)
            if running is not None and job in running:
                running.remove(job)
            self._forget_key_if_idle(job.key)
        job.settle(result, error)

    def _fail(self, batch: list[_Job], exc: Exception) -> None:
        for job in batch:
            self._finish(job, error=exc)

    def _run_turn(self, batch: list[_Job]) -> None:
        import torch

        with torch.inference_mode():
            if not self.stepwise:
                job = batch[0]
                job.started = job.started or time.perf_counter()
                try:
                    result = self.generator.generate([job.request], deadline=job.deadline)[0]
                except Exception as exc:
                    self._finish(job, error=exc)
                else:
                    job.step = job.request.steps
                    scores_of, score_s = self._score([(job, result.images)])
                    timings = {**result.timings, "batch_items": 1.0}
                    if job.id in scores_of:
                        timings["score"], timings["total"] = score_s, timings["total"] + score_s
                    self._finish(job, dataclasses.replace(result, timings=timings, scores=scores_of.get(job.id)))
                return
            # The group key holds the adapters, so one switch serves the encode, the step and the decode.
            adapters = self.generator.use_adapters(batch[0].request.lora)
            joining = [job for job in batch if job.scheduler is None]
            if joining:  # one text-encoder call for every request joining at this step
                self._start(joining)
                # each request counted once, in the call it joined, as a batch-at-a-time call would
                metrics.BATCH_SIZE.labels(method="generate").observe(len(joining))
            self._step(batch)
            finished = [job for job in batch if job.step >= len(job.timesteps)]
            if finished:  # one VAE call for every request finishing at this step
                for job, result in zip(finished, self._decode(finished, adapters)):
                    self._finish(job, result)

    # --- one request's denoising state ---------------------------------------------------------------

    def _guided(self, request: GenerationRequest) -> bool:
        """Classifier-free guidance, by the pipeline's own rule."""
        return request.guidance > 1.0 and self.pipeline.unet.config.time_cond_proj_dim is None

    def _start(self, jobs: list[_Job]) -> None:
        """Encode the prompts of the requests joining at this step in one call, draw each one's
        initial noise from its own generators and set up its own scheduler, as the pipeline's steps 3
        to 6 do."""
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        pipe = self.pipeline
        started = time.perf_counter()
        device = pipe._execution_device
        guided = self._guided(jobs[0].request)  # one group key: one guidance
        prompts = [job.request.prompt for job in jobs for _ in range(job.images)]
        # No negative prompt is the empty one, as the pipeline's own unconditional input.
        negatives = [job.request.negative_prompt or "" for job in jobs for _ in range(job.images)] if guided else None
        embeds, negative_embeds = pipe.encode_prompt(prompts, device, 1, guided, negatives)
        encode_s = time.perf_counter() - started
        images = len(prompts)
        for job, offset in zip(jobs, itertools.accumulate((job.images for job in jobs), initial=0)):
            request = job.request
            job.started = started
            job.embeds = embeds[offset : offset + job.images]
            job.negative_embeds = None if negative_embeds is None else negative_embeds[offset : offset + job.images]
            job.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
            job.scheduler.set_timesteps(request.steps, device=device)
            job.timesteps = job.scheduler.timesteps
            job.seeds = [(request.seed + i) % (MAX_SEED + 1) for i in range(request.num_images)]
            job.generators = [torch.Generator("cpu").manual_seed(s) for s in job.seeds]
            shape = (request.num_images, pipe.unet.config.in_channels, request.height // pipe.vae_scale_factor, request.width // pipe.vae_scale_factor)
            noise = randn_tensor(shape, generator=job.generators, device=torch.device(device), dtype=job.embeds.dtype)
            job.latents = noise * job.scheduler.init_noise_sigma
            accepted = set(inspect.signature(job.scheduler.step).parameters)
            job.step_kwargs = {"generator": job.generators} if "generator" in accepted else {}
            if "eta" in accepted:
                job.step_kwargs["eta"] = 0.0
            job.encode_s = encode_s
            job.compute_s += encode_s * job.images / images

    def _step(self, batch: list[_Job]) -> None:
        """One UNet call for every member, each at its own timestep, then each scheduler's step."""
        import torch

        pipe = self.pipeline
        started = time.perf_counter()
        guided = self._guided(batch[0].request)
        inputs, steps = [], []
        for job in batch:
            t = job.timesteps[job.step]
            inputs.append(job.scheduler.scale_model_input(job.latents, t))
            steps.append(t.reshape(1).expand(job.images))
        sample, timestep = torch.cat(inputs), torch.cat(steps)
        embeds = torch.cat([job.embeds for job in batch])
        if guided:  # unconditional rows first, as the pipeline orders them
            sample, timestep = torch.cat([sample, sample]), torch.cat([timestep, timestep])
            embeds = torch.cat([torch.cat([job.negative_embeds for job in batch]), embeds])
        timestep_cond = None
        if pipe.unet.config.time_cond_proj_dim is not None:
            scale = torch.tensor(batch[0].request.guidance - 1).repeat(sample.shape[0])
            timestep_cond = pipe.get_guidance_scale_embedding(scale, embedding_dim=pipe.unet.config.time_cond_proj_dim).to(sample)
        noise = pipe.unet(sample, timestep, encoder_hidden_states=embeds, timestep_cond=timestep_cond, return_dict=False)[0]
        if guided:
            uncond, text = noise.chunk(2)
            noise = uncond + batch[0].request.guidance * (text - uncond)
        offsets = itertools.accumulate((job.images for job in batch), initial=0)
        images = sum(job.images for job in batch)
        for job, offset in zip(batch, offsets):
            t = job.timesteps[job.step]
            job.latents = job.scheduler.step(noise[offset : offset + job.images], t, job.latents, **job.step_kwargs, return_dict=False)[0]
            job.step += 1
        elapsed = time.perf_counter() - started
        for job in batch:
            job.denoise_s += elapsed
            job.compute_s += elapsed * job.images / images
            job.batch_images = max(job.batch_images, images)
            job.batch_items = max(job.batch_items, len(batch))
        metrics.DENOISING_STEPS.inc(images)
        metrics.STEP_BATCH_IMAGES.observe(images)

    def _decode(self, jobs: list[_Job], adapters: dict[str, float]) -> list[GenerationResult]:
        """VAE decode of the requests finishing at this step in one call, the pipeline's safety
        checker if it has one, then PIL images, and with a scorer their CLIP scores in one call."""
        import torch

        pipe = self.pipeline
        started = time.perf_counter()
        latents = torch.cat([job.latents for job in jobs])
        decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
        decoded, nsfw = pipe.run_safety_checker(decoded, pipe._execution_device, jobs[0].embeds.dtype)
        denormalize = [True] * len(decoded) if nsfw is None else [not flagged for flagged in nsfw]
        images = pipe.image_processor.postprocess(decoded, output_type="pil", do_denormalize=denormalize)
        decode_s = time.perf_counter() - started
        offsets = list(itertools.accumulate((job.images for job in jobs), initial=0))
        scores_of, score_s = self._score([(job, images[offset : offset + job.images]) for job, offset in zip(jobs, offsets)])
        results = []
        for job, offset in zip(jobs, offsets):
            job.compute_s += decode_s * job.images / len(images)
            timings = {
                "queue": job.started - job.submitted,
                "encode": job.encode_s,
                "denoise": job.denoise_s,
                "decode": decode_s,
                "total": time.perf_counter() - job.started,
                "compute": job.compute_s,
                "batch_items": float(job.batch_items),
            }
            if job.id in scores_of:
                timings["score"] = score_s
            results.append(
                GenerationResult(
                    images=images[offset : offset + job.images],
                    seeds=job.seeds,
                    timings=timings,
                    batch_images=job.batch_images,
                    model=self.generator.name,
                    lora=adapters,
                    scores=scores_of.get(job.id),
                )
            )
        return results

    def _score(self, finished: list[tuple[_Job, list[Any]]]) -> tuple[dict[str, list[float]], float]:
        """CLIP scores, in one call, of the finished jobs' images that asked for them, against each job's
        prompt: job id -> its images' scores, and the seconds the call took. Empty without a scorer, or
        when scoring fails (logged): the images are still good, and the gateway then asks the scorer
        service instead."""
        wanted = [(job, images) for job, images in finished if job.score and images]
        if self.scorer is None or not wanted:
            return {}, 0.0
        started = time.perf_counter()
        try:
            scores = iter(self.scorer.score([im for _, images in wanted for im in images], [job.request.prompt for job, images in wanted for _ in images]))
        except Exception:
            logger.exception("scoring the images of %d finished request(s) in the generator failed; the gateway scores them", len(wanted))
            return {}, 0.0
        metrics.BATCH_SIZE.labels(method="score_in_generator").observe(sum(len(images) for _, images in wanted))
        return {job.id: [next(scores) for _ in images] for job, images in wanted}, time.perf_counter() - started
