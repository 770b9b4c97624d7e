"""A small decoder-only transformer (GPT) for causal language modelling.

The model is deliberately plain so that ``torch.jit.trace``, ``torch.jit.script`` and ``torch.onnx`` can all
export it: no Python-side caches in ``forward`` (generation's key/value cache is a separate method,
``forward_cached``, that exports ignore), no data-dependent control flow beyond one length check, and attention through
``torch.nn.functional.scaled_dot_product_attention`` (which picks the fast fused kernels where available).

Presets live in :data:`MODEL_PRESETS` as plain dicts; :func:`build_model` turns a preset name plus overrides into
``(model, config)``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainforge.errors import ConfigError

__all__ = ["GPT", "GPTConfig", "KVCache", "MODEL_PRESETS", "build_model"]

# Per layer, the keys and values of every position so far, each [B, n_head, T, head_dim].
KVCache = list[tuple[Tensor, Tensor]]


@dataclass
class GPTConfig:
    """Shape and regularisation of a :class:`GPT`. Validated on construction (every problem reported at once)."""

    vocab_size: int = 256
    max_seq_len: int = 64
    n_layer: int = 2
    n_head: int = 2
    d_model: int = 64
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def problems(self) -> list[str]:
        """Every problem with this config, each with the value received and a fix; empty when valid."""
        out: list[str] = []
        for name in ("vocab_size", "max_seq_len", "n_layer", "n_head", "d_model"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                out.append(f"{name} must be an int, got {value!r} ({type(value).__name__}); pass a positive integer")
            elif value <= 0:
                out.append(f"{name} must be positive, got {value}; pass an integer >= 1")
        d, h = self.d_model, self.n_head
        if (
            isinstance(d, int)
            and isinstance(h, int)
            and not isinstance(d, bool)
            and not isinstance(h, bool)
            and d > 0
            and h > 0
            and d % h != 0
        ):
            lower = d - d % h
            upper = lower + h
            fix_d = f"d_model={upper}" if lower == 0 else f"d_model={lower} or {upper}"
            fix_h = max(k for k in range(1, h + 1) if d % k == 0)
            out.append(
                f"d_model ({d}) must be divisible by n_head ({h}); use {fix_d}, or n_head={fix_h}"
            )
        p = self.dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)):
            out.append(f"dropout must be a float in [0, 1), got {p!r} ({type(p).__name__}); pass e.g. 0.0 or 0.1")
        elif not (0.0 <= float(p) < 1.0) or math.isnan(float(p)):
            out.append(f"dropout must be in [0, 1), got {p}; pass e.g. 0.0 (off) or 0.1")
        for name in ("bias", "tie_weights"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                out.append(f"{name} must be a bool, got {value!r} ({type(value).__name__}); pass True or False")
        return out

    def validate(self) -> None:
        """Raise :class:`~trainforge.errors.ConfigError` listing every problem, if there are any."""
        problems = self.problems()
        if problems:
            raise ConfigError(problems, what="GPTConfig")

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON/YAML-friendly dict; ``GPTConfig.from_dict(c.to_dict()) == c``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        """Build from a dict; unknown keys are a :class:`ConfigError` (with did-you-mean), not silently dropped."""
        known = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in known]
        if unknown:
            problems = []
            for k in unknown:
                close = difflib.get_close_matches(str(k), known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
                problems.append(f"unknown key {k!r}; {hint}")
            raise ConfigError(problems, what="GPTConfig")
        return cls(**data)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through ``scaled_dot_product_attention(is_causal=True)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.head_dim = config.d_model // config.n_head
        self.dropout = float(config.dropout)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # [B, T, C] -> [B, n_head, T, head_dim]
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=p, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))

    @torch.jit.ignore
    def forward_cached(self, x: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attention of the new positions ``x`` over the cached keys/values plus their own (causal), and the
        extended cache. Used by generation only; eval mode (no dropout)."""
        B, T, C = x.shape
        # [B, T, 3C] -> three [B, n_head, T, head_dim] views in one reshape (fewer ops: decoding is op-bound)
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if past is None:  # the prompt: plain causal attention, as in forward
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            mask = None
            if T > 1:  # several new positions: each sees the past and the new positions up to itself
                n_past = past[0].size(2)
                rows = torch.arange(T, device=x.device).unsqueeze(1) + n_past
                mask = torch.arange(n_past + T, device=x.device).unsqueeze(0) <= rows
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # one new position sees everything cached
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y), (k, v)


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(d, 4d) -> GELU -> Linear(4d, d)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, 4 * config.d_model, bias=config.bias)
        self.act = nn.GELU()
        self.proj = nn.Linear(4 * config.d_model, config.d_model, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x

    @torch.jit.ignore
    def forward_cached(self, x: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        a, present = self.attn.forward_cached(self.ln1(x), past)
        x = x + a
        return x + self.mlp(self.ln2(x)), present


class GPT(nn.Module):
    """Decoder-only transformer returning next-token logits ``[B, T, vocab_size]`` for every position.

    Args:
        config: a :class:`GPTConfig` (or ``None`` for the defaults, i.e. the ``tiny`` preset).
    """

    def __init__(self, config: GPTConfig | None = None) -> None:
        super().__init__()
        if config is None:
            config = GPTConfig()
        config.validate()
        self.config = config
        self.max_seq_len = config.max_seq_len
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.max_seq_len, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.d_model, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_weights:
            # One Parameter, two modules: the output projection reuses the token embedding matrix.
            self.lm_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # Residual projections write into the residual stream once per sublayer (2 per block); scaling them by
        # 1/sqrt(2 * n_layer) keeps the stream's variance roughly independent of depth at init.
        resid_std = 0.02 / math.sqrt(2 * config.n_layer)
        for name, param in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(param, mean=0.0, std=resid_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            if module.weight is not None:
                nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Logits ``[B, T, vocab_size]`` for ``input_ids`` ``[B, T]`` (int64, ``T <= max_seq_len``).

        ``attention_mask`` is accepted (so HF-style batches can be passed as ``**batch``) and ignored. That is
        correct for right-padded causal LM: with a causal mask, position ``t`` only attends to positions ``<= t``,
        and with right padding every real token precedes every pad, so no real position ever sees a pad. The pads'
        own outputs are garbage but are excluded by the loss (labels ``-100`` / masked), so they never matter.
        Left padding would NOT be handled correctly; pad on the right.
        """
        seq_len = input_ids.size(1)
        if seq_len > self.max_seq_len:
            raise ValueError(
                f"input_ids has sequence length {seq_len}, but this GPT was built with max_seq_len={self.max_seq_len}; "
                f"truncate or split the input to at most {self.max_seq_len} tokens, "
                f"or build the model with max_seq_len >= {seq_len}"
            )
        pos = torch.arange(seq_len, dtype=torch.long, device=input_ids.device)
        x = self.drop(self.tok_emb(input_ids) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    @torch.jit.ignore
    def forward_cached(self, input_ids: Tensor, cache: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """Logits for ``input_ids`` ``[B, T]`` that follow the positions already in ``cache`` (None: a new
        sequence), and the cache extended by them: the key/value cache of generation, so that each new token
        costs one position instead of the whole window. Call in eval mode. ``forward`` stays cache-free (and
        exportable); ``trainforge.generate`` uses this method when a model has it.
        """
        n_past = 0 if cache is None else int(cache[0][0].size(2))
        seq_len = input_ids.size(1)
        if n_past + seq_len > self.max_seq_len:
            raise ValueError(
                f"the cache holds {n_past} positions and {seq_len} more were given, but this GPT was built with "
                f"max_seq_len={self.max_seq_len}; start a new cache with the last {self.max_seq_len} tokens"
            )
        pos = torch.arange(n_past, n_past + seq_len, dtype=torch.long, device=input_ids.device)
        x = self.tok_emb(input_ids) + self.pos_emb(pos)
        present: KVCache = []
        for i, block in enumerate(self.blocks):
            assert isinstance(block, Block)
            x, layer = block.forward_cached(x, None if cache is None else cache[i])
            present.append(layer)
        return self.lm_head(self.ln_f(x)), present

    @torch.jit.ignore
    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of distinct parameters (a tied weight is counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


# Presets as plain data (feed them to GPTConfig.from_dict). Step = forward + backward + AdamW step, fp32, CPU,
# torch 2.13, 2 threads, median of 20 steps after 3 warm-up steps (measured on a 2-core CI-class machine):
#   tiny        0.12M params; ~6 ms per step at batch 8, seq 32; trains in seconds on CPU
#   small       0.84M params; ~105 ms per step at batch 16, seq 128
#   bench       1.85M params; ~190 ms per step at batch_size=16, seq_len=128 (target: ~200 ms)
#   bench_tiny  0.07M params; ~4 ms per step at batch_size=8, seq_len=32 (target: <= 10 ms)
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"vocab_size": 256, "max_seq_len": 64, "n_layer": 2, "n_head": 2, "d_model": 64},
    "small": {"vocab_size": 256, "max_seq_len": 128, "n_layer": 4, "n_head": 4, "d_model": 128},
    "bench": {"vocab_size": 256, "max_seq_len": 128, "n_layer": 4, "n_head": 4, "d_model": 192},
    "bench_tiny": {"vocab_size": 256, "max_seq_len": 32, "n_layer": 1, "n_head": 2, "d_model": 64},
}


def build_model(name: str, **overrides: Any) -> tuple[GPT, GPTConfig]:
    """Build the preset ``name`` with ``overrides`` applied (e.g. ``build_model("tiny", dropout=0.1)``).

    Raises:
        ConfigError: unknown preset name (lists the presets, with a did-you-mean), unknown override keys, or an
            invalid resulting config.
    """
    if name not in MODEL_PRESETS:
        names = sorted(MODEL_PRESETS)
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            [f"unknown model preset {name!r}; {hint}choose one of: {', '.join(names)}"],
            what="model preset",
        )
    config = GPTConfig.from_dict({**MODEL_PRESETS[name], **overrides})
    return GPT(config), config
