"""Every registered model, in every variant and ablation: shapes, gradients, determinism."""

from __future__ import annotations

import itertools

import pytest
import torch

import mimcast
from mimcast.models.layers import fold_patches, unfold_patches
from mimcast.models.registry import model_variants


def configurations() -> list[tuple[str, dict]]:
    out = []
    for name in mimcast.list_models():
        for variant, layer_norm in itertools.product(model_variants(name), (False, True)):
            out.append((name, dict(variant=variant, layer_norm=layer_norm)))
        if name == "mim":
            for variant, (mim_n, mim_s) in itertools.product(
                ("paper", "openstl"), ((False, True), (True, False))
            ):
                out.append((name, dict(variant=variant, mim_n=mim_n, mim_s=mim_s)))
    return out


CONFIGS = configurations()
IDS = [f"{n}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for n, kw in CONFIGS]


def tiny(name: str, **kwargs) -> mimcast.Forecaster:
    base = dict(in_channels=2, height=8, width=12, patch_size=2, hidden=(6, 6, 6), filter_size=3)
    return mimcast.create_model(name, **{**base, **kwargs})


def test_registry_lists_the_paper_models() -> None:
    names = ["cdna", "convlstm", "dfn", "fclstm", "frnn", "mcnet", "mim", "predrnn"]
    assert mimcast.list_models() == [*names, "predrnnpp", "predrnnv2", "stresnet", "trajgru", "vpn"]
    assert model_variants("dfn") == model_variants("cdna") == ("paper",)  # OpenSTL has neither
    assert model_variants("vpn") == ("paper",)


def assert_every_parameter_learns(model: mimcast.Forecaster, frames, mask) -> None:
    """Every gradient is nonzero, or, for parameters behind a layer that starts at zero
    (TrajGRU's flow output, which starts every warp as the identity), after one update."""
    silent = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    if not silent:
        return
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    model.zero_grad()
    ((model(frames, context_len=3, mask=mask) - frames[:, 1:]) ** 2).mean().backward()
    grads = dict(model.named_parameters())
    for name in silent:
        assert grads[name].grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_shapes_backward_predict(name: str, kwargs: dict, device) -> None:
    model = tiny(name, **kwargs).to(device)
    frames = torch.rand(3, 6, 2, 8, 12, device=device)
    mask = (torch.rand(3, 6 - 3 - 1, 1, 1, 1, device=device) > 0.5).float()
    aux: dict = {}
    preds = model(frames, context_len=3, mask=mask, aux=aux)
    assert preds.shape == (3, 5, 2, 8, 12)
    assert torch.isfinite(preds).all()
    assert set(aux) == ({"decoupling_loss"} if name == "predrnnv2" else set())
    assert all(v.ndim == 0 and v.requires_grad for v in aux.values())
    loss = ((preds - frames[:, 1:]) ** 2).mean() + sum(aux.values())  # as the trainer adds them
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} received no gradient"
        assert torch.isfinite(p.grad).all(), pname
    assert_every_parameter_learns(model, frames, mask)
    future = model.predict(frames[:, :3], horizon=4)
    assert future.shape == (3, 4, 2, 8, 12)
    assert torch.isfinite(future).all()


@pytest.mark.parametrize("name", mimcast.list_models())
def test_identical_calls_and_changing_batch_size(name: str) -> None:
    model = tiny(name, layer_norm=True)
    frames = torch.rand(4, 5, 2, 8, 12)
    a = model(frames, context_len=2)
    b = model(frames, context_len=2)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # a smaller batch afterwards works, and each sequence is independent of its batch-mates
    # (in float64: float32 convolutions round differently for another batch size)
    model, frames = model.double(), frames.double()
    c = model(frames[1:2], context_len=2)
    torch.testing.assert_close(c, model(frames, context_len=2)[1:2], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "variant"), [(n, v) for n in mimcast.list_models() for v in model_variants(n)]
)
def test_hidden_sizes_may_differ_per_layer(name: str, variant: str) -> None:
    model = tiny(name, hidden=(4, 7, 5), variant=variant)
    frames = torch.rand(2, 5, 2, 8, 12)
    aux: dict = {}
    preds = model(frames, context_len=2, aux=aux)
    assert preds.shape == (2, 4, 2, 8, 12)
    (preds.sum() + sum(aux.values())).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_predict_equals_forward_without_ground_truth() -> None:
    model = tiny("mim")
    context = torch.rand(2, 3, 2, 8, 12)
    future = model.predict(context, horizon=4)
    frames = torch.cat([context, torch.zeros(2, 4, 2, 8, 12)], dim=1)
    with torch.no_grad():
        preds = model(frames, context_len=3, mask=None)  # the zeros are never read
    torch.testing.assert_close(future, preds[:, 2:], rtol=0, atol=0)


def test_mask_one_feeds_the_true_frame() -> None:
    model = tiny("predrnn")
    frames = torch.rand(2, 6, 2, 8, 12)
    with torch.no_grad():
        teacher = model(frames, context_len=3, mask=torch.ones(1))
        longer_context = model(frames, context_len=5)
        free = model(frames, context_len=3)
    torch.testing.assert_close(teacher, longer_context, rtol=1e-5, atol=1e-6)
    assert (teacher - free).abs().max() > 1e-6


def test_context_mask_mixes_context_steps() -> None:
    model = tiny("mim")
    frames = torch.rand(2, 6, 2, 8, 12)
    with torch.no_grad():
        default = model(frames, context_len=4)
        ones = model(frames, context_len=4, context_mask=torch.ones(2, 3, 1, 1, 1))
        zeros = model(frames, context_len=4, context_mask=torch.zeros(2, 3, 1, 1, 1))
    torch.testing.assert_close(default, ones, rtol=0, atol=0)
    assert (default[:, 0] - zeros[:, 0]).abs().max() == 0  # step 0 always reads frame 0
    assert (default[:, 1:] - zeros[:, 1:]).abs().max() > 1e-6


def test_patch_folding_matches_reshape_patch() -> None:
    """OpenSTL's reshape_patch, transcribed in numpy on (B, T, H, W, C) frames."""
    x = torch.rand(2, 3, 2, 8, 12)  # (B, T, C, H, W)
    p = 4
    a = x.permute(0, 1, 3, 4, 2).numpy()  # (B, T, H, W, C)
    b, t, h, w, c = a.shape
    a = a.reshape(b, t, h // p, p, w // p, p, c).transpose(0, 1, 2, 4, 3, 5, 6)
    a = a.reshape(b, t, h // p, w // p, p * p * c)
    expected = torch.from_numpy(a).permute(0, 1, 4, 2, 3)
    folded = fold_patches(x, p)
    torch.testing.assert_close(folded, expected, rtol=0, atol=0)
    torch.testing.assert_close(unfold_patches(folded, p), x, rtol=0, atol=0)


def test_bad_arguments_give_clear_errors() -> None:
    with pytest.raises(
        mimcast.ConfigError, match="unknown model 'mimo'.*cdna, convlstm, dfn, fclstm, frnn, mcnet"
    ):
        mimcast.create_model("mimo", in_channels=1, height=8, width=8)
    with pytest.raises(mimcast.ConfigError, match="pad_mode must be one of replicate"):
        mimcast.create_model("mim", in_channels=1, height=8, width=8, pad_mode="wrap")
    with pytest.raises(mimcast.ConfigError, match="variant must be one of"):
        mimcast.create_model("mim", in_channels=1, height=8, width=8, variant="tf")
    with pytest.raises(mimcast.ConfigError, match="mim_n applies to the 'mim' model only"):
        mimcast.create_model("predrnn", in_channels=1, height=8, width=8, mim_n=False)
    with pytest.raises(mimcast.ConfigError, match="cdna_kernels applies to the 'cdna' model only"):
        mimcast.create_model("dfn", in_channels=1, height=8, width=8, cdna_kernels=4)
    with pytest.raises(mimcast.ConfigError, match="dfn_filter_size must be odd"):
        mimcast.create_model("dfn", in_channels=1, height=8, width=8, dfn_filter_size=4)
    with pytest.raises(mimcast.ConfigError, match="'cdna' has no 'openstl' variant.*be paper"):
        mimcast.create_model("cdna", in_channels=1, height=8, width=8, variant="openstl")
    with pytest.raises(mimcast.ConfigError, match="unexpected keyword argument 'hiden'"):
        mimcast.create_model("mim", in_channels=1, height=8, width=8, hiden=(4, 4))
    with pytest.raises(mimcast.ConfigError, match="mim needs at least 2 layers"):
        mimcast.create_model("mim", in_channels=1, height=8, width=8, hidden=(4,))
    model = tiny("convlstm")
    with pytest.raises(
        mimcast.ConfigError, match=r"\(C, H, W\) = \(2, 8, 12\), got \(1, 5, 1, 8, 12\)"
    ):
        model(torch.rand(1, 5, 1, 8, 12), context_len=2)
    with pytest.raises(mimcast.ConfigError, match="context_len must be in"):
        model(torch.rand(1, 5, 2, 8, 12), context_len=5)
    with pytest.raises(mimcast.ConfigError, match="mask of shape"):
        model(torch.rand(1, 5, 2, 8, 12), context_len=2, mask=torch.ones(3, 3))
    with pytest.raises(mimcast.ConfigError, match="horizon must be a positive integer"):
        model.predict(torch.rand(1, 2, 2, 8, 12), horizon=0)


def test_register_model_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        mimcast.register_model("mim")(lambda cfg: None)


def test_config_round_trip_rebuilds_the_same_model() -> None:
    model = tiny("mim", hidden=(4, 6), layer_norm=True)
    cfg = mimcast.ModelConfig.from_dict(model.config.to_dict())
    rebuilt = mimcast.build_model(cfg)
    rebuilt.load_state_dict(model.state_dict())
    frames = torch.rand(1, 4, 2, 8, 12)
    torch.testing.assert_close(rebuilt(frames, 2), model(frames, 2), rtol=0, atol=0)
    with pytest.raises(mimcast.ConfigError, match="unknown config key model.depth"):
        mimcast.ModelConfig.from_dict({**model.config.to_dict(), "depth": 3})


@pytest.mark.parametrize("name", mimcast.list_models())
def test_fast_paths_compute_the_same_function(name: str, device) -> None:
    """Batched input convolutions and per-step activation checkpointing change no result."""
    model = tiny(name, layer_norm=True).double().to(device)
    frames = torch.rand(2, 7, 2, 8, 12, dtype=torch.float64, device=device)
    batched = model(frames, context_len=4)  # steps 0..3: input convs batched over time
    stepwise = model(frames, context_len=4, context_mask=torch.ones(1))  # one conv per step
    torch.testing.assert_close(batched, stepwise, rtol=1e-10, atol=1e-12)

    grads, losses = {}, {}
    for flag in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(flag)
        aux: dict = {}
        preds = model(frames, context_len=4, aux=aux)
        losses[flag] = {k: v.item() for k, v in aux.items()}
        (preds.square().sum() + sum(aux.values())).backward()
        grads[flag] = [p.grad.clone() for p in model.parameters()]
    assert losses[False] == pytest.approx(losses[True], rel=1e-12)
    for a, b in zip(grads[False], grads[True]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_the_compiled_training_step_computes_the_same_function() -> None:
    """train.compile: the inductor-compiled step gives eager's loss and gradients (float32,
    to rounding); evaluation stays eager."""
    torch.manual_seed(0)
    model = tiny("mim", hidden=(4, 4))
    frames = torch.rand(2, 5, 2, 8, 12)
    results = []
    for compiled in (False, True):
        model.set_compile(compiled).zero_grad()
        loss = model(frames, context_len=2).square().mean()
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # no compiled graph for evaluation
        model(frames, context_len=2)
    assert list(model._compiled) == ["step"]


@pytest.mark.parametrize("mode", ["replicate", "reflect", "zeros"])
def test_frames_of_any_size_are_padded_inside_and_cropped_back(mode: str) -> None:
    """59 x 61 frames with patch 4: the model pads them to 60 x 64 (pad_mode) and crops its
    predictions back. With true frames fed at every step it is the same model run on the
    padded frames; a fed-back prediction is padded again from its own pixels."""
    import torch.nn.functional as F

    odd = tiny("mim", in_channels=1, height=59, width=61, patch_size=4, pad_mode=mode).double()
    even = tiny("mim", in_channels=1, height=60, width=64, patch_size=4).double()
    even.load_state_dict(odd.state_dict())
    frames = torch.rand(2, 6, 1, 59, 61, dtype=torch.float64)
    torch_mode = "constant" if mode == "zeros" else mode
    padded = F.pad(frames.reshape(12, 1, 59, 61), (0, 3, 0, 1), mode=torch_mode)
    padded = padded.reshape(2, 6, 1, 60, 64)
    with torch.no_grad():
        a = odd(frames, context_len=2, mask=torch.ones(1))
        b = even(padded, context_len=2, mask=torch.ones(1))[..., :59, :61]
        future = odd.predict(frames[:, :2], horizon=5)
    assert a.shape == (2, 5, 1, 59, 61) and future.shape == (2, 5, 1, 59, 61)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert odd.config.grid == (15, 16)


@pytest.mark.parametrize("name", ["convlstm", "dfn", "cdna"])
def test_one_layer_is_a_model(name: str) -> None:
    """hidden with one entry: one ConvLSTM; a DFN whose only convolutions are the state's; a
    CDNA with one ConvLSTM at one level (MIM and PredRNN++ need two layers)."""
    model = tiny(name, hidden=(5,))
    preds = model(torch.rand(2, 4, 2, 8, 12), context_len=2)
    assert preds.shape == (2, 3, 2, 8, 12)
    preds.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
