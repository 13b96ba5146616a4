"""Short real training runs: run-dir layout, determinism, early stopping, feature cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from train_fixtures import TINY, make_imagefolder

from imgrec.engine.checkpoint import load_checkpoint
from imgrec.models.card import read_model_dir
from imgrec.tasks.classify.train import train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("data") / "tiny set")


def _weights(run_dir: str, name: str = "last") -> dict[str, torch.Tensor]:
    return load_file(str(Path(run_dir) / name / "weights.safetensors"))


def test_run_dir_layout_and_contents(tiny_data: Path, tmp_path: Path) -> None:
    result = train(tiny_data, epochs=3, out=tmp_path / "run", **TINY)
    run = Path(result.run_dir)
    for name in ("model/model.json", "last/model.json", "checkpoint.pt", "config.yaml",
                 "history.jsonl", "metrics.json", "data_report.json"):  # fmt: skip
        assert (run / name).is_file(), name
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert set(history[0]) >= {"epoch", "train_loss", "val_loss", "val_accuracy", "lr", "seconds"}
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["epochs"] == 3 and config["model"] == "small_resnet"
    assert config["scheduler"] in ("onecycle", "cosine", "constant")  # resolved, not auto
    card, _ = read_model_dir(run / "model")
    assert card.classes == ["a", "b", "c"] and card.preprocessing.input_size == 16
    assert card.dataset["counts"] == {"train": 96, "val": 18}
    assert card.metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    best = max(h["val_accuracy"] for h in history)
    assert result.metrics["accuracy"] == pytest.approx(best)  # model/ is the best epoch
    assert result.metrics["accuracy"] > 0.6  # the classes are easy; chance is 0.33
    state = load_checkpoint(run / "checkpoint.pt")  # weights_only=True
    assert state["epoch"] == 3 and set(state["rng"]) >= {"torch", "numpy", "python"}


def test_two_seeded_runs_give_identical_weights(tiny_data: Path, tmp_path: Path) -> None:
    opts = {**TINY, "epochs": 2, "augment": "light", "mixup_alpha": 0.2, "seed": 3}
    a = train(tiny_data, out=tmp_path / "a", **opts)
    b = train(tiny_data, out=tmp_path / "b", **opts)
    wa, wb = _weights(a.run_dir), _weights(b.run_dir)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train(tiny_data, out=tmp_path / "c", **{**opts, "seed": 4})
    wc = _weights(c.run_dir)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_early_stopping_stops_after_patience(tiny_data: Path, tmp_path: Path) -> None:
    # lr=0 cannot improve after epoch 1, so patience 2 stops at epoch 3 of 20.
    result = train(
        tiny_data, out=tmp_path / "es", **{**TINY, "epochs": 20, "lr": 1e-12,
                                            "scheduler": "constant", "warmup_epochs": 0,
                                            "early_stopping_patience": 2},
    )  # fmt: skip
    assert [h["epoch"] for h in result.history] == [1, 2, 3]


def test_feature_cache_equals_head_only_training(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGREC_CACHE", str(tmp_path / "cache"))
    # A "pretrained" backbone from a file, as a user's own weights would be.
    from imgrec.models.architectures import build_model

    torch.manual_seed(0)
    net = build_model("small_resnet", 5, **TINY["arch_kwargs"])
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "w.st")
    # device=cpu: on CUDA the pixel path runs the backbone in float16 (AMP) and TF32, the
    # feature cache in float32, so the heads differ by more than these tolerances
    opts = {**TINY, "epochs": 3, "freeze": "backbone", "augment": "none",
            "weights": str(tmp_path / "w.st"), "device": "cpu"}  # fmt: skip
    from imgrec.tasks.classify import train_setup as session

    keyed: list[dict] = []  # what the cache key was made of, split by split
    real_key = session.feature_key
    monkeypatch.setattr(
        session, "feature_key", lambda **parts: keyed.append(parts) or real_key(**parts)
    )
    cached = train(tiny_data, out=tmp_path / "fc", feature_cache=True, **opts)
    assert list((tmp_path / "cache" / "features").glob("*.safetensors"))
    assert [k["split"] for k in keyed] == ["train", "val"]
    assert all(k["device"] == "cpu" for k in keyed)  # GPU (TF32) features are cached apart
    direct = train(tiny_data, out=tmp_path / "px", feature_cache=False, **opts)
    wf, wp = _weights(cached.run_dir), _weights(direct.run_dir)
    for key in wf:
        # the backbone is untouched in both; the head follows the same steps
        torch.testing.assert_close(wf[key], wp[key], rtol=1e-4, atol=1e-5, msg=key)
    assert not torch.equal(wf["fc.weight"], net.state_dict()["fc.weight"][:3])
    for a, b in zip(cached.history, direct.history, strict=True):
        assert a["val_accuracy"] == pytest.approx(b["val_accuracy"])
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    # A second run reads the cache instead of recomputing.
    again = train(tiny_data, out=tmp_path / "fc2", feature_cache=True, **opts)
    assert again.history[-1]["val_accuracy"] == pytest.approx(cached.history[-1]["val_accuracy"])


def test_file_loader_path_with_strong_augment_and_imbalance_options(
    tmp_path: Path,
) -> None:
    data = make_imagefolder(tmp_path / "d", n_train=12, n_val=4)
    for extra in sorted((data / "train" / "c").iterdir())[4:]:  # make class c rare
        extra.unlink()
    result = train(
        data, out=tmp_path / "files", epochs=2,
        **{**TINY, "cache_images": False, "num_workers": 0, "augment": "strong",
           "class_weights": "balanced", "balanced_sampler": True, "cutmix_alpha": 1.0},
    )  # fmt: skip
    config = yaml.safe_load((Path(result.run_dir) / "config.yaml").read_text())
    assert config["cache_images"] is False and config["augment"] == "strong"
    assert len(result.history) == 2
    assert all(h["train_loss"] == h["train_loss"] for h in result.history)  # finite
