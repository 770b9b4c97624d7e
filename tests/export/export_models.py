"""Tiny models of every task type and forward signature, for the export tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainforge import TaskSpec
from trainforge.models.gpt import GPT, GPTConfig

VOCAB = 256
SEQ = 16


def lm_model() -> tuple[GPT, TaskSpec]:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, max_seq_len=SEQ, n_layer=1, n_head=2, d_model=32))
    return model, TaskSpec.language_modeling(name="lm", vocab_size=VOCAB, max_seq_len=SEQ)


class TextClassifier(nn.Module):
    """forward(input_ids, attention_mask=None, labels=None) -> dict with logits (and loss given labels)."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, num_classes)

    def forward(
        self, input_ids: Tensor, attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ) -> dict[str, Tensor]:
        logits = self.head(torch.tanh(self.emb(input_ids).mean(dim=1)))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
        return out


def classification_model() -> tuple[TextClassifier, TaskSpec]:
    torch.manual_seed(1)
    return TextClassifier(), TaskSpec.classification(name="cls", num_classes=3, vocab_size=VOCAB, max_seq_len=SEQ)


class TinySeq2Seq(nn.Module):
    """forward(input_ids, decoder_input_ids) -> (logits, None): a mean-pooled encoder and a causal conv decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.pos = nn.Embedding(SEQ, 16)
        self.mix = nn.Linear(32, 16)
        self.head = nn.Linear(16, VOCAB)

    def forward(self, input_ids: Tensor, decoder_input_ids: Tensor) -> tuple[Tensor, Tensor | None]:
        enc = self.emb(input_ids).mean(dim=1, keepdim=True)
        t = decoder_input_ids.shape[1]
        dec = self.emb(decoder_input_ids) + self.pos(torch.arange(t, device=decoder_input_ids.device))
        prev = torch.cat([torch.zeros_like(dec[:, :1]), dec[:, :-1]], dim=1)
        h = torch.tanh(self.mix(torch.cat([dec + enc, prev], dim=-1)))
        return self.head(h), None


def seq2seq_model() -> tuple[TinySeq2Seq, TaskSpec]:
    torch.manual_seed(2)
    task = TaskSpec.seq2seq(name="s2s", vocab_size=VOCAB, max_seq_len=SEQ, pad_token_id=0, decoder_start_token_id=0)
    return TinySeq2Seq(), task


class TinyConvNet(nn.Module):
    """forward(pixel_values) -> logits [B, num_classes]."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, pixel_values: Tensor) -> Tensor:
        h = F.relu(self.bn(self.conv(pixel_values)))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


def vision_model() -> tuple[TinyConvNet, TaskSpec]:
    torch.manual_seed(3)
    task = TaskSpec.vision_classification(name="vision", num_classes=4, image_size=8, num_channels=3)
    return TinyConvNet(), task


# ----------------------------------------------------------------- other forward signatures


class NanoGPTStyle(nn.Module):
    """forward(idx, targets=None) -> (logits, loss); without targets only the last position's logits."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, VOCAB)

    def forward(self, idx: Tensor, targets: torch.Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        h = torch.cumsum(self.emb(idx), dim=1)
        if targets is not None:
            logits = self.head(h)
            return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return self.head(h[:, [-1], :]), None


@dataclass
class HFLikeOutput:
    logits: Tensor
    loss: Tensor | None = None


class HFLike(nn.Module):
    """Hugging Face style: keyword inputs, use_cache, an output object with .logits."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, VOCAB)

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        use_cache: bool | None = None,
    ) -> HFLikeOutput:
        assert input_ids is not None
        return HFLikeOutput(self.head(torch.cumsum(self.emb(input_ids), dim=1)))


class KwargsOnly(nn.Module):
    """forward(**batch) -> logits."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, VOCAB)

    def forward(self, **batch: Any) -> Tensor:
        return self.head(self.emb(batch["input_ids"]))


# ----------------------------------------------------------------- deliberately broken models


class NotExportable(nn.Module):
    """Scales by the median of its input computed in Python: scripting rejects ``tolist()`` without a type,
    ``torch.export`` cannot follow the values, and a trace bakes in one median as a constant."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)

    def forward(self, pixel_values: Tensor) -> Tensor:
        values = pixel_values.mean(dim=(1, 2, 3)).tolist()
        median = sorted(values)[len(values) // 2]
        if median > 0:
            return self.fc(pixel_values.flatten(1)) * median
        return self.fc(pixel_values.flatten(1)) - median


class ReturnsNoTensor(nn.Module):
    """forward returns plain Python numbers: nothing to export, but the weights are still saved."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)

    def forward(self, pixel_values: Tensor) -> dict[str, list[float]]:
        return {"scores": self.fc(pixel_values.flatten(1)).flatten().tolist()}


class DataDependentCheck(nn.Module):
    """A value check in Python (always true here): ``torch.export`` cannot guard on it, tracing records it fine,
    so the ONNX export falls back from the dynamo exporter to the legacy one."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)

    def forward(self, pixel_values: Tensor) -> Tensor:
        if bool(pixel_values.abs().sum() < 0):
            raise ValueError("negative absolute values")
        return self.fc(pixel_values.flatten(1))
