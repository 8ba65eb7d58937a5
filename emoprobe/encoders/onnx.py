"""ONNX helpers shared by the encoders that ship as ONNX graphs: sessions, hidden layers as outputs,
and random-init twins that keep the graph (the architecture) and replace its learned weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..errors import MissingPackageError

THREADS = 1  # onnxruntime threads per session: extraction shares 2 busy cores, one op thread each is fastest


def package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise MissingPackageError(f"package {package!r} is not installed (see requirements.txt)")
    path = Path(spec.origin).parent.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not in the installed {package} (wrong version?)")
    return path


def load(path: str | Path):
    import onnx

    return onnx.load(str(path))


def session(model, threads: int = THREADS):
    """An onnxruntime CPU session for an onnx.ModelProto, with a fixed thread count."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), sess_options=options,
                                providers=["CPUExecutionProvider"])


def add_outputs(model, names: list[str]):
    """The model with intermediate tensors `names` appended to its graph outputs (typed by shape
    inference), so one run returns the hidden layers after the original outputs."""
    import onnx

    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    missing = [n for n in names if n not in inferred]
    if missing:
        raise KeyError(f"tensors not in the graph: {missing}")
    model.graph.output.extend(inferred[n] for n in names)
    return model


def randomize_initializers(model, seed: int, keep: tuple[str, ...] = ()) -> list[str]:
    """Replace the learned weights of `model` in place with seeded random values; returns their names.

    Learned weights are the float and int8 initializers with more than one element, except names
    starting with a `keep` prefix (fixed signal processing such as STFT kernels). Each gets a
    zero-mean normal with its own standard deviation, so every layer keeps its trained scale and
    activations neither explode nor vanish; int8 tensors (dynamically quantized graphs) are rounded
    and clipped to [-127, 127] and keep their scales and zero points. Single numbers (exponents,
    clip bounds, quantization scales and zero points) and integer shape tensors are kept.
    """
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    changed = []
    for i, tensor in enumerate(model.graph.initializer):
        values = numpy_helper.to_array(tensor)
        learned = values.dtype in (np.float32, np.float64, np.int8) and values.size > 1
        if not learned or tensor.name.startswith(keep):
            continue
        noise = rng.normal(0.0, float(values.astype(np.float64).std()), values.shape)
        if values.dtype == np.int8:
            noise = np.clip(np.round(noise), -127, 127)
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(noise.astype(values.dtype), tensor.name))
        changed.append(tensor.name)
    return changed
