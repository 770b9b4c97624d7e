"""Text generation from a causal language model: ``trainforge.generate(model, prompt, max_new_tokens, ...)``.

Any model the trainer's adapter understands works (``forward(input_ids)``, ``forward(idx, targets=None)``, Hugging
Face causal LMs, outputs as tensors, tuples, dicts or ``.logits``). How each new token is computed, fastest first:

* the model has ``forward_cached(ids, cache) -> (logits, cache)`` (trainforge's GPT): a key/value cache, so each
  new token costs one position;
* the model's forward takes ``past_key_values`` (Hugging Face): its own cache, through ``use_cache=True``;
* otherwise the whole window is recomputed for every token (the last ``max_seq_len`` tokens).

The context is cropped to the model's length (``max_seq_len``, ``block_size`` or a Hugging Face config's
``n_positions`` / ``max_position_embeddings``): once the sequence is longer, every token is computed from the last
window, with or without a cache, so cached and uncached generation give the same tokens.

Sampling: ``temperature=0`` is greedy; ``top_k`` keeps the k most likely tokens, ``top_p`` the smallest set whose
probability reaches p; ``seed`` makes the draw reproducible (its own ``torch.Generator``: the global RNG is left
alone).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from trainforge.errors import ConfigError, ModelError

__all__ = ["context_length", "generate", "next_token"]


def generate(
    model: nn.Module,
    prompt: str | Sequence[int] | Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    tokenizer: Any = None,
    *,
    eos_token_id: int | None = None,
    use_cache: bool = True,
    max_seq_len: int | None = None,
) -> Any:
    """Continue ``prompt`` by up to ``max_new_tokens`` tokens sampled from ``model``.

    Args:
        model: a causal LM returning next-token logits ``[B, T, vocab]`` (any form the trainer's adapter reads).
        prompt: text (needs ``tokenizer``), a list of token ids, or a tensor ``[T]`` / ``[B, T]`` of ids.
        max_new_tokens: how many tokens to add (fewer if ``eos_token_id`` comes first).
        temperature: divides the logits; ``0`` picks the most likely token (greedy).
        top_k: sample only among the ``top_k`` most likely tokens (``1`` is greedy).
        top_p: nucleus sampling: only the most likely tokens whose probabilities sum to ``top_p``.
        seed: seeds a private generator, so the same call gives the same text.
        tokenizer: encodes a text prompt and decodes the result (trainforge, Hugging Face or ``tokenizers``).
        eos_token_id: stop once every sequence has produced it (default: the tokenizer's, if any).
        use_cache: use the model's key/value cache when it has one (False: recompute the window every token).
        max_seq_len: the model's context length, when it cannot be read from the model.

    Returns:
        The same kind as ``prompt``: text (prompt and continuation, decoded together), a list of ids, or a tensor
        of ids ``[T + new]`` / ``[B, T + new]``.
    """
    _check_sampling(max_new_tokens, temperature, top_k, top_p)
    ids = _prompt_ids(prompt, tokenizer)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    ids = ids.to(device)
    if eos_token_id is None and tokenizer is not None:
        eos_token_id = getattr(tokenizer, "eos_token_id", None)
    window = max_seq_len or context_length(model)
    generator = torch.Generator(device=device).manual_seed(int(seed)) if seed is not None else None
    step = _stepper(model, use_cache, window)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():  # cheaper per op than no_grad: decoding one token is dominated by op overhead
            out = _sample_loop(step, ids, max_new_tokens, temperature, top_k, top_p, generator, eos_token_id)
        out = out.clone()  # a normal tensor again (an inference tensor cannot be used where autograd records)
    finally:
        model.train(was_training)
    return _as_prompt_kind(prompt, out, tokenizer)


def _sample_loop(step: Any, ids: Tensor, max_new_tokens: int, temperature: float, top_k: int | None,
                 top_p: float | None, generator: torch.Generator | None, eos: int | None) -> Tensor:
    done = torch.zeros(ids.size(0), dtype=torch.bool, device=ids.device)
    for _ in range(max_new_tokens):
        logits = step(ids)
        token = next_token(logits, temperature, top_k, top_p, generator)
        ids = torch.cat([ids, token.unsqueeze(1)], dim=1)
        if eos is not None:
            done |= token == eos
            if bool(done.all()):
                break
    return ids


def next_token(logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               generator: torch.Generator | None = None) -> Tensor:
    """One token id per row of next-token ``logits`` ``[B, vocab]``: greedy at ``temperature=0``, else sampled
    from the softmax of ``logits / temperature`` restricted to the ``top_k`` / ``top_p`` tokens."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / temperature
    if top_k is not None and top_k < scores.size(-1):
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        ordered, order = torch.sort(scores, dim=-1, descending=True)
        probs = torch.softmax(ordered, dim=-1)
        # drop a token when the tokens before it already reach top_p (the most likely one is always kept)
        drop = (probs.cumsum(dim=-1) - probs) >= top_p
        scores = scores.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


# ---------------------------------------------------------------- how the model computes the next logits


def _stepper(model: nn.Module, use_cache: bool, window: int | None) -> Any:
    """A function ``ids [B, T] -> logits [B, vocab]`` for the last position, keeping whatever cache it can."""
    recompute = _window_forward(model, window)
    if not use_cache:
        return recompute
    if callable(getattr(model, "forward_cached", None)):
        return _CachedSteps(lambda ids, cache: model.forward_cached(ids, cache), recompute, window)  # type: ignore[operator]
    if _takes(model, "past_key_values"):
        def hf(ids: Tensor, cache: Any) -> tuple[Tensor, Any]:
            out = model(input_ids=ids, past_key_values=cache, use_cache=True)
            return out.logits, out.past_key_values

        return _CachedSteps(hf, recompute, window)
    return recompute


class _CachedSteps:
    """Feeds only the new token while the sequence fits the window; past it, the last window is recomputed (a
    learned position table cannot slide, and recomputing keeps the tokens equal to uncached generation)."""

    def __init__(self, call: Any, recompute: Any, window: int | None) -> None:
        self.call, self.recompute, self.window = call, recompute, window
        self.cache: Any = None
        self.seen = 0  # positions in the cache

    def __call__(self, ids: Tensor) -> Tensor:
        if self.window is not None and ids.size(1) > self.window:
            self.cache = None
            return self.recompute(ids)
        new = ids[:, self.seen:] if self.cache is not None else ids
        logits, self.cache = self.call(new, self.cache)
        self.seen = ids.size(1)
        return _last_logits(logits)


def _window_forward(model: nn.Module, window: int | None) -> Any:
    from trainforge.tasks import TaskSpec
    from trainforge.tasks.adapter import ModelAdapter

    vocab = _vocab_size(model)
    task = TaskSpec.language_modeling(name="generate", vocab_size=vocab, max_seq_len=window or 1)
    adapter = ModelAdapter(model, task)

    def forward(ids: Tensor) -> Tensor:
        context = ids[:, -window:] if window is not None else ids
        out = adapter.forward(model, {"input_ids": context}, None)
        if out.logits is None:
            raise ModelError("generate: the model returned no logits for a plain input_ids call (only a loss?). "
                             "Fix: return next-token logits [batch, seq_len, vocab] from forward(input_ids).")
        return _last_logits(out.logits)

    return forward


def _last_logits(logits: Tensor) -> Tensor:
    if logits.dim() != 3:
        raise ModelError(f"generate: expected next-token logits [batch, seq_len, vocab], got shape "
                         f"{tuple(logits.shape)}. Fix: generate from a causal language model.")
    return logits[:, -1, :]


def _takes(model: nn.Module, name: str) -> bool:
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params


def _vocab_size(model: nn.Module) -> int:
    from trainforge.data.tokenizers import model_vocab_size

    return model_vocab_size(model) or 1  # only names the task for the adapter; never checked against the logits


def context_length(model: nn.Module) -> int | None:
    """The model's context length, from ``max_seq_len`` / ``block_size`` or its (Hugging Face) config; None when
    the model does not say (then the whole sequence is fed)."""
    config = getattr(model, "config", None)
    for owner in (model, config):
        for name in ("max_seq_len", "block_size", "n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(owner, name, None) if owner is not None else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


# ---------------------------------------------------------------- prompt in, same kind out


def _prompt_ids(prompt: Any, tokenizer: Any) -> Tensor:
    if isinstance(prompt, str):
        if tokenizer is None:
            raise ConfigError(["prompt: a text prompt needs a tokenizer, got tokenizer=None. Fix: pass tokenizer=... "
                               "(the one the model was trained with), or the prompt as token ids."], what="generate")
        from trainforge.data.tokenizers import encode_text

        ids = torch.tensor([encode_text(tokenizer, prompt)], dtype=torch.long)
    elif isinstance(prompt, Tensor):
        if prompt.dim() not in (1, 2) or prompt.dtype in (torch.float16, torch.bfloat16, torch.float32,
                                                          torch.float64, torch.bool):
            raise ConfigError([f"prompt: a tensor of token ids must be integer, [T] or [B, T], got dtype "
                               f"{prompt.dtype} shape {tuple(prompt.shape)}."], what="generate")
        ids = prompt.long().reshape(1, -1) if prompt.dim() == 1 else prompt.long()
    elif isinstance(prompt, Sequence) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        ids = torch.tensor([list(prompt)], dtype=torch.long)
    else:
        raise ConfigError([f"prompt: expected text, a list of token ids or a tensor of ids, got "
                           f"{type(prompt).__qualname__}."], what="generate")
    if ids.size(1) == 0:
        raise ConfigError(["prompt: is empty (no tokens). Fix: give at least one token, e.g. the tokenizer's <bos> "
                           "id or a few characters of text."], what="generate")
    return ids


def _as_prompt_kind(prompt: Any, ids: Tensor, tokenizer: Any) -> Any:
    if isinstance(prompt, str):
        return tokenizer.decode(ids[0].tolist())
    if isinstance(prompt, Tensor):
        out = ids.to(prompt.device)
        return out[0] if prompt.dim() == 1 else out
    return ids[0].tolist()


def _check_sampling(max_new_tokens: Any, temperature: Any, top_k: Any, top_p: Any) -> None:
    problems = []
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        problems.append(f"max_new_tokens: must be an integer >= 0, got {max_new_tokens!r}. Fix: e.g. 200.")
    if (isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature)
            or temperature < 0):
        problems.append(f"temperature: must be a number >= 0, got {temperature!r}. Fix: 1.0 samples as trained, "
                        "lower is more conservative, 0 is greedy.")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        problems.append(f"top_k: must be an integer >= 1 or None, got {top_k!r}. Fix: e.g. 50 (1 is greedy).")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float))
                              or not 0 < top_p <= 1):
        problems.append(f"top_p: must be in (0, 1] or None, got {top_p!r}. Fix: e.g. 0.9.")
    if problems:
        raise ConfigError(problems, what="generate")
