"""One typed settings object for the library, the CLI and the services.

Values come from environment variables prefixed `FASHION_` (nested with `__`), an optional `.env`
file, and CLI flags that override them. Nothing in a handler is hard-coded.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODELS_DIR = PROJECT_ROOT / "models"

Runtime = Literal["torch", "onnx", "triton"]

DEFAULT_GENERATION_TEMPLATE = (
    "Professional product photography of {subject}{details}, placed on a clean white background, "
    "laid flat, studio lighting, 8k, 85mm lens f/2.8, no humans, no mannequins, perfectly centered"
)
DEFAULT_CLIP_TEMPLATE = "Product image of {subject}"
DEFAULT_NEGATIVE_PROMPT = "blurry, low quality, watermark, text artifacts, cropped, human, mannequin"
# What the CLIP-based safety filter looks for when the model folder ships no safety checker.
DEFAULT_SAFETY_CONCEPTS = (
    "nudity",
    "naked person",
    "explicit sexual content",
    "pornography",
    "exposed genitals",
    "graphic violence",
    "gore",
    "blood and injury",
)


class Limits(BaseSettings):
    """Bounds on request values; the error for a value outside names the bound."""

    max_prompt_chars: int = 2000
    min_size: int = 8
    max_size: int = 2048
    size_multiple: int = 8
    max_steps: int = 100
    max_guidance: float = 30.0
    max_images_per_prompt: int = 4
    max_description_chars: int = 5000
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_texts_per_request: int = 64
    max_body_bytes: int = 16 * 1024 * 1024
    # A conversation: one shopper message, and the turns one session may hold.
    max_message_chars: int = 500
    max_session_turns: int = 200
    # An edit's instruction ("make it navy", "add stripes").
    max_instruction_chars: int = 500


class Batching(BaseSettings):
    """Adaptive batching knobs of the batchable services."""

    max_batch_size: int = 8
    max_latency_ms: int = 60_000
    timeout_s: int = 300
    max_concurrency: int = 64
    # Requests past `max_concurrency` wait for a slot, first come first served, up to this many
    # (None: as many as `max_concurrency`) for at most `queue_wait_s`; the rest are shed with 429.
    max_queued: int | None = Field(None, ge=0)
    queue_wait_s: float = Field(3.0, ge=0)
    # A model service is shared by every gateway replica, so it admits more than one gateway does;
    # it should not turn away work a gateway has already accepted.
    service_max_concurrency: int = 256
    # A short model call (scoring, embedding, popularity) that gets no answer in this long is made
    # again rather than left to hold its request until `timeout_s`.
    short_call_timeout_s: float = Field(30.0, gt=0)

    @property
    def queue_length(self) -> int:
        return self.max_concurrency if self.max_queued is None else self.max_queued


ModelRole = Literal["generator", "scorer", "translator", "editor", "segmenter", "inpainter"]


def available_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a
    container's `resources.limits.cpu`)."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, round(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


class Threads(BaseSettings):
    """CPU threads of each model process (PyTorch intra-op, ONNX Runtime intra-op), so that the model
    processes sharing a machine do not oversubscribe its cores: a process whose threads wait on a busy
    core stalls every one of its parallel regions. Unset, the generator and the editor (diffusion
    models both) take every core and the other model services one each: the scorer's and translator's
    calls are short and come between the generator's, and a try-on or a mask is a one-off request that
    must not slow the generator down."""

    generator: int | None = Field(None, ge=1)
    scorer: int | None = Field(None, ge=1)
    translator: int | None = Field(None, ge=1)
    editor: int | None = Field(None, ge=1)
    segmenter: int | None = Field(None, ge=1)
    inpainter: int | None = Field(None, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FASHION_", env_nested_delimiter="__", env_file=".env", extra="ignore")

    # Models: a local folder in Hugging Face layout (relative ones under `models_dir`) or a hub id. The
    # defaults are the small trained fashion-mini family shipped in models/ (docs/fashion-mini.md).
    models_dir: Path = DEFAULT_MODELS_DIR
    generator: str = "fashion-mini/sd"
    translator: str = "fashion-mini/marian"
    scorer: str = "fashion-mini/clip"
    # Instruction-based editing: an InstructPix2Pix pipeline (production: timbrooks/instruct-pix2pix).
    editor: str = "fashion-mini/editor"
    # Garment masks: a Segment Anything model (production: facebook/sam-vit-base) and a clothes parser for
    # masks by category (production: mattmdjaga/segformer_b2_clothes); unset, the parser is the
    # segmenter folder's `parser/` when it has one (fashion-mini's does).
    segmenter: str = "fashion-mini/segmenter"
    parser: str | None = None
    # Masked re-generation and try-on: one diffusers inpainting pipeline (a 9-channel UNet; production:
    # stable-diffusion-v1-5/stable-diffusion-inpainting). Try-on runs it CatVTON's way: the person over
    # the garment in one input canvas, the prompt empty.
    inpainter: str = "fashion-mini/inpainter"
    # CatVTON's released try-on weights over that inpainting UNet (production: the base
    # booksforcharlie/stable-diffusion-inpainting with zhengchong/CatVTON/mix-48k-1024/attention, and its
    # VAE stabilityai/sd-vae-ft-mse): `/tryon` then runs the UNet with these self-attention weights and no
    # cross-attention; `/inpaint` keeps the checkpoint's own.
    tryon_attention: str | None = None
    tryon_vae: str | None = None
    llm: str | None = None
    lora: Annotated[list[str], NoDecode] = Field(default_factory=list, description="LoRA adapters, comma-separated: path or hub id, optionally '@weight'")
    revision: str | None = None
    runtime: Runtime = "torch"
    onnx_dir: Path | None = None
    triton_url: str = "127.0.0.1:8001"
    # Export and Triton (runtime "onnx"/"triton"): exported graphs are found in `onnx_dir`, else in
    # `onnx_cache_dir`, keyed by weights, precision, opset and profile; loading never exports (a missing
    # export is an error naming the `python -m export onnx` command that makes it).
    onnx_cache_dir: Path = PROJECT_ROOT / "var" / "onnx"
    onnx_precision: Literal["fp32", "fp16"] = "fp32"
    onnx_opset: int = 18
    export_min_size: int = 32
    export_max_size: int = 1024
    export_max_batch: int | None = Field(None, description="Largest batch the exported profiles cover; defaults to batching.max_batch_size.")
    triton_model_repository: Path = PROJECT_ROOT / "model_repository"
    triton_max_queue_delay_us: int = 2_000
    triton_max_queue_size: int = 64
    triton_queue_timeout_s: float = 30.0
    triton_instances: int = 1
    triton_client_timeout_s: float = 60.0
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    torch_threads: int | None = None
    png_compress_level: int = Field(
        1,
        ge=0,
        le=9,
        description="zlib level of the PNGs the services encode (once per image). Level 1 against PIL's default 6: a quarter of the time, "
        "about 17% more bytes (1024x1024: 0.18 s against 0.66 s on one core, docs/benchmarks-gpu.md).",
    )
    warmup: bool = Field(True, description="Run one generation at the default shape before a generator reports ready.")
    generator_scores: bool = Field(
        True,
        description="The generator's process also holds the scorer's CLIP and scores each image against its prompt on the step "
        "scheduler's thread, between denoising steps, for /generate, /generate_image and /model_shot (one process per "
        "accelerator; on a shared CPU the scorer's own process takes the generator's cores mid-step). With the CLIP safety "
        "concept filter, or off, the gateway calls the scorer service, as it does for every other score. The Kubernetes overlays turn it off: there the scorer is a "
        "Deployment of its own.",
    )
    model_wait_s: float = Field(0.0, description="How long a service waits for a missing model folder to appear (a volume still being filled) before failing.")

    # Generation defaults (requests may override within limits): what fashion-mini was evaluated at.
    # FLUX.1-schnell wants 4 steps without guidance, SDXL about 30 steps at guidance 5-7.
    default_steps: int = 20
    default_guidance: float = 4.0
    default_width: int = 64
    default_height: int = 64
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    model_shot_negative_prompt: str = Field(
        "",
        description="The negative prompt of /model_shot when a request names none (empty: none). Not `negative_prompt`: the "
        "catalog's flat-lay negative names 'human, mannequin', which a model shot must draw (docs/fashion-mini.md, Model shots, measures what it costs).",
    )
    # Edit defaults (requests may override within limits): what fashion-mini's editor was evaluated at;
    # timbrooks/instruct-pix2pix's own are 7.5 and 1.5 at 20-100 steps.
    edit_steps: int = 20
    edit_guidance: float = Field(7.5, description="Text guidance of an edit: how strongly the instruction is followed.")
    edit_image_guidance: float = Field(1.2, description="Image guidance of an edit: how closely the source image is kept.")
    # Inpainting and try-on defaults: what fashion-mini's inpainter was evaluated at (CatVTON's own
    # try-on guidance is 2.5).
    inpaint_steps: int = 20
    inpaint_guidance: float = 5.0
    tryon_guidance: float = 2.5

    # Catalog pipeline.
    generation_template: str = DEFAULT_GENERATION_TEMPLATE
    clip_template: str = DEFAULT_CLIP_TEMPLATE
    clip_threshold: float = 25.0
    max_attempts: int = 3
    translation_beams: int = 1
    translation_max_new_tokens: int = 128
    translation_min_confidence: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Translations less confident than this (the probability of their least likely token) are unreliable: the catalog prompt then uses the source text's attributes alone.",
    )

    # Storage: any fsspec URL; a local folder by default. For `s3://` an endpoint (MinIO, SeaweedFS, a
    # cloud's S3 API) and static credentials may be set here; unset, s3fs uses the standard AWS chain
    # (AWS_* variables, a mounted profile, or the pod's workload identity), which production prefers.
    storage_url: str = str(PROJECT_ROOT / "var" / "images")
    storage_endpoint_url: str | None = None
    storage_key: SecretStr | None = None
    storage_secret: SecretStr | None = None
    storage_region: str | None = None

    # Service-level objectives and batching.
    slo_seconds_per_image: float = 2.0
    slo_error_ratio: float = Field(0.01, description="Load-test gate: largest share of requests that may fail (shed 429/503 excluded).")
    limits: Limits = Field(default_factory=Limits)
    batching: Batching = Field(default_factory=Batching)
    threads: Threads = Field(default_factory=Threads)

    # API keys: off unless keys are configured, from a hash file (`fashion-studio keys`) and/or the
    # environment (a Kubernetes Secret); then `Authorization: Bearer KEY` is required, with a per-key
    # token bucket. See fashion_studio/auth.py.
    api_keys_file: Path | None = None
    api_keys: SecretStr | None = Field(None, description="Comma-separated keys; hashed in memory at start, never logged.")
    rate_limit_per_minute: float = Field(60.0, gt=0, description="Per-key sustained rate; a key in the file may carry its own.")
    rate_limit_burst: int = Field(10, ge=1, description="Per-key bucket size: requests allowed at once after a quiet spell.")

    # Safety checking of generated images (fashion_studio/safety.py): "auto" runs the diffusers
    # safety checker when the generator's folder ships one and nothing otherwise; "clip" scores each
    # image against `safety_concepts` with the scorer and blocks at `safety_threshold`.
    safety_check: Literal["auto", "diffusers", "clip", "off"] = "auto"
    safety_threshold: float = Field(28.0, ge=0.0, le=100.0, description="CLIP score (100 x cosine) at which a concept counts as present.")
    safety_concepts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_SAFETY_CONCEPTS))

    # Shutdown: after SIGTERM the gateway takes no new work and gives accepted requests this long.
    shutdown_grace_s: float = Field(60.0, gt=0)

    # Popularity (fashion_studio/popularity): the product catalog folder, the append-only event log
    # (`sqlite:///path` is embedded; relative paths under the project) and the trained models' folder.
    products_dir: Path = PROJECT_ROOT / "var" / "products"
    events_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'events.db'}"
    popularity_model: str = "fashion-mini/popularity"

    # Product index (fashion_studio/index) for `/recommend`: a folder is the embedded store (nothing to
    # start); http(s):// or qdrant:// is a Qdrant cluster (with `index_api_key`). `make serve` builds a
    # demo shop's index into the default folder first.
    index_url: str = str(PROJECT_ROOT / "var" / "index")
    index_collection: str = "products"
    index_api_key: SecretStr | None = None
    index_text_weight: float = Field(0.3, ge=0.0, le=1.0, description="Share of an article's text in its vector, beside its image (docs/recommend.md).")
    index_query_expansion: int = Field(
        1, ge=0, le=50, description="Image queries: the first N products' vectors join the query before the final search (docs/recommend.md); 0: off."
    )
    index_search_threads: int = Field(
        2, ge=1, le=64, description="BLAS threads of one search of the embedded index: its scan is memory-bound, two halve it at 100,000 products."
    )
    index_expansion_weight: float = Field(1.0, ge=0.0, le=10.0, description="Weight of the first products' mean vector in an expanded image query.")
    recommend_max_k: int = Field(50, ge=1, description="Most products one /recommend answer may ask for.")

    # Conversation sessions (fashion_studio/sessions): `sqlite:///PATH` is embedded (one file that several
    # gateway processes on a host share; relative paths under the project), `redis://HOST:PORT/DB` a
    # server that gateway replicas share. Unset: `sessions.db` under a local storage_url, else var/sessions.db.
    sessions_url: str | None = None
    sessions_ttl_days: float = Field(30.0, gt=0, description="A session untouched this long is gone (404); every turn restarts the clock.")

    @field_validator("safety_concepts", mode="before")
    @classmethod
    def _split_concepts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("lora", mode="before")
    @classmethod
    def _split_lora(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def threads_for(self, role: ModelRole) -> int:
        """CPU threads for the process serving `role`: its `threads` setting, else `torch_threads`,
        else the default budget (every available core for the generator, one for the others)."""
        explicit = getattr(self.threads, role)
        if explicit is not None:
            return explicit
        if self.torch_threads is not None:
            return self.torch_threads
        return available_cores() if role in ("generator", "editor") else 1

    def for_process(self, role: ModelRole) -> Settings:
        """These settings for the process serving `role`: `torch_threads` set to its thread budget."""
        return self.model_copy(update={"torch_threads": self.threads_for(role)})

    def model_path(self, ref: str) -> str:
        """Resolve a reference relative to `models_dir` when such a folder exists there."""
        candidate = Path(ref)
        if not candidate.is_absolute() and (self.models_dir / candidate).exists():
            return str(self.models_dir / candidate)
        return ref


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
