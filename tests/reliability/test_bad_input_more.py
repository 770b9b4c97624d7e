"""More bad input (the first 35 cases are in tests/trainer/test_bad_input.py): CLI arguments, run and config files,
checkpoints, data and the reliability options. Each case pins the error type and a message that names the field or
file and says how to fix it. Sweep files are not covered: the sweep module does not exist yet.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import CheckpointError, ConfigError, DataError, Trainer, TrainingConfig
from trainforge.cli.main import load_run_spec, main


def _cli(capsys, *args: str) -> str:
    """Run the CLI in-process; it must fail with exit status 2 and one 'trainforge: error:' message."""
    code = main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("trainforge: error: "), err
    return err


# ------------------------------------------------------------------ CLI arguments and run files


def test_cli_misspelled_override_through_the_real_console_entry_point():
    proc = subprocess.run([sys.executable, "-m", "trainforge", "train", "lerning_rate=1"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "lerning_rate: unknown option, got 1. Fix: did you mean 'learning_rate'?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_override_of_the_wrong_type(capsys):
    err = _cli(capsys, "train", "epochs=three")
    assert "epochs: must be an integer, got 'three'. Fix: pass an integer such as 3." in err


def test_cli_override_without_a_value(capsys):
    err = _cli(capsys, "train", "--bogus")
    assert "'--bogus': has no value. Fix: expected key=value" in err


def test_cli_run_file_that_is_not_yaml(capsys):
    Path("run.txt").write_text("epochs = 3\n")
    err = _cli(capsys, "train", "--config", "run.txt")
    assert "config file run.txt has 1 problem" in err
    assert "unknown config file type '.txt', got 'run.txt'. Fix: use a name ending in .yaml, .yml or .json." in err


def test_cli_run_file_with_broken_yaml(capsys):
    Path("run.yaml").write_text("epochs: [1, 2\n")
    err = _cli(capsys, "train", "--config", "run.yaml")
    assert "config file run.yaml has 1 problem" in err and "is not valid YAML" in err and "Fix: correct the file" in err


def test_cli_run_file_with_a_python_tag_is_refused_and_never_runs(capsys):
    Path("run.yaml").write_text("!!python/object/apply:os.system ['touch pwned']\n")
    err = _cli(capsys, "train", "--config", "run.yaml")
    assert "config file run.yaml" in err and "could not determine a constructor" in err
    assert not Path("pwned").exists()


def test_cli_model_file_that_does_not_exist(capsys):
    Path("run.yaml").write_text("model: missing.py:f\n")
    err = _cli(capsys, "train", "--config", "run.yaml")
    assert "model: file 'missing.py' not found. Fix: give a path to a .py file." in err


def test_cli_model_without_a_factory_name(capsys):
    Path("run.yaml").write_text("model: my_models.py\n")
    err = _cli(capsys, "train", "--config", "run.yaml")
    assert "model: expected 'module:function' or 'file.py:function', got 'my_models.py'" in err


def test_cli_user_model_code_is_not_imported_unless_named(capsys):
    Path("model.py").write_text("open('imported', 'w').close()\ndef f():\n    raise SystemExit(3)\n")
    Path("run.yaml").write_text("epochs: 0\n")  # a bad config, and a model file lying next to it
    _cli(capsys, "train", "--config", "run.yaml")
    assert not Path("imported").exists()


def test_cli_run_file_that_does_not_exist(capsys):
    err = _cli(capsys, "train", "--config", "nowhere.yaml")
    assert "nowhere.yaml" in err and "Fix:" in err


def test_cli_unknown_key_in_a_run_file_names_the_file(capsys):
    Path("run.yaml").write_text("epochs: 1\nlerning_rate: 0.1\n")
    err = _cli(capsys, "train", "--config", "run.yaml")
    assert "run.yaml" in err and "did you mean 'learning_rate'" in err


# ------------------------------------------------------------------ config files


def test_unknown_key_in_a_yaml_config_file_names_the_file():
    Path("cfg.yaml").write_text("epochs: 1\nlerning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"TrainingConfig from cfg\.yaml has 1 problem:\n  - lerning_rate: unknown "
                                          r"option, got 0\.1\. Fix: did you mean 'learning_rate'\?"):
        TrainingConfig.load("cfg.yaml")


def test_a_yaml_config_file_holding_a_list():
    Path("cfg.yaml").write_text("- epochs\n- 3\n")
    with pytest.raises(ConfigError, match=r"config file cfg\.yaml has 1 problem:\n  - file: must hold a mapping .*Fix: "
                                          r"write one 'name: value' per line in cfg\.yaml"):
        TrainingConfig.load("cfg.yaml")


def test_run_spec_with_a_string_learning_rate_suggests_no_quotes():
    Path("run.yaml").write_text("learning_rate: '1e-3'\n")
    with pytest.raises(ConfigError, match=r"learning_rate: must be a number, got '1e-3'\. Fix: pass a number, not a "
                                          r"string: learning_rate=1e-3 \(no quotes\)"):
        TrainingConfig.from_dict(load_run_spec("run.yaml", None, [])["training"])


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("on_checkpoint_error", "explode", r"on_checkpoint_error: must be one of 'warn', 'stop', got 'explode'\. Fix: "),
        ("on_checkpoint_error", "stpo", r"on_checkpoint_error: .* got 'stpo'\. Fix: did you mean 'stop'\?"),
        ("nan_max_consecutive", 0, r"nan_max_consecutive: must be at least 1, got 0\. Fix: use the number"),
        ("nan_lr_factor", 2.0, r"nan_lr_factor: must be in \(0, 1\) or None, got 2\.0\. Fix: use a factor such as 0\.5"),
        ("nan_guard", "yes", r"nan_guard: must be True or False, got 'yes'\. Fix: pass True or False"),
    ],
)
def test_reliability_options_are_validated(field, value, expected):
    with pytest.raises(ConfigError, match=expected):
        TrainingConfig(**{field: value})


# ------------------------------------------------------------------ checkpoints


class _Payload:
    def __reduce__(self):
        return (exec, ("open('pwned', 'w').close()",))


def _train_from(lm_blocks, path: str):
    model, cfg = tiny_gpt()
    Trainer(model, cfg, quiet_config(epochs=1, output_dir="run"), lm_task()).train(lm_blocks[:16], resume_from=path)


def test_checkpoint_with_a_code_payload_is_refused_and_the_payload_never_runs(lm_blocks):
    torch.save({"format_version": 1, "model": _Payload()}, "evil.pt")
    with pytest.raises(CheckpointError, match=r"Refused to load 'evil\.pt': it contains Python objects that are not "
                                              r"plain data, and unpickling them could run code .*Fix: load only "
                                              r"checkpoints you trust"):
        _train_from(lm_blocks, "evil.pt")
    assert not Path("pwned").exists()
    assert not Path("run").exists()


def test_checkpoint_holding_a_class_that_is_not_allowlisted(lm_blocks):
    model, _ = tiny_gpt()
    torch.save({"format_version": 1, "model": model.state_dict(), "args": argparse.Namespace(lr=1)}, "ns.pt")
    with pytest.raises(CheckpointError, match=r"Refused to load 'ns\.pt'.*argparse\.Namespace.*Fix: "):
        _train_from(lm_blocks, "ns.pt")


def test_checkpoint_that_is_plain_data_but_not_a_checkpoint(lm_blocks):
    torch.save([1, 2, 3], "list.pt")
    with pytest.raises(CheckpointError, match=r"'list\.pt' is not a checkpoint trainforge understands: expected a dict "
                                              r"with 'model'.*Fix: pass a file written by trainforge"):
        _train_from(lm_blocks, "list.pt")


def test_an_empty_checkpoint_file(lm_blocks):
    Path("empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"Checkpoint 'empty\.pt' is corrupt or truncated.*Fix: resume from an "
                                              r"earlier checkpoint"):
        _train_from(lm_blocks, "empty.pt")


def test_resume_auto_when_every_checkpoint_is_corrupt_starts_fresh_with_warnings(lm_blocks, capsys):
    os.makedirs("ck")
    Path("ck/epoch_1.pt").write_bytes(b"garbage")
    model, cfg = tiny_gpt()
    config = quiet_config(epochs=1, checkpoint_dir="ck", output_dir="run")
    with pytest.warns(UserWarning, match=r"Skipping unreadable checkpoint '.*epoch_1\.pt'"):
        results = Trainer(model, cfg, config, lm_task()).train(lm_blocks[:16], resume_from="auto")
    assert "no checkpoint in 'ck' yet, starting fresh" in capsys.readouterr().out
    assert results["epochs_completed"] == 1


# ------------------------------------------------------------------ data


def _train_data(data):
    model, cfg = tiny_gpt()
    Trainer(model, cfg, quiet_config(epochs=1, output_dir="run"), lm_task()).train(data)


def test_float_token_ids():
    with pytest.raises(DataError, match=r"train_data: batch\['input_ids'\] has dtype torch\.float32; token ids must be "
                                        r"integers \(torch\.long\) — tokenize the text"):
        _train_data(torch.rand(16, 16))
    assert not Path("run").exists()


def test_samples_without_the_input_field():
    with pytest.raises(DataError, match=r"has no field 'input_ids' \(fields: \['tokens'\]\).*Fix: return 'input_ids' "
                                        r"from the dataset, or set the TaskSpec's input_field"):
        _train_data([{"tokens": torch.arange(16)} for _ in range(16)])


def test_token_blocks_with_an_extra_dimension():
    with pytest.raises(DataError, match=r"train_data: batch\['input_ids'\] must have shape \[batch, seq_len\], got "
                                        r"\(16, 16, 2\)"):
        _train_data(torch.randint(0, 32, (16, 16, 2)))


def test_language_model_sequences_of_different_lengths_without_a_pad_id():
    rows = [torch.arange(16), torch.arange(8)] * 8
    with pytest.raises(DataError, match=r"Field 'input_ids' has sequences of different lengths \(\[8, 16\]\) but there "
                                        r"is no pad_token_id\. Fix: pass pad_token_id="):
        _train_data(rows)
