"""The embedding store (emoprobe/store/store.py) and the resumable extraction loop (emoprobe/store/extract.py).

Clips are short generated WAVs read with the real `load_audio`; the "encoder" is a cheap
deterministic function of the waveform with 3 layers, so results can be compared exactly.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tone, write_audio
from fakes import FunctionEncoder

from emoprobe.encoders import HANDCRAFTED, pool
from emoprobe.media.audio import load_audio
from emoprobe.store import identity
from emoprobe.store import store as store_module
from emoprobe.store.extract import run_extraction
from emoprobe.store.store import EmbeddingStore, available_stores

LAYERS, DIM = 3, 8


def fake_encode(waves):
    """(LAYERS, frames, DIM) from 10 ms frames of the wave, pooled like a real layered encoder."""
    out = []
    for wave in waves:
        frames = wave[: len(wave) // 160 * 160].reshape(-1, 160)[:, :DIM]
        out.append(pool(np.stack([frames * (layer + 1) for layer in range(LAYERS)]), 100.0))
    return out


def FakeEncoder(name="fake", encode=fake_encode):
    return FunctionEncoder(name, encode, layers=LAYERS)


class CountingEncoder:
    """fake_encode that counts the clips it embeds and can be told to raise after `stop_after` clips."""

    def __init__(self, stop_after=None, error=KeyboardInterrupt):
        self.calls, self.stop_after, self.error = 0, stop_after, error

    def __call__(self, waves):
        if self.stop_after is not None and self.calls + len(waves) > self.stop_after:
            raise self.error("stopped")
        self.calls += len(waves)
        return fake_encode(waves)


@pytest.fixture
def clips(tmp_path):
    """Six clips of different lengths, in a table shaped like extract_audio.py's."""
    rows = []
    for i in range(6):
        path = write_audio(tmp_path / "wav" / f"03-01-0{i + 2}-01-01-01-0{i + 1}.wav",
                           tone(0.3 + 0.1 * i, kind="noise", seed=i))
        rows.append({"key": f"01-0{i + 2}-01-01-01-0{i + 1}", "source": str(path), "seconds": 0.3 + 0.1 * i})
    return pd.DataFrame(rows).sample(frac=1, random_state=0).reset_index(drop=True)  # unsorted keys


def extract(clips, root, encode=fake_encode, batch_size=2, name="fake"):
    store = EmbeddingStore("audio", name, root)
    out = run_extraction(clips, [FakeEncoder(name, encode)], load=load_audio, root=root, meta={"run": "test"},
                         batch_size=batch_size, sort_column="seconds")
    assert list(out) == [store.id] == [f"audio/{name}"]
    return store, out[store.id]


def snapshot(store):
    """Every finalized array of a store, by pooling, with its keys."""
    return {p: store.load(p) for p in ("mean", "meanstd")}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for p in a:
        assert a[p][0] == b[p][0]
        np.testing.assert_array_equal(a[p][1], b[p][1])


# -- the store itself ---------------------------------------------------------------------------
def test_put_finalize_load_round_trip(tmp_path):
    store = EmbeddingStore("audio", "m", tmp_path)
    rng = np.random.default_rng(0)
    arrays = {k: {"mean": rng.standard_normal((LAYERS, DIM)), "sequence": rng.standard_normal((LAYERS, 5, DIM))}
              for k in ["b", "c", "a"]}
    for k, a in arrays.items():
        store.put(k, a, seconds=0.5)
    assert store.done_keys() == {"a", "b", "c"}
    meta = store.finalize({"model_id": "x"})
    keys, mean = store.load("mean")
    assert keys == ["a", "b", "c"]  # sorted, and row i is key i
    assert mean.dtype == np.float32 and mean.shape == (3, LAYERS, DIM)
    for i, k in enumerate(keys):
        np.testing.assert_allclose(mean[i], arrays[k]["mean"], rtol=1e-6)
        np.testing.assert_allclose(store.sequence(k), arrays[k]["sequence"], rtol=1e-6)
    assert meta["n_clips"] == 3 and meta["poolings"] == {"mean": [3, LAYERS, DIM]} and meta["has_sequences"]
    assert meta["seconds_extracting"] == 1.5 and store.meta()["model_id"] == "x"
    assert not (store.dir / "sequence.npy").exists()  # sequences stay per clip


def test_finalize_with_nothing_embedded_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="nothing was embedded"):
        EmbeddingStore("audio", "m", tmp_path).finalize({})


@pytest.fixture
def finalized(tmp_path):
    store = EmbeddingStore("audio", "m", tmp_path)
    for i, k in enumerate(["k1", "k2", "k3"]):
        store.put(k, {"mean": np.full(DIM, i)})
    store.finalize({})
    return store


def test_load_refuses_a_reordered_keys_file(finalized):
    keys_txt = finalized.dir / "keys.txt"
    keys_txt.write_text("k2\nk1\nk3\n")  # same rows, wrong labels: the worst silent error
    with pytest.raises(ValueError, match="keys.txt changed"):
        finalized.load("mean")


def test_load_refuses_an_array_with_the_wrong_row_count(finalized):
    np.save(finalized.dir / "mean.npy", np.zeros((2, DIM), np.float32))
    with pytest.raises(ValueError, match="mean.npy does not have one row per key"):
        finalized.load("mean")


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_crash_mid_write_leaves_no_partial_clip(tmp_path, monkeypatch, error):
    store = EmbeddingStore("audio", "m", tmp_path)
    store.put("good", {"mean": np.ones(DIM)})

    def savez_then_crash(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")  # part of the file is on disk when it dies
        raise error

    monkeypatch.setattr(store_module.np, "savez", savez_then_crash)
    with pytest.raises(type(error)):
        store.put("bad", {"mean": np.ones(DIM)})
    monkeypatch.undo()
    assert store.done_keys() == {"good"}
    assert sorted(p.name for p in store.clip_dir.iterdir()) == ["good.npz"]


def test_a_temp_file_left_by_a_kill_is_not_a_done_clip(tmp_path):
    store = EmbeddingStore("audio", "m", tmp_path)
    store.put("good", {"mean": np.ones(DIM)})
    (store.clip_dir / ".bad.npz.x1y2.tmp").write_bytes(b"PK half")  # SIGKILL: no cleanup ran
    assert store.done_keys() == {"good"}
    assert store.finalize({})["n_clips"] == 1


# -- the extraction loop ------------------------------------------------------------------------
def test_extraction_embeds_every_clip_in_key_order(clips, tmp_path):
    store, meta = extract(clips, tmp_path)
    keys, mean = store.load("mean")
    assert keys == sorted(clips.key) and mean.shape == (6, LAYERS, DIM)
    _, meanstd = store.load("meanstd")
    assert meanstd.shape == (6, LAYERS, 2 * DIM)
    by_key = clips.set_index("key")
    for i, key in enumerate(keys):  # row i really is clip keys[i]
        expected = fake_encode([load_audio(by_key.source[key])])[0]
        np.testing.assert_array_equal(mean[i], expected["mean"])
        np.testing.assert_array_equal(store.sequence(key), expected["sequence"])
    assert meta["n_clips"] == 6 and meta["n_failures"] == 0 and meta["model_id"] == "fake"
    assert "numpy" in meta["versions"] and meta["run"] == "test"
    # the encoder's facts, read by the probe grid and the findings
    assert (meta["encoder"], meta["name"], meta["modality"], meta["weights"]) == ("fake", "fake", "audio", HANDCRAFTED)
    assert meta["layered"] and meta["n_layers"] == LAYERS and meta["twin_of"] is None
    assert {"decode", "resample", "forward:fake", "write"} <= set(meta["stage_seconds"])  # where the time went


def test_rerun_embeds_nothing_and_gives_identical_arrays(clips, tmp_path):
    store, _ = extract(clips, tmp_path)
    first = snapshot(store)
    encode = CountingEncoder()
    extract(clips, tmp_path, encode=encode)
    assert encode.calls == 0
    assert_same(first, snapshot(store))


def test_interrupted_run_resumes_to_the_uninterrupted_result(clips, tmp_path):
    reference = snapshot(extract(clips, tmp_path / "reference")[0])
    with pytest.raises(KeyboardInterrupt):
        extract(clips, tmp_path / "resumed", encode=CountingEncoder(stop_after=3), batch_size=1)
    store = EmbeddingStore("audio", "fake", tmp_path / "resumed")
    assert len(store.done_keys()) == 3 and not (store.dir / "keys.txt").exists()
    encode = CountingEncoder()
    extract(clips, tmp_path / "resumed", encode=encode)
    assert encode.calls == 3  # only what was missing
    resumed = snapshot(store)
    assert len(resumed["mean"][0]) == len(set(resumed["mean"][0])) == 6  # no duplicate rows
    assert_same(reference, resumed)


def test_a_corrupt_file_is_recorded_and_the_batch_goes_on(clips, tmp_path):
    bad = clips.source.iloc[2]
    with open(bad, "wb") as f:
        f.write(b"RIFF\x00\x00 not a wav file at all")
    bad_key = clips.key.iloc[2]
    store, meta = extract(clips, tmp_path / "store", batch_size=3)  # the bad clip shares a batch
    keys, _ = store.load("mean")
    assert keys == sorted(set(clips.key) - {bad_key})
    [failure] = store.failures()
    assert failure["clip"] == bad_key and failure["source"] == bad
    assert "BadMediaError" in failure["error"] and bad in failure["error"]
    assert meta["n_failures"] == 1
    assert json.loads((store.dir / "failures.json").read_text()) == [failure]


def test_an_encoder_failure_is_pinned_on_its_clip(clips, tmp_path):
    culprit = clips.sort_values("seconds").key.iloc[1]
    n_culprit = len(load_audio(clips.set_index("key").source[culprit]))

    def encode(waves):
        if any(len(w) == n_culprit for w in waves):
            raise RuntimeError("shape mismatch")
        return fake_encode(waves)

    store, meta = extract(clips, tmp_path, encode=encode, batch_size=3)
    assert [f["clip"] for f in store.failures()] == [culprit]
    assert "fake failed: RuntimeError: shape mismatch" in store.failures()[0]["error"]  # names the encoder
    assert meta["n_clips"] == 5  # its batch-mates were retried one by one and kept


def test_a_clip_without_this_modality_is_counted_not_failed(clips, tmp_path):
    clips.loc[0, "source"] = None  # e.g. a video-only clip in an audio run
    store, meta = extract(clips, tmp_path)
    assert meta["n_clips"] == 5 and meta["n_clips_without_this_modality"] == 1
    assert store.failures() == [] and meta["n_failures"] == 0


def test_a_clip_fixed_since_it_failed_is_no_longer_a_failure(clips, tmp_path):
    good = open(clips.source[0], "rb").read()
    open(clips.source[0], "wb").close()  # zero bytes
    store, meta = extract(clips, tmp_path)
    assert meta["n_failures"] == 1 and "empty file" in store.failures()[0]["error"]
    open(clips.source[0], "wb").write(good)
    store, meta = extract(clips, tmp_path)
    assert meta["n_failures"] == 0 and meta["n_clips"] == 6 and store.failures() == []
    assert json.loads((store.dir / "failures.json").read_text()) == []


def test_run_extraction_leaves_the_callers_meta_alone(clips, tmp_path):
    meta = {"model_id": "fake", "packages": ["soundfile"]}
    out = run_extraction(clips, [FakeEncoder()], load=load_audio, meta=meta, root=tmp_path)["audio/fake"]
    assert meta == {"model_id": "fake", "packages": ["soundfile"]}
    assert "soundfile" in out["versions"] and "packages" not in out


def test_every_encoder_embeds_the_same_loaded_clip_into_its_own_store(clips, tmp_path):
    """A clip is loaded once for all encoders; an encoder added later embeds only what its store lacks."""
    loads = []

    def load(path):
        loads.append(path)
        return load_audio(path)

    double = CountingEncoder()
    a, b = FakeEncoder("a"), FakeEncoder("b", lambda waves: [{"mean": x["mean"] * 2} for x in double(waves)])
    out = run_extraction(clips, [a, b], load, root=tmp_path, batch_size=4)
    assert sorted(out) == ["audio/a", "audio/b"] and sorted(loads) == sorted(clips.source)  # each clip once
    keys_a, mean_a = EmbeddingStore("audio", "a", tmp_path).load("mean")
    keys_b, mean_b = EmbeddingStore("audio", "b", tmp_path).load("mean")
    assert keys_a == keys_b == sorted(clips.key) and np.array_equal(mean_b, 2 * mean_a)
    assert out["audio/b"]["poolings"] == {"mean": [6, LAYERS, DIM]}  # each store keeps its own poolings

    loads.clear()
    c = CountingEncoder()
    out = run_extraction(clips, [a, b, FakeEncoder("c", c)], load, root=tmp_path)
    assert c.calls == 6 and double.calls == 6  # b's clips were cached: not embedded again
    assert sorted(loads) == sorted(clips.source) and out["audio/c"]["n_clips"] == 6


# -- which stores are complete -------------------------------------------------------------------
def test_available_stores_lists_only_complete_stores(clips, tmp_path, capsys):
    root = tmp_path / "emb"
    for name in ("good", "no-keys"):
        extract(clips, root, name=name)
    (root / "audio" / "no-keys" / "keys.txt").unlink()  # a store missing keys.txt
    only_meta = root / "audio" / "only-meta"  # a folder with only meta.json (e.g. copied provenance)
    only_meta.mkdir()
    (only_meta / "meta.json").write_text(json.dumps({"encoder": "x", "n_clips": 6}))
    with pytest.raises(KeyboardInterrupt):  # a store in the middle of extraction: 2 clips cached
        extract(clips, root, encode=CountingEncoder(stop_after=2), batch_size=1, name="half")
    (root / "face" / "empty").mkdir(parents=True)  # a folder some run made and never filled
    capsys.readouterr()

    lines = []
    stores = available_stores(root, log=lines.append)
    assert [s.id for s in stores] == ["audio/good"]
    assert sorted(lines) == ["[stores] audio/half left out: not finalized (2 clip(s) cached): rerun its "
                             "extractor or merge_shards.py",
                             "[stores] audio/no-keys left out: keys.txt is missing",
                             "[stores] audio/only-meta left out: keys.txt is missing",
                             "[stores] face/empty left out: no meta.json"]
    assert [s.id for s in available_stores(root, log=None)] == ["audio/good"] and capsys.readouterr().out == ""
    available_stores(root)  # by default, one printed line per store left out
    assert len(capsys.readouterr().out.splitlines()) == 4
    with pytest.raises(ValueError, match="audio/half.*not finalized"):
        EmbeddingStore("audio", "half", root).load("mean")


def test_a_store_missing_an_array_is_not_complete(finalized):
    (finalized.dir / "mean.npy").unlink()
    assert finalized.problem() == "mean.npy is missing"
    assert available_stores(finalized.dir.parent.parent, log=None) == []


def test_the_embeddings_root_comes_from_the_environment_at_call_time(finalized, monkeypatch):
    monkeypatch.setenv("EMOPROBE_EMBEDDINGS", str(finalized.dir.parent.parent))
    (store,) = available_stores(log=None)
    assert store.id == "audio/m" and store.dir == finalized.dir and EmbeddingStore("audio", "m").problem() is None


# -- what a cached clip was made from (store.identity) ----------------------------------------------
def counted(encode_counter, clips, root, meta=None):
    out = run_extraction(clips, [FakeEncoder("fake", encode_counter)], load=load_audio, root=root,
                         meta=meta or {"data_root": "corpus"}, batch_size=2)
    return out["audio/fake"]


def test_a_replaced_source_file_is_embedded_again_and_said(clips, tmp_path, capsys):
    counter = CountingEncoder()
    counted(counter, clips, tmp_path / "emb")
    replaced = clips.source.iloc[0]
    write_audio(Path(replaced), tone(0.7, kind="noise", seed=99))  # re-encoded under the same name
    capsys.readouterr()
    meta = counted(counter, clips, tmp_path / "emb")
    assert counter.calls == len(clips) + 1
    assert "1 re-embedded (source file changed)" in capsys.readouterr().out
    store = EmbeddingStore("audio", "fake", tmp_path / "emb")
    keys, mean = store.load("mean")
    fresh = FakeEncoder().encode([load_audio(replaced, 16000)])[0]["mean"]
    np.testing.assert_array_equal(mean[keys.index(clips.key.iloc[0])], fresh)
    assert meta["data_sources"] == {"corpus": len(clips)}


def test_the_same_files_elsewhere_are_still_the_cached_clips(clips, tmp_path):
    counter = CountingEncoder()
    counted(counter, clips, tmp_path / "emb")
    moved = clips.copy()
    (tmp_path / "wav").rename(tmp_path / "moved")
    moved["source"] = [s.replace(f"{tmp_path}/wav", f"{tmp_path}/moved") for s in clips.source]
    counted(counter, moved, tmp_path / "emb")
    assert counter.calls == len(clips)  # same content: nothing embedded again


def test_another_file_under_a_cached_key_is_an_error_naming_both(clips, tmp_path):
    counted(CountingEncoder(), clips, tmp_path / "emb")
    other = clips.copy()
    impostor = write_audio(tmp_path / "other" / "x.wav", tone(0.5, kind="noise", seed=7))
    other.loc[0, "source"] = str(impostor)
    with pytest.raises(identity.KeyCollisionError) as err:
        counted(CountingEncoder(), other, tmp_path / "emb", {"data_root": "other"})
    assert clips.source.iloc[0] in str(err.value) and str(impostor) in str(err.value)


def test_a_changed_encoder_configuration_embeds_every_clip_again(clips, tmp_path, monkeypatch, capsys):
    counter = CountingEncoder()
    counted(counter, clips, tmp_path / "emb")
    monkeypatch.setattr(FunctionEncoder, "meta", lambda self: {"model_id": self.name, "option": "other"})
    capsys.readouterr()
    counted(counter, clips, tmp_path / "emb")
    assert counter.calls == 2 * len(clips)
    assert f"{len(clips)} re-embedded (encoder configuration changed)" in capsys.readouterr().out


def test_a_store_lists_every_data_root_it_holds_and_keeps_clips_cached_before_identities(clips, tmp_path, capsys):
    first, second = clips.iloc[:3], clips.iloc[3:]
    counted(CountingEncoder(), first, tmp_path / "emb", {"data_root": "speech"})
    meta = counted(CountingEncoder(), second, tmp_path / "emb", {"data_root": "song"})
    assert meta["data_sources"] == {"song": 3, "speech": 3} and meta["data_root"] == "song + speech"
    store = EmbeddingStore("audio", "fake", tmp_path / "emb")
    key = clips.key.iloc[0]
    with np.load(store.clip_dir / f"{key}.npz") as z:  # as an older version cached it: no identity
        old = {k: z[k] for k in z.files if k != "identity"}
    np.savez(store.clip_dir / f"{key}.npz", **old)
    counter = CountingEncoder()
    capsys.readouterr()
    counted(counter, clips, tmp_path / "emb")
    assert counter.calls == 0 and "1 cached before sources were recorded, kept" in capsys.readouterr().out
