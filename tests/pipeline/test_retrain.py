"""Retraining: new labelled data beside the base dataset, warm start from production, and the
two-set gate (base val + held-out new data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pipeline_helpers import make_imagefolder

from imgrec.errors import DatasetError
from imgrec.mlops import run_local
from imgrec.mlops.gate import GatePolicy, decide_with_new_data
from imgrec.model_store import ModelStore


def _metrics(acc: float, per_class: dict[str, float]) -> dict:
    return {"accuracy": acc, "classes": sorted(per_class),
            "per_class": {c: {"recall": r, "f1": r} for c, r in per_class.items()}}  # fmt: skip


BASE_P = _metrics(0.95, {"a": 0.95, "b": 0.95})
NEW_P = _metrics(0.60, {"a": 0.70, "b": 0.50})


@pytest.mark.parametrize(
    ("base_c", "new_c", "passed", "text"),
    [
        (_metrics(0.948, {"a": 0.94, "b": 0.956}), _metrics(0.93, {"a": 0.93, "b": 0.93}), True,
         "new data (held out): accuracy 0.9300 vs production v4 0.6000: improvement +0.3300 meets"),
        (_metrics(0.90, {"a": 0.90, "b": 0.90}), _metrics(0.93, {"a": 0.93, "b": 0.93}), False,
         "base val: accuracy 0.9000 vs production v4 0.9500: improvement -0.0500 misses the "
         "required -0.0100"),
        (_metrics(0.95, {"a": 0.99, "b": 0.91}), _metrics(0.90, {"a": 0.95, "b": 0.85}), True,
         "new data (held out): no class regresses"),
        (_metrics(0.95, {"a": 0.99, "b": 0.91}), _metrics(0.61, {"a": 0.62, "b": 0.60}), False,
         "new data (held out): 1 classes regress on f1 by more than 0.05: 'a' -0.0800"),
        (_metrics(0.95, {"a": 0.95, "b": 0.95}), _metrics(0.601, {"a": 0.70, "b": 0.50}), False,
         "new data (held out): accuracy 0.6010 vs production v4 0.6000: improvement +0.0010 "
         "misses"),
    ],
)  # fmt: skip
def test_two_set_gate(base_c: dict, new_c: dict, passed: bool, text: str) -> None:
    d = decide_with_new_data(base_c, BASE_P, new_c, NEW_P, GatePolicy(), production_version=4)
    assert d.passed is passed
    assert any(text in r for r in d.reasons), d.reasons
    assert set(d.evaluations) == {"base_val", "new_holdout"}
    assert "| new_holdout |" in d.markdown() and "| base_val |" in d.markdown()


def _new_camera(root: Path, classes: tuple[str, ...], n: int) -> Path:
    """Class folders (no splits) like `imgrec label import` writes: the same patterns, shifted."""
    src = make_imagefolder(
        root.parent / f"{root.name}-src", classes=classes, n_train=n, n_val=0, seed=5
    )
    for path in (src / "train").rglob("*.png"):
        img = np.asarray(Image.open(path), dtype=np.float32)
        shifted = np.clip(img * 0.5 + 60, 0, 255).astype(np.uint8)  # washed-out new camera
        target = root / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(shifted).save(target)
    return root


FAST = {"epochs": "2", "train_threads": "2", "min_images": "8", "gate_absolute_floor": "0.0"}


@pytest.mark.slow
def test_retraining_run_gates_on_both_sets(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "base", n_train=16, n_val=6)
    store, runs = str(tmp_path / "store"), str(tmp_path / "runs")
    first = run_local(str(data), store, FAST, runs_dir=runs)
    assert first["status"] == "succeeded" and first["registered_version"] == 1, first
    new = _new_camera(tmp_path / "new", ("circle", "square"), 10)
    params = {**FAST, "new_data_uri": str(new), "init_from": "production",
              "gate_min_improvement": "-1.0", "gate_max_base_drop": "1.0",
              "gate_max_class_regression": "1.0"}  # fmt: skip
    second = run_local(str(data), store, params, runs_dir=runs)
    assert second["status"] == "succeeded", second
    gate = second["gate"]
    assert set(gate["evaluations"]) == {"base_val", "new_holdout"}
    assert any(r.startswith("base val: ") for r in gate["reasons"])
    assert any(r.startswith("new data (held out): ") for r in gate["reasons"])
    assert gate["passed"] and second["registered_version"] == 2
    md = Path(second["reports"]["gate"]).read_text()
    assert "| new_holdout |" in md and "| base_val |" in md
    prep = Path(second["reports"]["preprocessing"]).read_text()
    assert "warm start from" in prep and "versions/0001/model/weights.safetensors" in prep
    v2 = ModelStore(store).get(2)
    assert v2.metadata["dataset"]["n_images"] == 2 * 22 + 20  # base + all new images


def test_new_data_with_an_unknown_class_is_refused(tmp_path: Path) -> None:
    from imgrec.mlops.new_data import add_new_data
    from imgrec.mlops.steps import ingest_step

    ingest_step(str(make_imagefolder(tmp_path / "base", n_train=4, n_val=2)), str(tmp_path / "m"))
    odd = _new_camera(tmp_path / "odd", ("circle", "triangle"), 4)
    with pytest.raises(DatasetError, match=r"classes the base dataset lacks: \['triangle'\]"):
        add_new_data(str(tmp_path / "m"), str(odd))
    ok = _new_camera(tmp_path / "ok", ("circle", "square"), 10)
    meta = add_new_data(str(tmp_path / "m"), str(ok), holdout_fraction=0.3, seed=0)
    assert meta["new_data"]["train"] + meta["new_data"]["holdout"] == 20
    assert meta["new_data"]["holdout"] == 6 and meta["counts"]["test"] == {"circle": 3, "square": 3}


def test_training_mix_repeats_the_new_images_and_replays_part_of_the_base(
    tmp_path: Path,
) -> None:
    from imgrec.errors import ConfigError
    from imgrec.mlops.ingest import read_manifest
    from imgrec.mlops.new_data import add_new_data, epoch_rows, training_mix
    from imgrec.mlops.preprocess import preprocess

    assert training_mix(4000, 350, 0.5) == {"base": 2000, "repeat": 6}
    assert training_mix(4000, 350, 0.0) == {"base": 4000, "repeat": 1}
    assert training_mix(100, 900, 0.5) == {"base": 50, "repeat": 1}  # more new than base
    with pytest.raises(ConfigError, match="new_data_share must be in"):
        training_mix(10, 10, 1.0)
    base = make_imagefolder(tmp_path / "base", n_train=20, n_val=3)
    from imgrec.mlops.steps import ingest_step

    ingest_step(str(base), str(tmp_path / "m"))
    new = _new_camera(tmp_path / "new", ("circle", "square"), 5)  # 3 train, 2 held out each
    meta = add_new_data(str(tmp_path / "m"), str(new), share=0.5)
    assert meta["new_data"]["mix"] == {"base": 20, "repeat": 3, "n_base": 40, "share": 0.5}
    manifest = read_manifest(str(tmp_path / "m"))
    rows, note = epoch_rows(manifest.rows, str(tmp_path / "m"))
    train = [r for r in rows if r["split"] == "train"]
    new_paths = [r["path"] for r in train if str(new) in r["path"]]
    assert len(train) == 20 + 3 * 6 and len(new_paths) == 18 and len(set(new_paths)) == 6
    assert [r for r in rows if r["split"] != "train"] == [
        r for r in manifest.rows if r["split"] != "train"
    ]  # val and the held-out slice: every image once
    assert note == (
        "training mix: 20 of 40 base training images and the 6 new ones 3x each per epoch"
    )
    result = preprocess(manifest, str(tmp_path / "pre"), epochs=1,
                        epoch=lambda r: epoch_rows(r, str(tmp_path / "m")))  # fmt: skip
    assert result.stats["epoch_images"] == 38 and note in result.notes
    assert (tmp_path / "pre" / "data.csv").read_text().count(str(new)) == 18 + 4


def test_small_class_drops_within_sampling_noise_do_not_fail() -> None:
    def m(acc: float, recall_8: float, n: int) -> dict:
        return {"accuracy": acc, "classes": ["7", "8"],
                "per_class": {"7": {"f1": acc, "support": n},
                              "8": {"f1": recall_8, "support": n}}}  # fmt: skip

    policy = GatePolicy()
    small = decide_with_new_data(m(0.95, 0.95, 16), m(0.95, 0.95, 16),
                                 m(0.9, 0.5, 16), m(0.5, 0.625, 16), policy)  # fmt: skip
    assert small.passed  # 2 of 16 images: z = 0.71
    assert any("within sampling noise" in r and "'8' -0.1250 (n=16)" in r for r in small.reasons)
    large = decide_with_new_data(m(0.95, 0.95, 400), m(0.95, 0.95, 400),
                                 m(0.9, 0.5, 400), m(0.5, 0.625, 400), policy)  # fmt: skip
    assert not large.passed and any("regress on f1" in r for r in large.reasons)
    strict = decide_with_new_data(m(0.95, 0.95, 16), m(0.95, 0.95, 16), m(0.9, 0.5, 16),
                                  m(0.5, 0.625, 16), GatePolicy(min_regression_z=0))  # fmt: skip
    assert not strict.passed


def test_a_warm_start_without_epochs_gets_the_warm_start_schedule(tmp_path: Path) -> None:
    from model_fixtures import servable_model

    from imgrec.mlops.steps import WARM_START_EPOCHS, ingest_step, preprocess_step

    data = make_imagefolder(tmp_path / "d", n_train=4, n_val=2)
    ingest_step(str(data), str(tmp_path / "m"))
    store = ModelStore(str(tmp_path / "store"))
    store.register(str(servable_model(tmp_path, ["circle", "square"], 0)))
    warm = preprocess_step(str(tmp_path / "m"), str(tmp_path / "p"), init_from="production",
                           store_uri=str(tmp_path / "store"))  # fmt: skip
    assert warm["config"]["epochs"] == WARM_START_EPOCHS == 3
    assert warm["config"]["img_size"] == 32  # the production model's geometry
    chosen = preprocess_step(str(tmp_path / "m"), str(tmp_path / "p2"), init_from="production",
                             store_uri=str(tmp_path / "store"), epochs=7)  # fmt: skip
    assert chosen["config"]["epochs"] == 7
    assert warm["config"]["augment"] == chosen["config"]["augment"] == "elastic"  # no new data


def test_a_warm_start_on_new_data_augments_like_a_camera_change(tmp_path: Path) -> None:
    from model_fixtures import servable_model

    from imgrec.mlops.new_data import NEW_DATA_AUGMENT
    from imgrec.mlops.steps import NEW_DATA_EPOCHS, ingest_step, preprocess_step

    data = make_imagefolder(tmp_path / "d", n_train=4, n_val=2)
    new = _new_camera(tmp_path / "new", ("circle", "square"), 5)
    ingest_step(str(data), str(tmp_path / "m"), new_data_uri=str(new))
    store = ModelStore(str(tmp_path / "store"))
    store.register(str(servable_model(tmp_path, ["circle", "square"], 0)))
    kw = {"init_from": "production", "store_uri": str(tmp_path / "store")}
    warm = preprocess_step(str(tmp_path / "m"), str(tmp_path / "p"), **kw)
    assert warm["config"]["augment"] == NEW_DATA_AUGMENT == "camera"
    assert warm["config"]["epochs"] == NEW_DATA_EPOCHS == 10
    assert any(n.startswith("augment=camera: a warm start on new data") for n in warm["notes"])
    asked = preprocess_step(str(tmp_path / "m"), str(tmp_path / "p2"), overrides="augment=none",
                            **kw)  # fmt: skip
    assert asked["config"]["augment"] == "none"  # the user's choice wins
    scratch = preprocess_step(str(tmp_path / "m"), str(tmp_path / "p3"))
    assert scratch["config"]["augment"] == "elastic"  # from scratch: the recipe's
