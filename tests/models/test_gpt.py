"""Tests of the small GPT: shapes, causality, learning, errors, weight tying, TorchScript, presets."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from trainforge.errors import ConfigError
from trainforge.models import GPT, MODEL_PRESETS, GPTConfig, build_model


def _tiny(**overrides: object) -> GPT:
    torch.manual_seed(0)
    cfg = GPTConfig(**{"vocab_size": 32, "max_seq_len": 16, "n_layer": 2, "n_head": 2, "d_model": 32, **overrides})  # type: ignore[arg-type]
    return GPT(cfg).eval()


def test_output_shape_and_dtype() -> None:
    model = _tiny()
    x = torch.randint(0, 32, (3, 10))
    logits = model(x)
    assert logits.shape == (3, 10, 32)
    assert logits.dtype == torch.float32
    # attention_mask is accepted (HF-style batches) and does not change right-padded causal outputs.
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[:, 7:] = 0
    torch.testing.assert_close(model(x, attention_mask=mask), logits)


def test_causality_future_tokens_do_not_change_past_logits() -> None:
    model = _tiny()
    x = torch.randint(0, 32, (2, 12))
    t = 5
    y = x.clone()
    y[:, t + 1] = (y[:, t + 1] + 7) % 32
    y[:, t + 3 :] = (y[:, t + 3 :] + 1) % 32
    a, b = model(x), model(y)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1])
    assert not torch.allclose(a[:, t + 1], b[:, t + 1])


def test_training_on_a_repeating_sequence_drives_loss_down() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=16, max_seq_len=32, n_layer=1, n_head=2, d_model=32)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    pattern = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    seq = pattern.repeat(5)[:33].unsqueeze(0).repeat(4, 1)
    x, y = seq[:, :-1], seq[:, 1:]
    losses = []
    for _ in range(60):
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, 16), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 2.0  # ~ln(16) = 2.77 at init
    assert losses[-1] < 0.5 * losses[0]
    assert losses[-1] < 1.0


def test_sequence_longer_than_max_seq_len_is_a_clear_error() -> None:
    model = _tiny()
    with pytest.raises(ValueError) as exc:
        model(torch.zeros(1, 17, dtype=torch.long))
    msg = str(exc.value)
    assert "sequence length 17" in msg
    assert "max_seq_len=16" in msg
    assert "truncate" in msg and "max_seq_len >= 17" in msg
    # exactly max_seq_len is fine
    assert model(torch.zeros(1, 16, dtype=torch.long)).shape == (1, 16, 32)


def test_config_validation_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as exc:
        GPTConfig(d_model=100, n_head=3, n_layer=0, dropout=1.0, vocab_size=-5)
    err = exc.value
    assert str(err).startswith("GPTConfig has 4 problems:")
    assert err.problems == [
        "vocab_size must be positive, got -5; pass an integer >= 1",
        "n_layer must be positive, got 0; pass an integer >= 1",
        "d_model (100) must be divisible by n_head (3); use d_model=99 or 102, or n_head=2",
        "dropout must be in [0, 1), got 1.0; pass e.g. 0.0 (off) or 0.1",
    ]
    assert isinstance(err, ValueError)


def test_config_dict_round_trip_and_unknown_key() -> None:
    cfg = GPTConfig(n_layer=3, dropout=0.1, tie_weights=False)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match=r"unknown key 'n_layers'; did you mean 'n_layer'\?"):
        GPTConfig.from_dict({"n_layers": 3})


def test_tie_weights_shares_storage() -> None:
    tied = _tiny()
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert tied.lm_head.weight.data_ptr() == tied.tok_emb.weight.data_ptr()
    untied = _tiny(tie_weights=False)
    assert untied.lm_head.weight.data_ptr() != untied.tok_emb.weight.data_ptr()
    emb = 32 * 32
    assert untied.num_parameters() - tied.num_parameters() == emb
    # the shared matrix survives a state_dict round trip
    clone = _tiny()
    clone.load_state_dict(tied.state_dict())
    assert clone.lm_head.weight is clone.tok_emb.weight


def test_init_scales_residual_projections() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=8, d_model=128, n_head=4))
    resid = model.blocks[0].mlp.proj.weight.std().item()
    fc = model.blocks[0].mlp.fc.weight.std().item()
    assert abs(fc - 0.02) < 0.002
    assert abs(resid - 0.02 / 4.0) < 0.001  # 1/sqrt(2 * 8) = 1/4


def test_torch_jit_trace_matches_eager() -> None:
    model = _tiny()
    x = torch.randint(0, 32, (2, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarning for the length check is expected
        traced = torch.jit.trace(model, (x,))
    torch.testing.assert_close(traced(x), model(x))
    # the traced graph is not specialised to the example length
    x2 = torch.randint(0, 32, (1, 7))
    torch.testing.assert_close(traced(x2), model(x2))


def test_torch_jit_script_matches_eager() -> None:
    model = _tiny()
    scripted = torch.jit.script(model)
    x = torch.randint(0, 32, (2, 9))
    torch.testing.assert_close(scripted(x), model(x))
    with pytest.raises(Exception, match="max_seq_len"):
        scripted(torch.zeros(1, 17, dtype=torch.long))


def test_dropout_is_active_only_in_training() -> None:
    model = _tiny(dropout=0.5)
    x = torch.randint(0, 32, (2, 8))
    torch.testing.assert_close(model(x), model(x))  # eval: deterministic
    model.train()
    assert not torch.allclose(model(x), model(x))


@pytest.mark.parametrize("name", sorted(MODEL_PRESETS))
def test_presets_build_and_run(name: str) -> None:
    model, cfg = build_model(name)
    assert isinstance(model, GPT) and model.config is cfg
    assert cfg.to_dict() == {**GPTConfig().to_dict(), **MODEL_PRESETS[name]}
    with torch.no_grad():
        out = model(torch.zeros(1, cfg.max_seq_len, dtype=torch.long))
    assert out.shape == (1, cfg.max_seq_len, cfg.vocab_size)


def test_build_model_overrides_and_unknown_name() -> None:
    model, cfg = build_model("tiny", dropout=0.1, n_layer=1)
    assert cfg.dropout == 0.1 and len(model.blocks) == 1
    with pytest.raises(ConfigError) as exc:
        build_model("tinyy")
    msg = str(exc.value)
    assert "unknown model preset 'tinyy'" in msg and "did you mean 'tiny'?" in msg
    for name in MODEL_PRESETS:
        assert name in msg
