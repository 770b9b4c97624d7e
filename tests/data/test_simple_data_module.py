"""SimpleDataModule is a real LightningDataModule; without Lightning its import names the extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trainforge.tasks import TaskSpec


def test_simple_data_module_is_a_lightning_data_module():
    lightning = pytest.importorskip("lightning")
    from trainforge.data.tokenizers import ByteTokenizer
    from utils.tokenization.data_module import SimpleDataModule

    tok = ByteTokenizer()
    task = TaskSpec.language_modeling(name="lm", vocab_size=tok.vocab_size, max_seq_len=8)
    dm = SimpleDataModule(train_dataset=[[1, 2, 3], [4, 5]], val_dataset=[[6, 7]], task_spec=task, batch_size=2,
                          num_workers=0, tokenizer=tok)
    assert isinstance(dm, lightning.LightningDataModule)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (2, 3) and (batch["input_ids"] == tok.pad_token_id).sum() == 1
    assert next(iter(dm.val_dataloader()))["input_ids"].tolist() == [[6, 7]]


def test_without_lightning_the_import_error_names_the_extra():
    code = (
        "import sys; sys.modules['lightning'] = None\n"
        "try:\n    import trainforge.data.lightning_module\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'trainforge[lightning]'" in out
