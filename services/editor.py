"""The instruction-based editor (InstructPix2Pix) as a batchable BentoML service.

Adaptive batching hands `edit` a list of items; items that share a shape (working size, steps, text and
image guidance) run as one pipeline call, each with its own seed. An item past its deadline is not
run; an item that fails fails alone (a failing call is split in halves until the culprit is found),
and the rest of its batch still gets its edits.
"""

from __future__ import annotations

import logging
import time

import bentoml
from PIL import Image

from fashion_studio import metrics, models
from fashion_studio.editing import Editor, EditRequest, EditResult, group_by_shape
from fashion_studio.errors import DeadlineExceededError, InvalidInputError
from fashion_studio.settings import get_settings
from services.lifecycle import outlive_gateway
from services.loading import BackgroundLoad
from services.schemas import EditItem, EditOutput, ItemError, image_from_b64, png_b64

logger = logging.getLogger(__name__)
SETTINGS = get_settings()


def load_and_warm_up() -> Editor:
    """Load, then run one edit at the native size and default steps before reporting ready, so the
    first request does not pay for lazy allocations."""
    editor = Editor.load(SETTINGS.for_process("editor"))
    if SETTINGS.warmup:
        blank = Image.new("RGB", editor.native_size, (250, 250, 249))
        with models.one_thread():
            editor(
                EditRequest(blank, "warm-up", seed=0, steps=SETTINGS.edit_steps, guidance=SETTINGS.edit_guidance, image_guidance=SETTINGS.edit_image_guidance)
            )
    return editor


@outlive_gateway
@bentoml.service(
    name="editor",
    traffic={"timeout": SETTINGS.batching.timeout_s, "max_concurrency": SETTINGS.batching.service_max_concurrency},
    resources={"gpu": 1} if SETTINGS.device.startswith("cuda") else {"cpu": "1"},
    workers=1,
)
class EditorService:
    def __init__(self) -> None:
        self.model = BackgroundLoad("editor", load_and_warm_up, wait_s=SETTINGS.model_wait_s)

    def __is_ready__(self) -> bool:
        return self.model.ready

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.batching.max_batch_size, max_latency_ms=SETTINGS.batching.max_latency_ms)
    def edit(self, items: list[EditItem]) -> list[EditOutput]:
        editor = self.model.get()
        metrics.BATCH_SIZE.labels(method="edit").observe(len(items))
        outputs: list[EditOutput | None] = [None] * len(items)
        ready: dict[int, EditRequest] = {}
        for index, item in enumerate(items):
            try:
                if item.deadline is not None and time.time() > item.deadline:
                    raise DeadlineExceededError("the request's deadline passed while it waited for the editor")
                request = EditRequest(image_from_b64(item.png_b64), item.instruction, item.seed, item.steps, item.guidance, item.image_guidance).check(
                    SETTINGS.limits
                )
                ready[index] = editor.prepare(request)
            except (InvalidInputError, DeadlineExceededError) as exc:
                outputs[index] = EditOutput(error=ItemError.of(exc))
        indices = list(ready)
        for group in group_by_shape([ready[i] for i in indices]):
            members = [indices[k] for k in group]
            for index, output in self._run(editor, members, ready, items).items():
                outputs[index] = output
        return [output if output is not None else EditOutput(error=ItemError.of(RuntimeError("no answer"))) for output in outputs]

    def _run(self, editor: Editor, members: list[int], ready: dict[int, EditRequest], items: list[EditItem]) -> dict[int, EditOutput]:
        """One pipeline call for `members`; when it fails, each half again, so only the failing item fails."""
        deadlines = [items[i].deadline for i in members]
        deadline = None if None in deadlines else max(deadlines)  # type: ignore[type-var]
        try:
            results = editor.edit([ready[i] for i in members], deadline=deadline)
        except DeadlineExceededError as exc:
            return {i: EditOutput(error=ItemError.of(exc)) for i in members}
        except Exception as exc:
            if len(members) == 1:
                logger.exception("edit failed")
                return {members[0]: EditOutput(error=ItemError.of(exc))}
            half = len(members) // 2
            return {**self._run(editor, members[:half], ready, items), **self._run(editor, members[half:], ready, items)}
        observe(results, [items[i] for i in members], editor)
        return {
            i: EditOutput(
                png_b64=png_b64(r.image),
                seed=r.seed,
                width=r.image.width,
                height=r.image.height,
                model=r.model,
                timings=r.timings,
                batch_images=r.batch_images,
            )
            for i, r in zip(members, results)
        }


def observe(results: list[EditResult], items: list[EditItem], editor: Editor) -> None:
    """Queue time, edits and seconds per edit: each edit's share of the pipeline call it was in."""
    if not results:
        return
    timings = results[0].timings
    for item in items:
        if item.enqueued_at:
            metrics.STAGE_DURATION.labels(stage="edit_queue").observe(max(time.time() - item.enqueued_at - timings["total"], 0.0))
    per_edit = metrics.SECONDS_PER_EDIT.labels(model=editor.name, runtime=editor.runtime)
    for _ in results:
        per_edit.observe(timings["total"] / len(results))
    metrics.EDITS.labels(model=editor.name).inc(len(results))
