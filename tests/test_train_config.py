"""Train config: defaults < model train_defaults < YAML < flags; unknown keys, bad values: UserError."""

from __future__ import annotations

import pytest
import yaml

from mammo.errors import UserError
from mammo.train.config import TrainConfig, read_yaml, resolve_config, save_config


def test_precedence(tmp_path, tiny_registry):
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text("model: tiny\nepochs: 7\nbatch_size: 16\nweight_decay: 0.05\n")
    cfg = resolve_config([read_yaml(cfg_file)], {"batch_size": 4, "lr": None, "seed": 3})
    assert cfg.model == "tiny"
    assert cfg.patience == TrainConfig.patience  # code default
    assert cfg.lr == 0.01  # model default (flag None = unset)
    assert cfg.epochs == 7 and cfg.weight_decay == 0.05  # YAML over model default
    assert cfg.batch_size == 4 and cfg.seed == 3  # flags over YAML
    save_config(cfg, tmp_path / "run" / "config.yaml")
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["batch_size"] == 4 and saved["lr"] == 0.01 and saved["size"] is None
    assert resolve_config([saved]) == cfg


def test_model_chosen_by_flag_picks_its_defaults(tmp_path, tiny_registry):
    cfg = resolve_config([], {"model": "tiny", "weights": tmp_path / "w.pt"})
    assert cfg.epochs == 3 and cfg.batch_size == 8
    assert cfg.weights == str(tmp_path / "w.pt")


def test_unknown_key_and_bad_values(tmp_path, tiny_registry):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny\nepoch: 3\n")
    with pytest.raises(UserError, match="unknown config key 'epoch' \\(did you mean 'epochs'\\?\\)"):
        read_yaml(bad)
    with pytest.raises(UserError, match="config file not found"):
        read_yaml(tmp_path / "missing.yaml")
    with pytest.raises(UserError, match="'optimizer': 'adam' is not one of"):
        resolve_config([{"model": "tiny", "optimizer": "adam"}])
    with pytest.raises(UserError, match="'lr': -1"):
        resolve_config([], {"model": "tiny", "lr": -1.0})
