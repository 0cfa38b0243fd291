"""The one time loop shared by every model: a recurrent stack rolled out over a sequence.

The stack (a RecurrentStack, see stack.py) computes one time step. The Forecaster around it
folds frames into patches once, feeds each step the true frame or its own previous prediction
(scheduled sampling; a stack that does not read its predictions, FRNN, gets nothing instead of
one), maps the top hidden state back to frame channels with the stack's head
(a 1x1 convolution unless the family has its own), adds the frame it read when the model is
`residual`, and unfolds the predictions once at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mimcast.errors import CheckpointError, ConfigError
from mimcast.models.config import ModelConfig
from mimcast.models.layers import PatchLayout
from mimcast.models.registry import build_stack
from mimcast.models.stack import AuxTerms
from mimcast.models.weights import check_weights_file, load_weights

# probe(t, layer, name, value): receives gate activations when passed to forward (Figure 7).
GateProbe = Callable[[int, int, str, Tensor], None]


class Forecaster(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="mimcast",
    tags=["mimcast", "video-prediction", "spatiotemporal-forecasting"],
    repo_url="https://github.com/mimcast/mimcast",
):
    """A recurrent stack plus the head, with scheduled sampling and free-running prediction.

    Built from its ModelConfig alone (the registry gives the stack). `data` is optional
    metadata about the data it was trained on (frame shape, value range, units: a DataSpec as
    a dict), kept with the weights by `save_pretrained` (huggingface_hub's layout: config.json
    and model.safetensors) and read back by `mimcast.from_pretrained`.
    """

    def __init__(self, model_config: ModelConfig | dict, data: dict | None = None) -> None:
        super().__init__()
        config = (
            model_config
            if isinstance(model_config, ModelConfig)
            else ModelConfig.from_dict(model_config)
        )
        self.config = config
        self.data = data
        self.patches = PatchLayout(config.patch_size, config.height, config.width, config.pad_mode)
        self.stack = build_stack(config)
        self.head = self.stack.build_head(config)
        if self.stack.given_channels and config.patch_size > 1:  # they trail the frame unfolded
            raise ConfigError(f"model {config.name!r} with given inputs needs model.patch_size 1")
        if config.residual:
            if not hasattr(self.head, "zero_output_"):
                raise ConfigError(f"model {config.name!r} has no residual form (model.residual)")
            self.head.zero_output_()
        self._grad_checkpointing = False
        self._batched_input_convs = True
        self._compile = False
        self._compiled: dict[str, Callable] = {}  # the compiled step, kept out of the modules

    def set_compile(self, enable: bool = True) -> Forecaster:
        """torch.compile the stack's step used in training (inductor: the gate arithmetic of
        each cell fused into a few kernels; on CUDA with CUDA graphs, mode "reduce-overhead").
        The first call compiles (about a minute on a 2-core CPU); inductor's on-disk caches
        make later runs on the same machine start in seconds. Evaluation stays eager."""
        self._compile = bool(enable)
        self._compiled.clear()
        return self

    def _step_fn(self, device: torch.device) -> Callable:
        if not (self._compile and torch.is_grad_enabled()) or self._grad_checkpointing:
            return self.stack
        if "step" not in self._compiled:
            mode = "reduce-overhead" if device.type == "cuda" else None
            self._compiled["step"] = torch.compile(self.stack, mode=mode, dynamic=False)
        return self._compiled["step"]

    # ---------------------------------------------------------------- the Hub's layout
    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        map_location: str = "cpu",
        **model_kwargs: Any,
    ) -> Forecaster:
        """huggingface_hub's loading step, made strict: only model.safetensors (never a
        pickle), and every tensor must fit by name and shape, checked on the file's header
        against the model built on the meta device before the real one is (a config edited to
        a huge model is refused at once), and hold finite values (one-line CheckpointError)."""
        from huggingface_hub import constants, hf_hub_download
        from safetensors.torch import load_file

        name = constants.SAFETENSORS_SINGLE_FILE
        if Path(model_id).is_dir():
            path = Path(model_id) / name
        else:
            path = Path(hf_hub_download(
                model_id, name, revision=revision, cache_dir=cache_dir,
                force_download=force_download, local_files_only=local_files_only, token=token,
            ))  # fmt: skip
        with torch.device("meta"):  # shapes only, no memory
            check_weights_file(path, cls(**model_kwargs))
        try:
            state = load_file(str(path), device=map_location)
        except Exception as e:  # noqa: BLE001 - safetensors raises several kinds on bad files
            raise CheckpointError(f"cannot read {path}: {e}") from e
        model = cls(**model_kwargs)
        load_weights(model, state, str(path))
        return model.eval()

    def generate_model_card(self, *args: Any, **kwargs: Any):
        """The Hub's model card; `text=` (model_card_kwargs) replaces its body."""
        card = super().generate_model_card(
            *args, **{k: v for k, v in kwargs.items() if k != "text"}
        )
        if "text" in kwargs:
            card.text = kwargs["text"]
        return card

    def set_grad_checkpointing(self, enable: bool = True) -> Forecaster:
        """Recompute each time step's activations in backward instead of storing them: memory
        grows with layers instead of sequence length x layers, for about 1/3 more compute."""
        self._grad_checkpointing = bool(enable)
        return self

    def set_batched_input_convs(self, enable: bool = True) -> Forecaster:
        """Run the first layer's input convolution once for all steps fed known frames (on by
        default; off gives the plain one-convolution-per-step path the tests compare with)."""
        self._batched_input_convs = bool(enable)
        return self

    @property
    def forecast_channels(self) -> int:
        """Channels of a frame the model forecasts: all but the given inputs (data, which the
        loss, validation and metrics never score)."""
        return self.config.in_channels - self.stack.given_channels

    def check_given_inputs(self, given: tuple, where: str) -> None:
        """ConfigError unless the frames of `where`, which carry the given inputs `given`
        ((name, channels) groups, a data set's `given_inputs`), are what this model reads."""
        theirs = tuple((str(n), int(c)) for n, c in given)
        mine = tuple(self.stack.given_inputs)
        if theirs != mine:

            def say(groups: tuple) -> str:
                return ", ".join(f"{n} ({c} channels)" for n, c in groups) or "none"

            raise ConfigError(
                f"{where} gives the known inputs {say(theirs)} in each frame, model "
                f"{self.config.name!r} reads {say(mine)}: its settings and the data's options "
                "must agree"
            )

    @staticmethod
    def forecast_part(preds: Tensor, context_len: int) -> Tensor:
        """forward() predicts frames 1..T-1; the forecast proper is frames context_len..T-1."""
        return preds[:, context_len - 1 :]

    def forward(
        self,
        frames: Tensor,
        context_len: int,
        mask: Tensor | None = None,
        context_mask: Tensor | None = None,
        probe: GateProbe | None = None,
        aux: dict[str, Tensor] | None = None,
    ) -> Tensor:
        """Next-frame predictions for frames 1..T-1: (B, T, C, H, W) -> (B, T-1, C, H, W).

        Steps t < context_len are fed the true frame t. A later step t is fed
        mask[:, t - context_len] * frame_t + (1 - mask[...]) * prediction_t, or the prediction
        alone when `mask` is None (no ground truth is used after the context).
        `mask` broadcasts to (B, T - context_len - 1, C, H, W), full-frame layout, 1 = true frame.
        `context_mask` (reverse scheduled sampling) broadcasts to (B, context_len - 1, C, H, W)
        and mixes steps 1..context_len-1 the same way; by default they get the true frame.
        `aux`: a dict the model's auxiliary losses are put in (scalars with gradient, e.g.
        aux["decoupling_loss"] for PredRNN-V2); models without any leave it empty. The loss
        stays out of the outputs: the caller weighs and adds it.
        A stack that does not read its own predictions (`reads_predictions`, FRNN) gets x=None
        where a step is fed the prediction; its masks must be 0 or 1, the same over each frame:
        1 = the step reads the true frame, 0 = it reads none.
        """
        _, t_total = self._check_frames(frames, "frames")
        if not 1 <= context_len <= t_total - 1:
            raise ConfigError(
                f"context_len must be in [1, T-1] = [1, {t_total - 1}], got {context_len}"
            )
        x = _compute_dtype(self.patches.fold(frames))  # (B, T, p*p*C, H/p, W/p)
        future = self._fold_mask(mask, what="mask", steps=t_total - context_len - 1, like=x)
        past = self._fold_mask(context_mask, what="context_mask", steps=context_len - 1, like=x)
        future_read, past_read = self._reads(future, "mask"), self._reads(past, "context_mask")

        def feed(t: int, x_gen: Tensor) -> Tensor:
            if t < context_len:
                w = None if past is None else past[:, t - 1]
            else:
                if future is None:
                    return x_gen
                w = future[:, t - context_len]
            return x[:, t] if w is None else w * x[:, t] + (1 - w) * x_gen

        def reads_true(t: int) -> bool | Tensor:
            if t < context_len:
                return True if past_read is None else past_read[t - 1]
            return False if future_read is None else future_read[t - context_len]

        known = context_len if past is None else 1  # leading steps fed exactly x[:, t]
        terms = AuxTerms() if aux is not None else None
        preds = self._roll(x, n_steps=t_total - 1, feed=feed, reads_true=reads_true,
                           probe=probe, known=known, aux=terms)  # fmt: skip
        if terms is not None:
            aux.update(terms.means())
        return self.patches.unfold(preds)

    @torch.inference_mode()
    def predict(self, context: Tensor, horizon: int) -> Tensor:
        """Forecast from context frames alone: (B, Tc, C, H, W) -> (B, horizon, C, H, W)."""
        return self.forecast(context, horizon)

    def forecast(self, context: Tensor, horizon: int) -> Tensor:
        """`predict` without inference mode (for export and for gradients through forecasts)."""
        _, t_ctx = self._check_frames(context, "context")
        if not isinstance(horizon, int) or horizon < 1:
            raise ConfigError(f"horizon must be a positive integer, got {horizon!r}")
        if self.stack.given_channels:
            raise ConfigError(
                f"model {self.config.name!r} reads {self.stack.given_channels} given channels "
                "per frame (inputs known ahead, such as ST-ResNet's period, trend and external "
                "factors) that a context alone lacks: forecast with model(frames, context_len), "
                "whose frames after the context carry them"
            )
        x = _compute_dtype(self.patches.fold(context))

        def feed(t: int, x_gen: Tensor) -> Tensor:
            return x[:, t] if t < t_ctx else x_gen

        preds = self._roll(x, n_steps=t_ctx + horizon - 1, feed=feed,
                           reads_true=lambda t: t < t_ctx, probe=None, known=t_ctx)  # fmt: skip
        return self.patches.unfold(preds[:, t_ctx - 1 :])

    def _roll(
        self,
        x: Tensor,
        *,
        n_steps: int,
        feed: Callable[[int, Tensor], Tensor],
        reads_true: Callable[[int], bool | Tensor],
        probe: GateProbe | None,
        known: int,
        aux: AuxTerms | None = None,
    ) -> Tensor:
        """Run the stack for n_steps; x is the folded input (B, T, C', h, w).

        The first `known` steps read x[:, t] itself, so the first layer's input convolution of
        those steps runs once, batched over time, instead of once per step. `reads_true(t)`:
        whether step t's input is the true frame (True, False, or per sample), asked only
        for a stack that does not read its own predictions. The given channels of each
        prediction (stack.given_inputs) are those of the next frame of x: data, never
        forecasts, whether that frame is then fed true or predicted.
        """
        batch = known > 1 and self._batched_input_convs
        given = self.stack.given_channels
        step_fn = self._step_fn(x.device)
        # unbind, not gates[t]: the backward of indexing would fill a zero tensor of the full
        # (k, B, G, h, w) size for every step (measured: 10% of a 4x32 training step)
        gates = self._input_gates(x[:, :known]).unbind(0) if batch else None
        state = None
        net = x[:, 0]
        preds = []
        for t in range(n_steps):
            if t > 0:
                net = feed(t, self.patches.refold(preds[-1]))
            x_gates = gates[t] if gates is not None and t < known else None
            layer_probe = None if probe is None else _bind_time(probe, t)
            true = True if self.stack.reads_predictions or t == 0 else reads_true(t)
            args = (state, layer_probe, x_gates, aux)
            if true is True:
                h, state = self._step(step_fn, net, *args)
            elif true is False:  # the prediction: a stack that does not read it sees nothing
                h, state = self._step(step_fn, None, *args)
            else:  # per sample: both steps, each sample's own kept (probes, aux see both)
                read, unread = self._step(step_fn, net, *args), self._step(step_fn, None, *args)
                h, state = _per_sample(true, read, unread)
            pred = self._next_frame(h, net)
            if given:
                pred = torch.cat([pred, x[:, t + 1, -given:]], dim=1)
            preds.append(pred)
        return torch.stack(preds, dim=1)

    def _step(self, step_fn: Callable, net: Tensor | None, *args: Any) -> tuple[Tensor, Any]:
        """One step of the stack: args are (state, probe, x_gates, aux)."""
        if self._grad_checkpointing and torch.is_grad_enabled():
            # (the recomputation in backward adds aux terms again, to an AuxTerms whose
            # means were taken already: they are dropped with the graph)
            return checkpoint(self.stack, net, *args, use_reentrant=False)
        return step_fn(net, *args)

    def _reads(self, mask: Tensor | None, what: str) -> list[bool | Tensor] | None:
        """For a stack that does not read its own predictions, per step of a folded mask:
        True (every sample reads the true frame), False (none does), or the (B,) samples that
        do. One transfer to the host per rollout; None for any other stack or no mask."""
        if mask is None or self.stack.reads_predictions:
            return None
        w = self.patches.unfold(mask).flatten(2)  # (B, steps, C*H*W), the padding cropped
        if not (((w == 0) | (w == 1)).all() and (w == w[..., :1]).all()):
            raise ConfigError(
                f"{what} must be 0 or 1 per sample and step, the same over the frame, for "
                f"model {self.config.name!r}: it does not read its own predictions, so a step "
                "reads the true frame or nothing"
            )
        true = w[..., 0] == 1  # (B, steps)
        every, none = true.all(0).tolist(), (~true).all(0).tolist()
        return [
            True if e else False if n else true[:, s] for s, (e, n) in enumerate(zip(every, none))
        ]

    def _next_frame(self, h: Tensor, x_in: Tensor) -> Tensor:
        """The prediction of the frame after x_in (folded) from the top hidden state h."""
        out = self.head(h, x_in)
        return x_in + out if self.config.residual else out

    def _input_gates(self, x: Tensor) -> Tensor:
        """conv_x of the first layer over (B, k, C', h, w) at once -> (k, B, G, h, w)."""
        conv = self.stack.input_conv
        b, k = x.shape[:2]
        flat = x.transpose(0, 1).reshape(k * b, *x.shape[2:])  # time-major: (k*B, C', h, w)
        # a model made channels_last gets its batched input in that layout too
        weight = next((p for p in conv.parameters() if p.ndim == 4), None)
        if weight is not None and weight.is_contiguous(memory_format=torch.channels_last):
            flat = flat.contiguous(memory_format=torch.channels_last)
        out = conv(flat)
        return out.reshape(k, b, *out.shape[1:])

    def _check_frames(self, frames: Tensor, what: str) -> tuple[int, int]:
        cfg = self.config
        want = (cfg.in_channels, cfg.height, cfg.width)
        if not isinstance(frames, Tensor) or frames.ndim != 5 or tuple(frames.shape[2:]) != want:
            shape = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
            raise ConfigError(
                f"{what} must be (B, T, C, H, W) with (C, H, W) = {want}, got {shape}"
            )
        if frames.shape[1] < (2 if what == "frames" else 1):
            raise ConfigError(f"{what} has {frames.shape[1]} frames, too few")
        return frames.shape[0], frames.shape[1]

    def _fold_mask(
        self, mask: Tensor | None, *, what: str, steps: int, like: Tensor
    ) -> Tensor | None:
        b = like.shape[0]
        if mask is None or steps <= 0:
            return None
        mask = torch.as_tensor(mask).to(device=like.device, dtype=like.dtype)
        cfg = self.config
        full = (b, steps, cfg.in_channels, cfg.height, cfg.width)
        try:
            mask = torch.broadcast_to(mask, full)
        except RuntimeError as e:
            raise ConfigError(
                f"{what} of shape {tuple(mask.shape)} does not broadcast to {full}"
            ) from e
        return self.patches.fold(mask)


def _compute_dtype(x: Tensor) -> Tensor:
    """Under autocast, the input in the compute dtype (bf16): the recurrent states start in it
    and stay in it, so no step casts its states again before each convolution (a layer norm,
    which autocast runs in float32, returns float32 states: then they stay float32)."""
    device = x.device.type
    if torch.is_autocast_enabled(device) and x.is_floating_point():
        return x.to(torch.get_autocast_dtype(device))
    return x


def _per_sample(true: Tensor, read: Any, unread: Any) -> Any:
    """Two step results (tensors, or tuples of them), each sample's from `read` where
    true[b] and from `unread` elsewhere."""
    if isinstance(read, Tensor):
        return torch.where(true.view(-1, *[1] * (read.ndim - 1)), read, unread)
    picked = [_per_sample(true, a, b) for a, b in zip(read, unread)]
    return type(read)(*picked) if hasattr(read, "_fields") else type(read)(picked)


def _bind_time(probe: GateProbe, t: int) -> Callable[[int, str, Tensor], None]:
    return lambda layer, name, value: probe(t, layer, name, value)
