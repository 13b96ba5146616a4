"""The detection ``device`` option: validated, resolved like classification's, and a no-op on
the CPU. (Training on CUDA itself is checked by benchmarks/gpu_check.py on a GPU machine.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imgrec.engine.run import pick_device
from imgrec.errors import ConfigError
from imgrec.tasks.detect.recipe import make_config
from imgrec.tasks.detect.train import on_device


def test_unknown_device_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown device 'gpu'") as info:
        make_config(device="gpu")
    assert "auto, cpu, cuda" in str(info.value.hint)


def test_default_device_is_auto() -> None:
    assert make_config().device == "auto"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_auto_is_cpu_and_cuda_is_refused_without_a_gpu() -> None:
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        pick_device("cuda")


def test_on_device_keeps_the_cpu_loss_and_moves_lists_and_targets() -> None:
    def loss(inputs, targets):  # type: ignore[no-untyped-def]
        return {"n": torch.tensor(float(len(targets)))}

    assert on_device(loss, torch.device("cpu")) is loss
    moved = on_device(loss, torch.device("meta"))  # any non-CPU device: tensors are moved
    out = moved([torch.zeros(1, 2)], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}])
    assert float(out["n"]) == 1.0


def test_detect_predict_refuses_int8_before_loading_the_model(tmp_path: Path) -> None:
    from imgrec.tasks.detect.predict import predict

    missing = tmp_path / "no-such-model"  # never read: the precision check comes first
    with pytest.raises(ConfigError) as err:
        list(predict(["x.jpg"], model=str(missing), precision="int8"))
    assert err.value.code == "precision_unsupported" and "detector" in err.value.message
