"""TrainConfig: defaults, YAML then overrides, validation, unknown keys with suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imgrec.config import TrainConfig, load_config, parse_sets
from imgrec.errors import ConfigError


def test_defaults_are_documented_and_auto_fields_are_none() -> None:
    cfg = TrainConfig()
    assert cfg.model == "auto" and cfg.epochs is None and cfg.augment is None
    docs = TrainConfig.help()
    assert set(docs) == set(cfg.to_dict())
    assert all(text.split(" (default")[0].strip() for text in docs.values())


def test_yaml_then_overrides_then_sets(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 7\nlr: 0.01\noptimizer: sgd\naugment: strong\n")
    cfg = load_config(path, overrides={"lr": 0.002, "epochs": None}, sets=["batch-size=32"])
    assert cfg.epochs == 7  # a None override leaves the file's value
    assert cfg.lr == pytest.approx(0.002)
    assert cfg.optimizer == "sgd" and cfg.augment == "strong" and cfg.batch_size == 32


def test_string_values_are_coerced_and_auto_means_none() -> None:
    cfg = load_config(sets=["amp=true", "epochs=3", "img_size=auto", "augment=none", "lr=1e-3"])
    assert cfg.amp is True and cfg.epochs == 3 and cfg.img_size is None
    assert cfg.augment == "none"  # a real choice, not "auto"
    assert cfg.lr == pytest.approx(1e-3)


def test_unknown_key_suggests_the_close_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'epochs'") as info:
        load_config(sets=["epoch=3"])
    assert info.value.code == "invalid_config"
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown config key 'learning_rate'"):
        load_config(path)
    with pytest.raises(ConfigError, match="weight_decay"):
        load_config(overrides={"weight_decai": 0.1})


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("optimizer=adamv", "did you mean 'adamw'"),
        ("epochs=many", "not a valid int"),
        ("epochs=0", "must be > 0"),
        ("val_fraction=1.5", r"\[0, 1\)"),
        ("freeze=some", "first:N"),
        ("scheduler=cosin", "did you mean 'cosine'"),
    ],
)
def test_invalid_values_name_the_value_and_the_fix(item: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(sets=[item])


def test_malformed_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_sets(["epochs"])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_saved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(sets=["epochs=4", "arch_kwargs={widths: [8, 16]}", "freeze=first:2"])
    cfg.save(tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["arch_kwargs"] == {
        "widths": [8, 16]
    }
