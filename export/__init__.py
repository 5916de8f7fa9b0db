"""Compile the models: ONNX with parity checks, TensorRT engines, and a Triton model repository.

Every component is declared once (`export.specs`): tensor names, dtypes, dynamic axes and profiles.
The ONNX export (`export.onnx_export`), the TensorRT build (`export.tensorrt_build`) and the Triton
configs (`export.triton_repo`) all read that declaration. `python -m export --help` lists the commands.
"""

from export.onnx_export import ExportResult, export_model, find_export, find_or_export
from export.specs import ComponentSpec, ExportProfile, TensorSpec, specs_for

__all__ = [
    "ComponentSpec",
    "ExportProfile",
    "ExportResult",
    "TensorSpec",
    "export_model",
    "find_export",
    "find_or_export",
    "specs_for",
]
