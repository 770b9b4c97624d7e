"""UniversalDataModule: every input form, the seeded split, reproducibility, distributed shards, resume."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset, IterableDataset

from trainforge.data.module import UniversalDataModule, resume_handle
from trainforge.data.sampler import ResumableSampler
from trainforge.data.streaming import ResumableIterable
from trainforge.errors import ConfigError, DataError, DataTypeError
from trainforge.tasks import TaskSpec

LM = TaskSpec.language_modeling(name="lm", vocab_size=64, max_seq_len=8, pad_token_id=0)
CLS = TaskSpec.classification(name="c", num_classes=3, vocab_size=64, pad_token_id=0)


def rows(n: int = 20, t: int = 4) -> torch.Tensor:
    return (torch.arange(n)[:, None] + torch.arange(t)) % 64  # row i starts with i


class MapDS(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"input_ids": torch.full((4,), i), "labels": torch.tensor(i % 3)}


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        for i in range(self.n):
            yield {"input_ids": torch.full((4,), i)}


def firsts(loader) -> list[list[int]]:
    return [b["input_ids"][:, 0].tolist() for b in loader]


def ids_of(module) -> list[int]:
    return sorted(i for b in firsts(module.train_dataloader()) for i in b)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rows(20),
        lambda: list(rows(20)),
        lambda: [{"input_ids": r.tolist()} for r in rows(20)],
        lambda: [r.tolist() for r in rows(20)],
        lambda: MapDS(20),
    ],
    ids=["tensor", "list-of-tensors", "list-of-dicts", "token-lists", "map-dataset"],
)
def test_input_forms_give_every_sample_once_per_epoch(make):
    dm = UniversalDataModule(make(), None, LM, batch_size=6, validation_split=0)
    loader = dm.train_dataloader()
    seen = [x for b in loader for x in b["input_ids"][:, 0].tolist()]
    assert len(seen) == 20 and set(b["input_ids"].shape[1] for b in loader) == {4}
    assert sorted(seen) == sorted(rows(20)[:, 0].tolist())
    assert dm.val_dataloader() is None


def test_pairs_tuple_and_classification_lists():
    x, y = torch.randint(1, 64, (10, 5)), torch.randint(0, 3, (10,))
    batch = next(iter(UniversalDataModule((x, y), None, CLS, batch_size=10, validation_split=0,
                                          shuffle=False).train_dataloader()))
    assert torch.equal(batch["input_ids"], x) and torch.equal(batch["labels"], y)
    pairs = [(x[i], y[i]) for i in range(10)]
    batch = next(iter(UniversalDataModule(pairs, None, CLS, batch_size=10, validation_split=0,
                                          shuffle=False).train_dataloader()))
    assert torch.equal(batch["labels"], y)


def test_hugging_face_dataset():
    datasets = pytest.importorskip("datasets")
    hf = datasets.Dataset.from_dict({"input_ids": rows(12).tolist(), "text": [f"t{i}" for i in range(12)]})
    dm = UniversalDataModule(hf, None, LM, batch_size=4, validation_split=0.25)
    train = sorted(i for b in firsts(dm.train_dataloader()) for i in b)
    val = sorted(i for b in firsts(dm.val_dataloader()) for i in b)
    assert len(train) == 9 and len(val) == 3 and sorted(train + val) == sorted(rows(12)[:, 0].tolist())
    assert "text" not in next(iter(dm.train_dataloader()))  # raw text columns are not model inputs


def test_iterable_dataset_streams_in_order_and_cannot_be_split():
    dm = UniversalDataModule(Stream(10), None, LM, batch_size=4)  # default split: silently none for streams
    assert firsts(dm.train_dataloader()) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert dm.val_dataloader() is None
    with pytest.raises(DataError, match="validation_split needs map-style data"):
        UniversalDataModule(Stream(10), None, LM, batch_size=4, validation_split=0.2)


def test_raw_text_with_tokenizer_and_pad_id_from_tokenizer():
    from trainforge.data.tokenizers import ByteTokenizer

    tok = ByteTokenizer()
    task = TaskSpec.language_modeling(name="lm", vocab_size=tok.vocab_size, max_seq_len=8)
    dm = UniversalDataModule(["abc", "de"], None, task, batch_size=2, validation_split=0, shuffle=False,
                             tokenizer=tok)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].tolist() == [[97, 98, 99], [100, 101, tok.pad_token_id]]
    assert batch["labels"].tolist() == [[97, 98, 99], [100, 101, -100]]
    with pytest.raises(DataError, match="raw text.*no tokenizer"):
        UniversalDataModule(["abc", "de"], None, task, batch_size=2)


def test_seeded_split_loses_and_duplicates_nothing():
    data = rows(101)
    a = UniversalDataModule(data, None, LM, batch_size=8, seed=3, validation_split=0.2)
    b = UniversalDataModule(data, None, LM, batch_size=8, seed=3, validation_split=0.2)
    c = UniversalDataModule(data, None, LM, batch_size=8, seed=4, validation_split=0.2)
    train, val = ids_of(a), sorted(i for x in firsts(a.val_dataloader()) for i in x)
    assert len(val) == 20 and len(train) == 81
    assert sorted(train + val) == sorted(data[:, 0].tolist())  # every sample exactly once
    assert train == ids_of(b) and train != ids_of(c)


def test_two_runs_and_worker_counts_give_identical_batches_and_epochs_differ():
    data = [{"input_ids": torch.full((4,), i)} for i in range(40)]

    def epochs(num_workers):
        dm = UniversalDataModule(data, None, LM, batch_size=5, num_workers=num_workers, seed=7, validation_split=0.1)
        loader = dm.train_dataloader()
        out = []
        for e in range(2):
            loader.sampler.set_epoch(e)
            out.append(firsts(loader))
        return out

    run1, run2, workers = epochs(0), epochs(0), epochs(2)
    assert run1 == run2 == workers
    assert run1[0] != run1[1] and sorted(sum(run1[0], [])) == sorted(sum(run1[1], []))


class Augment(Dataset):
    """Random augmentation inside __getitem__: worker seeds must be a function of (seed, epoch, worker)."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return {"input_ids": torch.full((2,), i), "noise": torch.rand(())}


def test_worker_random_augmentation_is_seeded_per_epoch():
    def noise(epoch):
        dm = UniversalDataModule(Augment(), None, LM, batch_size=4, num_workers=2, seed=1, validation_split=0)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [b["noise"].tolist() for b in loader]

    assert noise(1) == noise(1) and noise(0) != noise(1)


def test_resume_position_is_arithmetic_on_the_shared_sampler():
    dm = UniversalDataModule(rows(30), None, LM, batch_size=4, seed=5, validation_split=0)
    loader = dm.train_dataloader()
    position, per_batch = resume_handle(loader)
    assert isinstance(position, ResumableSampler) and position is dm.train_sampler and per_batch == 4
    position.set_epoch(2)
    full = firsts(loader)
    position.set_start(3 * per_batch)  # 3 batches already trained on
    assert firsts(loader) == full[3:]
    assert resume_handle(torch.utils.data.DataLoader(rows(4))) is None


def test_distributed_ranks_partition_the_epoch():
    shards = [ids_of(UniversalDataModule(rows(20), None, LM, batch_size=3, validation_split=0, rank=r, world_size=2))
              for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 10
    assert sorted(shards[0] + shards[1]) == sorted(rows(20)[:, 0].tolist())


def test_streaming_resumes_exactly_and_matches_across_workers_and_ranks():
    def loader(num_workers=0, rank=0, world=1):
        stream = ResumableIterable(Stream(23))
        return UniversalDataModule(stream, None, LM, batch_size=3, num_workers=num_workers,
                                   rank=rank, world_size=world).train_dataloader()

    full = firsts(loader())
    assert sum(full, []) == list(range(23))
    assert firsts(loader(num_workers=2)) == full
    resumed = loader()
    position, per_batch = resume_handle(resumed)
    position.set_start(4 * per_batch)
    assert firsts(resumed) == full[4:]
    r0, r1 = sum(firsts(loader(rank=0, world=2)), []), sum(firsts(loader(rank=1, world=2)), [])
    assert sorted(r0 + r1) == list(range(23)) and r0[:3] == [0, 2, 4]


def test_quick_reference_parameter_names_and_bad_arguments():
    dm = UniversalDataModule(train_dataset=rows(10), val_dataset=rows(4), task_spec=LM, batch_size=4)
    assert len(dm.val_dataset) == 4 and len(dm.train_dataset) == 10
    with pytest.raises(ConfigError) as info:
        UniversalDataModule(rows(4), task_spec=None, batch_size=0, train_dataset=rows(4))
    msg = str(info.value)
    assert "3 problems" in msg and "train_data= or train_dataset=" in msg and "batch_size must be" in msg
    with pytest.raises(DataTypeError, match="Expected train_data to be Dataset or DataLoader, got builtins.int"):
        UniversalDataModule(5, None, LM)


def test_trainer_trains_on_the_module_loaders():
    from tests.helpers import lm_task, quiet_config, tiny_gpt
    from trainforge.trainer import Trainer

    model, cfg = tiny_gpt()
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 32, (24, 16), generator=g)
    dm = UniversalDataModule(data, None, lm_task(), batch_size=8, seed=0)
    results = Trainer(model, cfg, quiet_config(epochs=1), lm_task()).train(dm.train_dataloader(),
                                                                             dm.val_dataloader())
    assert len(results["loss_history"]) == 1 and "val/loss" in results["metrics_summary"]
