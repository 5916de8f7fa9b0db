"""Triton Python-backend model: runs one exported ONNX graph with ONNX Runtime on CPU.

Copied as `model.py` into each model of a `cpu` repository; it imports nothing from this project, only
numpy, onnxruntime and the backend's `triton_python_backend_utils`. The config is read once in
`initialize`. `execute` answers every request with exactly one response: requests whose tensors share
their non-batch shapes run as one ONNX Runtime call (that is where dynamic batching pays), and a
request that cannot run fails alone with a `TritonError`, never its batch neighbours.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:  # present inside tritonserver's Python-backend stub only
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported for inspection outside the server
    pb_utils = None

logger = logging.getLogger(__name__)


class RequestError(ValueError):
    """A request's own fault: reported to its sender, the others run on."""


@dataclass(frozen=True)
class ModelSettings:
    """The model's `parameters` in config.pbtxt, typed, with defaults."""

    onnx_file: str = "model.onnx"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    graph_optimization: str = "all"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelSettings:
        raw = {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}
        known = {f: raw[f] for f in cls.__dataclass_fields__ if f in raw and raw[f] != ""}
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown parameters {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        for name in ("intra_op_threads", "inter_op_threads"):
            if name in known:
                known[name] = int(known[name])
        return cls(**known)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: np.dtype
    rank: int  # the ONNX graph's rank, batch included


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        self.model_name = config["name"]
        self.settings = ModelSettings.from_config(config)
        self.max_batch_size = int(config.get("max_batch_size", 0))
        path = Path(args["model_repository"]) / args["model_version"] / self.settings.onnx_file
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings.intra_op_threads
        options.inter_op_num_threads = self.settings.inter_op_threads
        # Several models' stubs share the host's cores: a spinning pool would hold a core after each
        # call and slow the other models' stubs (and the client) while it spins.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.settings.graph_optimization]
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        ranks = {i.name: len(i.shape) for i in self.session.get_inputs()}
        self.inputs = [TensorInfo(i["name"], np.dtype(pb_utils.triton_string_to_numpy(i["data_type"])), ranks[i["name"]]) for i in config["input"]]
        self.outputs = [TensorInfo(o["name"], np.dtype(pb_utils.triton_string_to_numpy(o["data_type"])), 0) for o in config["output"]]
        missing = sorted({t.name for t in self.inputs} ^ set(ranks))
        if missing:
            raise ValueError(f"{self.model_name}: config and {path.name} disagree on inputs {missing}")
        logger.info("%s: %s loaded (max batch %d)", self.model_name, path, self.max_batch_size)

    def _read(self, request: Any) -> dict[str, np.ndarray]:
        arrays = {}
        for info in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, info.name)
            if tensor is None:
                raise RequestError(f"input {info.name!r} is missing")
            array = tensor.as_numpy()
            if array.dtype != info.dtype:
                raise RequestError(f"input {info.name!r} is {array.dtype}, expected {info.dtype}")
            # A per-item scalar arrives as [batch, 1] unless the config reshapes it; the graph wants [batch].
            if array.ndim == info.rank + 1 and array.shape[-1] == 1:
                array = array.reshape(array.shape[:-1])
            if array.ndim != info.rank:
                raise RequestError(f"input {info.name!r} has shape {list(array.shape)}, expected rank {info.rank}")
            arrays[info.name] = array
        batches = {a.shape[0] for a in arrays.values()}
        if len(batches) != 1:
            raise RequestError(f"inputs disagree on the batch size: {sorted(batches)}")
        return arrays

    def _run(self, items: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """One ONNX Runtime call for requests of one shape; outputs split back per request."""
        sizes = [next(iter(item.values())).shape[0] for item in items]
        feed = {t.name: np.concatenate([item[t.name] for item in items]) if len(items) > 1 else items[0][t.name] for t in self.inputs}
        results = self.session.run([o.name for o in self.outputs], feed)
        split = []
        start = 0
        for size in sizes:
            split.append({o.name: np.ascontiguousarray(r[start : start + size]).astype(o.dtype, copy=False) for o, r in zip(self.outputs, results)})
            start += size
        return split

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        parsed: dict[int, dict[str, np.ndarray]] = {}
        for index, request in enumerate(requests):
            try:
                parsed[index] = self._read(request)
            except RequestError as exc:
                responses[index] = self._error(exc)
        groups: dict[tuple, list[int]] = {}
        for index, arrays in parsed.items():
            signature = tuple((name, array.shape[1:]) for name, array in arrays.items())
            groups.setdefault(signature, []).append(index)
        for members in groups.values():
            self._answer(members, parsed, responses)
        return responses

    def _answer(self, members: list[int], parsed: dict[int, dict[str, np.ndarray]], responses: list[Any]) -> None:
        try:
            outputs = self._run([parsed[i] for i in members])
        except Exception as exc:  # ONNX Runtime's errors: find the request(s) at fault
            if len(members) > 1:
                for index in members:
                    self._answer([index], parsed, responses)
                return
            responses[members[0]] = self._error(exc)
            return
        for index, arrays in zip(members, outputs):
            responses[index] = pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(name, array) for name, array in arrays.items()])

    def _error(self, exc: Exception) -> Any:
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"{self.model_name}: {type(exc).__name__}: {exc}"))

    def finalize(self) -> None:
        self.session = None
