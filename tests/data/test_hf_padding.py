"""The usual Hugging Face pipeline: a real tokenizer with ``padding="max_length"`` into a ``datasets.Dataset`` with a
``label`` column, and a BERT-style classifier from a tiny config. Everything is built locally; nothing downloads.

The model receives the tokenizer's own attention_mask and token_type_ids, and the first-batch loss is the masked
loss computed by hand (1e-6), visibly different from the loss over the padding.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from trainforge import TaskSpec, Trainer, TrainingConfig

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
datasets = pytest.importorskip("datasets")

TEXTS = ["a good film", "a bad film indeed", "good", "bad acting and a bad plot", "the plot was good",
         "not good at all", "good good good", "bad"]
LABELS = [1, 0, 1, 0, 1, 0, 1, 0]
MAX_LEN = 12


def wordpiece_tokenizer():
    """A WordPiece tokenizer trained on TEXTS with the `tokenizers` library, wrapped as a transformers fast one."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(TEXTS, trainers.WordPieceTrainer(vocab_size=80, special_tokens=["[PAD]", "[UNK]",
                                                                                             "[CLS]", "[SEP]"]))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                                cls_token="[CLS]", sep_token="[SEP]")


def test_bert_classifier_trains_on_the_tokenizers_mask():
    tokenizer = wordpiece_tokenizer()
    enc = tokenizer(TEXTS, padding="max_length", max_length=MAX_LEN, truncation=True, return_token_type_ids=True)
    data = datasets.Dataset.from_dict({**enc, "label": LABELS})
    mask = torch.tensor(enc["attention_mask"])
    assert (mask == 0).any()  # the rows really are padded

    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, num_labels=2, max_position_embeddings=MAX_LEN,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                  pad_token_id=tokenizer.pad_token_id, initializer_range=0.5)
    model = transformers.BertForSequenceClassification(cfg)
    ids, types, labels = torch.tensor(enc["input_ids"]), torch.tensor(enc["token_type_ids"]), torch.tensor(LABELS)
    before = copy.deepcopy(model).eval()
    with torch.no_grad():
        masked = float(F.cross_entropy(before(input_ids=ids, attention_mask=mask, token_type_ids=types).logits, labels))
        unmasked = float(F.cross_entropy(before(input_ids=ids, token_type_ids=types).logits, labels))
    assert abs(masked - unmasked) > 1e-4  # the mask matters for this model

    received: list[dict] = []
    model.register_forward_pre_hook(lambda m, args, kwargs: received.append(dict(kwargs)), with_kwargs=True)
    task = TaskSpec.classification(name="sentiment", num_classes=2, vocab_size=len(tokenizer), max_seq_len=MAX_LEN,
                                   pad_token_id=tokenizer.pad_token_id)
    config = TrainingConfig(epochs=4, batch_size=len(TEXTS), learning_rate=1e-2, progress_bar=False, device="cpu",
                            seed=0, shuffle=False, plots=False, track_runs=False)
    results = Trainer(model, None, config, task).train(data)

    step = received[-1]  # the last training step's call
    assert torch.equal(step["attention_mask"], mask) and torch.equal(step["token_type_ids"], types)
    assert results["loss_history"][0] == pytest.approx(masked, abs=1e-6)
    assert results["loss_history"][-1] < results["loss_history"][0]
