"""FRNN: the folded bGRU stack against the reference's algorithm written out as a loop, the
predictions not re-encoded, causality, what a scheduled-sampling mask means for a stack that
does not read its predictions, and the other models' rollout unchanged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mimcast
from mimcast.models.layers import PatchLayout

# network/topology/folded.py's list for hidden=(4, 5, 6): two convolutions, then a pooling
# before every pair of bGRU layers (the reference's model_frnn.py, shortened)
TOPOLOGY = ("conv", "conv", "pool", "bgru", "bgru", "pool", "bgru")


def gru(a, c, cell):
    """bconvgru.py's `forward` (a: the input, c: the state) or `backward` (a: what comes from
    above, c: the input state): gates g1, g2 on [a, c], g3 on [a, g1 c]."""
    w1, w2 = cell.gates.conv.weight.chunk(2)
    b1, b2 = cell.gates.conv.bias.chunk(2)
    pad = w1.shape[-1] // 2
    g1 = torch.sigmoid(F.conv2d(torch.cat([a, c], 1), w1, b1, padding=pad))
    g2 = torch.sigmoid(F.conv2d(torch.cat([a, c], 1), w2, b2, padding=pad))
    w3, b3 = cell.candidate.conv.weight, cell.candidate.conv.bias
    g3 = torch.tanh(F.conv2d(torch.cat([a, g1 * c], 1), w3, b3, padding=pad))
    return g2 * g3 + (1 - g2) * c


def max_pool(x):  # pooling.py's _forward on even sides
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).amax(dim=(3, 5))


def replicate(y):  # pooling.py's _backward: each value into a 2x2 block
    return y.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def conv_back(y, conv, bias):
    """convolutional.py's `backward`: the kernel transposed and flipped, its own bias, tanh."""
    w = conv.weight.transpose(0, 1).flip(2, 3)
    return torch.tanh(F.conv2d(y, w, bias, padding=w.shape[-1] // 2))


class Reference:
    """The reference's shared states and their two passes, op by op along TOPOLOGY."""

    def __init__(self, model, batch: int, size: int) -> None:
        stack = model.stack
        self.convs = list(zip(stack.frame.convs, stack.frame.back_bias))
        self.bgrus = list(stack.layers)
        self.h, self.inputs, side = [], [None] * len(self.bgrus), size
        for op in TOPOLOGY:  # the learned initial states (_state_init), tiled
            side = side // 2 if op == "pool" else side
            if op == "bgru":
                h0 = self.bgrus[len(self.h)].h0
                self.h.append(h0.view(1, -1, 1, 1).expand(batch, -1, side, side))

    def forward(self, x):  # TopologyFolded.forward: the encoder, every layer
        convs, l = iter(self.convs), 0
        for op in TOPOLOGY:
            if op == "conv":
                conv, _ = next(convs)
                x = torch.tanh(conv(x))
            elif op == "pool":
                x = max_pool(x)
            else:
                self.inputs[l] = x
                self.h[l] = x = gru(x, self.h[l], self.bgrus[l].encode)
                l += 1

    def backward(self):  # TopologyFolded.backward from the top state: the decoder
        convs, l, y = iter(self.convs[::-1]), len(self.bgrus), self.h[-1]
        for op in TOPOLOGY[::-1]:
            if op == "conv":
                y = conv_back(y, *next(convs))
            elif op == "pool":
                y = replicate(y)
            else:
                l -= 1
                self.inputs[l] = y = gru(y, self.inputs[l], self.bgrus[l].decode)
        return y

    def update_state(self):  # the top layer's forward on its (decoded) input
        self.h[-1] = gru(self.inputs[-1], self.h[-1], self.bgrus[-1].encode)


def reference_rollout(model, frames, context: int, horizon: int):
    """network/folded.py: _cycle_feed over the context, then per frame _cycle_predict (the
    decoder, then update_state). Also the prediction after each context frame, decoded from
    a copy of the states and thrown away (the reference makes none; mimcast does)."""
    ref = Reference(model, frames.shape[0], frames.shape[-1])
    early = []
    for t in range(context - 1):
        ref.forward(frames[:, t])
        kept = list(ref.inputs)
        early.append(ref.backward())
        ref.inputs = kept
    ref.forward(frames[:, context - 1])
    future = []
    for _ in range(horizon):
        future.append(ref.backward())
        ref.update_state()
    return torch.stack(early, 1), torch.stack(future, 1)


def random_frnn(**kwargs) -> mimcast.Forecaster:
    base = dict(in_channels=1, height=16, width=16, hidden=(4, 5, 6), filter_size=3)
    model = mimcast.create_model("frnn", **{**base, **kwargs}).double()
    with torch.no_grad():  # the initial states and the back biases start at 0: not here
        for name, p in model.named_parameters():
            if name.endswith("h0") or ".back_bias." in name:
                p.uniform_(-0.5, 0.5)
    return model


def test_the_folded_stack_is_the_references_algorithm() -> None:
    torch.manual_seed(0)
    model = random_frnn()
    frames = torch.rand(2, 7, 1, 16, 16, dtype=torch.float64)
    early, future = reference_rollout(model, frames, context=3, horizon=4)
    assert future.std() > 0.05 and (future[:, 1:] - future[:, :-1]).abs().max() > 1e-3
    with torch.no_grad():
        preds = model(frames, context_len=3)  # frames after the context are never read
        forecast = model.predict(frames[:, :3], horizon=4)
    torch.testing.assert_close(preds[:, 2:], future, rtol=0, atol=1e-9)
    torch.testing.assert_close(preds[:, :2], early, rtol=0, atol=1e-9)
    torch.testing.assert_close(forecast, future, rtol=0, atol=1e-9)


def test_predictions_are_not_re_encoded(monkeypatch) -> None:
    """Whatever the rollout would feed back (noise here), FRNN's forecast is the same, and
    its encoder runs on the context frames only; ConvLSTM's forecast changes."""
    torch.manual_seed(1)
    frnn = random_frnn().float()
    convlstm = mimcast.create_model("convlstm", in_channels=1, height=16, width=16, hidden=(4,))
    context = torch.rand(2, 3, 1, 16, 16)
    before = {m: m.predict(context, horizon=4) for m in (frnn, convlstm)}
    encodes = []
    frnn.stack.layers[0].encode.register_forward_hook(lambda *_: encodes.append(1))
    noise = torch.Generator().manual_seed(0)
    monkeypatch.setattr(PatchLayout, "refold", lambda self, y: torch.rand(y.shape, generator=noise))
    torch.testing.assert_close(frnn.predict(context, horizon=4), before[frnn], rtol=0, atol=0)
    assert len(encodes) == 3
    assert (convlstm.predict(context, horizon=4) - before[convlstm]).abs().max() > 1e-4


def test_causality() -> None:
    """A prediction depends on no frame after the one its step read."""
    torch.manual_seed(2)
    model = random_frnn()
    frames = torch.rand(2, 7, 1, 16, 16, dtype=torch.float64)
    changed = frames.clone()
    changed[:, 4] = torch.rand_like(changed[:, 4])
    with torch.no_grad():
        forced, forced_changed = (model(f, context_len=6) for f in (frames, changed))
        free, free_changed = (model(f, context_len=3) for f in (frames, changed))
    assert torch.equal(forced[:, :4], forced_changed[:, :4])  # steps 0..3 read frames 0..3
    assert (forced[:, 4] - forced_changed[:, 4]).abs().max() > 1e-6
    assert torch.equal(free, free_changed)  # after the context nothing is read


def test_a_mask_chooses_per_sample_whether_a_step_encodes_the_true_frame() -> None:
    """Mixed per sample in one batch = each sample on its own; all 1 = teacher forcing (a
    longer context), all 0 = no mask; a context mask of 0 = a context of one frame."""
    torch.manual_seed(3)
    model = random_frnn()
    frames = torch.rand(2, 7, 1, 16, 16, dtype=torch.float64)
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]).view(2, 3, 1, 1, 1)
    context_mask = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).view(2, 2, 1, 1, 1)
    with torch.no_grad():
        mixed = model(frames, 3, mask, context_mask)
        alone = [
            model(frames[b : b + 1], 3, mask[b : b + 1], context_mask[b : b + 1]) for b in (0, 1)
        ]
        torch.testing.assert_close(mixed, torch.cat(alone), rtol=1e-12, atol=1e-12)
        assert (mixed - model(frames, 3)).abs().max() > 1e-4
        teacher = model(frames, 3, torch.ones(1))
        torch.testing.assert_close(teacher, model(frames, 6), rtol=0, atol=0)
        torch.testing.assert_close(
            model(frames, 3, torch.zeros(1)), model(frames, 3), rtol=0, atol=0
        )
        zero_context = model(frames, 3, None, torch.zeros(1))
        torch.testing.assert_close(zero_context, model(frames, 1), rtol=0, atol=0)


@pytest.mark.parametrize(
    "bad", [torch.full((1,), 0.5), (torch.rand(2, 3, 1, 16, 16) > 0.5).float()]
)
def test_a_mask_that_mixes_frames_is_refused(bad) -> None:
    model = random_frnn()
    frames = torch.rand(2, 7, 1, 16, 16, dtype=torch.float64)
    for kwargs in ({"mask": bad}, {"context_mask": bad[:, :2] if bad.ndim > 1 else bad}):
        with pytest.raises(
            mimcast.ConfigError,
            match="must be 0 or 1 per sample and step, the same over the frame, for model 'frnn'",
        ):
            model(frames, 3, **kwargs)


def test_other_models_roll_out_as_before() -> None:
    """The rollout of a stack that reads its predictions, written out: every step fed the
    mix of mask and prediction, the head on what it read (bit for bit)."""
    torch.manual_seed(4)
    for name in ("convlstm", "mim"):
        model = mimcast.create_model(name, in_channels=1, height=8, width=8, hidden=(4, 4),
                                     filter_size=3).set_batched_input_convs(False)  # fmt: skip
        frames = torch.rand(2, 6, 1, 8, 8)
        mask = torch.rand(2, 2, 1, 8, 8)  # fractions and pixels: fine for these
        context_mask = torch.rand(2, 2, 1, 1, 1)
        with torch.no_grad():
            got = model(frames, 3, mask, context_mask)
            state, net, preds = None, frames[:, 0], []
            for t in range(5):
                if t > 0:
                    w = context_mask[:, t - 1] if t < 3 else mask[:, t - 3]
                    net = w * frames[:, t] + (1 - w) * preds[-1]
                h, state = model.stack(net, state)
                preds.append(model.head(h, net))
        torch.testing.assert_close(got, torch.stack(preds, 1), rtol=0, atol=0)


def test_levels_probes_and_refusals() -> None:
    """hidden=(4, 5, 6, 7, 8) on a 16 x 16 grid: levels of 8, 8, 4, 4, 2; the probes see every
    encoder when a frame is read and only the top one when not; no residual form."""
    model = random_frnn(hidden=(4, 5, 6, 7, 8))
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    seen: list = []
    frame, state = model.stack(x, None, lambda layer, name, value: seen.append(layer))
    assert frame.shape == (2, 1, 16, 16) and frame.abs().max() < 1
    assert [tuple(h.shape[1:]) for h in state.h] == [(4, 8, 8), (5, 8, 8), (6, 4, 4), (7, 4, 4),
                                                     (8, 2, 2)]  # fmt: skip
    assert [s.shape[1] for s in state.s] == [64, 4, 5, 6, 7]
    assert seen == [0, 1, 2, 3, 4, 9, 8, 7, 6, 5]
    seen.clear()
    model.stack(None, state, lambda layer, name, value: seen.append(layer))
    assert seen == [4, 9, 8, 7, 6, 5]
    with pytest.raises(mimcast.ConfigError, match="model 'frnn' has no residual form"):
        mimcast.create_model("frnn", in_channels=1, height=8, width=8, residual=True)
    with pytest.raises(mimcast.ConfigError, match="has no 'openstl' variant"):
        mimcast.create_model("frnn", in_channels=1, height=8, width=8, variant="openstl")


def test_the_forecast_runs_under_the_flop_counter_of_mimcast_bench() -> None:
    """torch's FLOP counter hooks every module's inputs: in inference mode a view of the
    learned initial state would claim a gradient without a graph and break it."""
    from torch.utils.flop_counter import FlopCounterMode

    model = mimcast.create_model("frnn", in_channels=1, height=8, width=8, hidden=(4, 4))
    counter = FlopCounterMode(display=False)
    with counter:
        model.predict(torch.rand(2, 3, 1, 8, 8), horizon=2)
    assert counter.get_total_flops() > 0
