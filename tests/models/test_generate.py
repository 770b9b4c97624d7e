"""``trainforge.generate``: reproducible with a seed, the GPT's key/value cache equal to recomputing, sampling
controls that behave, and the same call for a Hugging Face model and a plain ``forward(idx)`` model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import trainforge
from trainforge import ConfigError
from trainforge.data.tokenizers import CharTokenizer
from trainforge.generation import next_token
from trainforge.models import GPT, GPTConfig


def _gpt(seq: int = 32, vocab: int = 40) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab, max_seq_len=seq, n_layer=2, n_head=2, d_model=32))


def test_the_kv_cache_gives_the_logits_of_recomputing_the_whole_sequence():
    model = _gpt().eval()
    ids = torch.randint(0, 40, (2, 20), generator=torch.Generator().manual_seed(1))
    full = model(ids)
    logits, cache = model.forward_cached(ids[:, :7])
    steps = [logits]
    for t in range(7, 20):  # one position per new token
        logits, cache = model.forward_cached(ids[:, t:t + 1], cache)
        steps.append(logits)
    assert cache[0][0].shape == (2, 2, 20, 16)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)
    several, _ = model.forward_cached(ids[:, 12:], model.forward_cached(ids[:, :12])[1])  # many new positions
    assert torch.allclose(several, full[:, 12:], atol=1e-5, rtol=0)


def test_greedy_generation_with_the_cache_equals_without_even_past_the_context_length():
    model = _gpt(seq=16)
    prompt = torch.tensor([[3, 1, 4, 1, 5]])
    cached = trainforge.generate(model, prompt, 30, temperature=0)  # 35 tokens > max_seq_len 16: the window slides
    plain = trainforge.generate(model, prompt, 30, temperature=0, use_cache=False)
    assert cached.shape == (1, 35) and torch.equal(cached, plain)
    assert torch.equal(cached[:, :5], prompt)


def test_a_seed_reproduces_a_sample_and_leaves_the_global_rng_alone():
    model = _gpt()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = trainforge.generate(model, [1, 2, 3], 20, temperature=1.0, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    b = trainforge.generate(model, [1, 2, 3], 20, temperature=1.0, seed=7)
    c = trainforge.generate(model, [1, 2, 3], 20, temperature=1.0, seed=8)
    assert a == b and a != c and len(a) == 23 and a[:3] == [1, 2, 3]


def test_top_k_1_is_greedy_and_top_p_keeps_the_nucleus_and_temperature_sharpens():
    model = _gpt()
    greedy = trainforge.generate(model, [5, 6], 15, temperature=0)
    assert trainforge.generate(model, [5, 6], 15, temperature=1.5, top_k=1, seed=3) == greedy
    assert trainforge.generate(model, [5, 6], 15, top_p=1e-6, seed=3) == greedy  # only the most likely token
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, -3.0]])
    probs = torch.softmax(logits, -1)[0]  # cumulative 0.61, 0.83, 0.97, ...: top_p=0.9 keeps the first three
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([next_token(logits, 1.0, None, 0.9, g) for _ in range(2000)]).flatten()
    assert set(draws.tolist()) == {0, 1, 2}
    draws = torch.stack([next_token(logits, 1.0, 2, None, g) for _ in range(2000)]).flatten()
    assert set(draws.tolist()) == {0, 1}
    share = (draws == 0).float().mean().item()
    assert share == pytest.approx((probs[0] / probs[:2].sum()).item(), abs=0.04)
    cold = torch.stack([next_token(logits, 0.1, None, None, g) for _ in range(500)]).flatten()
    assert (cold == 0).float().mean().item() > 0.99  # low temperature: nearly always the most likely token


def test_text_in_text_out_with_a_tokenizer_and_stop_at_eos():
    tok = CharTokenizer.train("def main(): return 0\n")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, max_seq_len=32, n_layer=1, n_head=2, d_model=32))
    text = trainforge.generate(model, "def ", 10, seed=0, tokenizer=tok)
    assert isinstance(text, str) and text.startswith("def ")
    forced = trainforge.generate(model, "def", 10, temperature=0, tokenizer=tok, eos_token_id=None)
    first = tok.encode(forced)[3]
    stopped = trainforge.generate(model, [*tok.encode("def")], 10, temperature=0, eos_token_id=first)
    assert len(stopped) == 4  # stopped right after the eos token


class NanoGPTStyle(nn.Module):
    """``forward(idx, targets=None)`` returning ``(logits, loss)``, and only the last position without targets."""

    def __init__(self) -> None:
        super().__init__()
        self.block_size = 8
        self.emb = nn.Embedding(20, 16)
        self.head = nn.Linear(16, 20)

    def forward(self, idx, targets=None):
        assert idx.size(1) <= self.block_size
        h = self.emb(idx).cumsum(dim=1)
        logits = self.head(h)
        return (logits[:, [-1], :], None) if targets is None else (logits, logits.sum())


def test_a_plain_forward_idx_model_generates_with_the_window_cropped():
    torch.manual_seed(0)
    model = NanoGPTStyle()
    out = trainforge.generate(model, torch.tensor([1, 2, 3]), 12, temperature=0)
    assert out.shape == (15,) and model.training  # the window never exceeded block_size; mode restored


def test_a_hugging_face_causal_lm_uses_its_own_cache_and_matches_recomputing():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=50, n_positions=24, n_embd=32, n_layer=2, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    prompt = torch.tensor([[1, 2, 3, 4]])
    cached = trainforge.generate(model, prompt, 30, temperature=0)  # past n_positions: recomputed windows
    plain = trainforge.generate(model, prompt, 30, temperature=0, use_cache=False)
    assert torch.equal(cached, plain) and cached.shape == (1, 34)


def test_bad_generation_arguments_are_one_clear_error():
    model = _gpt()
    with pytest.raises(ConfigError) as info:
        trainforge.generate(model, "text", -1, temperature=-1, top_k=0, top_p=1.5)
    text = str(info.value)
    for name in ("max_new_tokens", "temperature", "top_k", "top_p"):
        assert f"{name}: must be" in text
    with pytest.raises(ConfigError, match="a text prompt needs a tokenizer"):
        trainforge.generate(model, "text", 5)
    with pytest.raises(ConfigError, match="is empty"):
        trainforge.generate(model, [], 5)
