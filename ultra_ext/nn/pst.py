"""PST / P²HCT: the Pyramid Sparse Transformer (arXiv 2505.12772), coarse-to-fine cross-level attention.

A PST layer fuses a fine map ``x`` (stride s) with the coarser map ``upper`` (stride 2s) below it in the pyramid:

* **coarse stage** — queries from ``x``, keys/values from ``upper`` (``M = N/4`` tokens): dense attention;
* **fine stage** (optional, ``topk > 0``) — the ``topk`` coarse tokens with the highest mean score over all
  queries are mapped to the 2×2 fine tokens under them; every query attends to those ``4·topk`` tokens, with
  keys/values from the **same** ``kv`` projection applied to ``x``; a learned gate mixes the two outputs;
* a 7×7 depthwise position encoding of the coarse values, bilinearly resized to the fine grid.

Attention runs through the ultra_ext backends (SDPA by default; export uses the math path).

**The fine stage is an explicit switch.** ``topk`` (default 8) applies in eval mode, ``train_topk`` (default 0:
coarse-only, as published) in training. Both can be set in the YAML row and on a loaded model with
:func:`set_pst_options`.

**Deliberate fixes of the published code** (see ``docs/pst.md``):

1. Top-k selection is deterministic (plain ``topk`` of the mean scores) in eval and export; Gumbel noise is an
   opt-in training option (``gumbel=True``).
2. The gate never trains when training is coarse-only. ``train_topk > 0`` trains it; a float buffer
   ``gate_trained`` records that it did (a float, because Ultralytics' EMA copies only floating-point state).
   Gate policy ``"auto"`` (default) uses the learned gate once trained and a fixed 0.5 blend otherwise: a random,
   never-trained gate is ≈ 0.5 ± noise, so 0.5 is its deterministic equivalent. ``"learned"`` always uses the
   stored gate (reproduces published numbers from converted weights), ``"fixed"`` always 0.5.
3. ``topk`` larger than the coarse token count is an error naming the layer (the published code silently ran
   coarse-only), and so is a coarse map that is not exactly half the fine map.
4. Every scale builds (the published parser crashes at L/X).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.nn.modules.conv import Conv

from .attention import (
    HEAD_DIM,
    attend,
    channels_to_tokens,
    check_backend_arg,
    check_hidden_width,
    init_conv_weights,
    resolve_backend,
    tokens_to_map,
)
from .checks import EXPANSION, NON_NEGATIVE, POSITIVE, check_int, check_real, mlp_hidden_width
from .shapes import checking_sizes, layer_name, require_ratio

__all__ = ["GATE_MODES", "PST", "PyramidSparseAttention", "PyramidSparseBlock", "set_pst_options"]

GATE_MODES = ("auto", "learned", "fixed")


def _check_topk(module: nn.Module, topk: int, upper: torch.Tensor, name: str = "topk") -> None:
    """``name`` is the switch in charge of ``topk``: ``"topk"`` (eval) or ``"train_topk"`` (training mode)."""
    m = upper.shape[-2] * upper.shape[-1]
    if checking_sizes() and topk > m:
        raise ValueError(
            f"{layer_name(module)}: {name}={topk} exceeds the {m} coarse tokens of the {upper.shape[-2]}×"
            f"{upper.shape[-1]} coarse map; lower {name} (set_pst_options) or use a larger input"
        )


class PyramidSparseAttention(nn.Module):
    """PST attention (published ``PSAttn``): coarse cross-attention plus an optional gated top-k fine stage.

    Args:
        dim: channels ``C`` of both inputs (a multiple of 32; ``heads = C // 32``).
        topk: coarse tokens refined in eval mode (0 = coarse only). train_topk: the same in training mode.
        gate: ``"auto"``, ``"learned"`` or ``"fixed"`` (see the module docstring). gumbel: Gumbel-perturbed
            selection in training. backend: ``"sdpa"``, ``"math"``, ``"flash"`` or ``None`` (process setting).

    Shapes: ``x (B, C, H, W)``, ``upper (B, C, H/2, W/2)`` → ``(B, C, H, W)``.

    Attributes:
        q (Conv): 1×1 + BN, queries from ``x``. kv (Conv): 1×1 + BN to ``2C``, per-head interleaved
            ``[k_j | v_j]``; applied to ``upper`` (coarse) and to ``x`` (fine). proj (Conv): 1×1 + BN.
        pe (Conv): 7×7 depthwise + BN on the coarse values. gate_conv1d (nn.Conv1d): ``2d → d`` over ``[coarse | fine]``
            outputs per head and token. gate_trained (buffer): > 0 once a training step ran the fine stage.

    Example:
        >>> m = PyramidSparseAttention(64, topk=4).eval()
        >>> m(torch.randn(1, 64, 8, 8), torch.randn(1, 64, 4, 4)).shape
        torch.Size([1, 64, 8, 8])
    """

    def __init__(
        self,
        dim: int,
        topk: int = 8,
        train_topk: int = 0,
        gate: str = "auto",
        gumbel: bool = False,
        backend: str | None = None,
    ):
        super().__init__()
        if check_int(type(self).__name__, "dim", dim) % HEAD_DIM:
            raise ValueError(f"PST attention width dim={dim} is not a positive multiple of the head width {HEAD_DIM}")
        self.heads = dim // HEAD_DIM
        self.q = Conv(dim, dim, 1, act=False)
        self.kv = Conv(dim, 2 * dim, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 7, 1, 3, g=dim, act=False)
        self.gate_conv1d = nn.Conv1d(2 * HEAD_DIM, HEAD_DIM, 1)  # published name
        self.register_buffer("gate_trained", torch.zeros(()))
        switches = dict(topk=topk, train_topk=train_topk, gate=gate, gumbel=gumbel)
        for name, value in switches.items():  # configure() reads None as "unchanged"; a new module has no value yet
            if value is None:
                raise TypeError(f"{name} must be given, got {name}=None")
        self.configure(**switches)
        self.attn_backend = check_backend_arg(backend)
        self.last_backend = None

    def configure(self, topk=None, train_topk=None, gate=None, gumbel=None) -> None:
        """Change the fine-stage switches (``None`` leaves one as it is)."""
        for name, value in (("topk", topk), ("train_topk", train_topk)):
            if value is not None:
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{name} must be an int >= 0, got {value!r}")
                setattr(self, name, value)
        if gate is not None:
            if gate not in GATE_MODES:
                raise ValueError(f"gate must be one of {GATE_MODES}, got {gate!r}")
            self.gate_mode = gate
        if gumbel is not None:
            if not isinstance(gumbel, bool):
                raise TypeError(f"gumbel must be a bool, got {gumbel!r}")
            self.gumbel = gumbel

    @property
    def unsupported_export_formats(self) -> frozenset:
        """ncnn has no TopK layer, so the fine stage (eval ``topk > 0``) cannot convert; coarse-only PST converts
        and matches (measured with pnnx 20260526, ncnn 1.0.20261020). Read by the export check."""
        return frozenset({"ncnn"}) if self.topk else frozenset()

    def active_topk(self) -> int:
        return self.train_topk if self.training else self.topk

    def forward(self, x: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        hc, wc = upper.shape[-2:]
        require_ratio(self, "the fine map", x, upper, 2)
        backend = resolve_backend(self.attn_backend, x)
        q = channels_to_tokens(self.q(x).reshape(b, self.heads, HEAD_DIM, h * w), backend)  # (B, N, h, d)
        kv = self.kv(upper).reshape(b, self.heads, 2 * HEAD_DIM, hc * wc)  # per-head [k | v] channel blocks
        k, v = channels_to_tokens(kv, backend).split(HEAD_DIM, dim=-1)  # (B, M, h, d) each
        out, self.last_backend = attend(q, k, v, backend)  # coarse stage, (B, N, h, d)
        topk = self.active_topk()
        if topk:
            _check_topk(self, topk, upper, "train_topk" if self.training else "topk")
            out = self._fine_stage(x, q, k, out, topk, backend)
        v_map = kv[:, :, HEAD_DIM:].reshape(b, c, hc, wc)  # coarse values as a map, channel = head·d + j
        pe = F.interpolate(self.pe(v_map), size=(h, w), mode="bilinear", align_corners=False)
        return self.proj(tokens_to_map(out, h, w) + pe)

    def select(self, q: torch.Tensor, k: torch.Tensor, topk: int) -> torch.Tensor:
        """Indices ``(B, h, topk)`` of the coarse tokens with the highest mean score over all queries.

        ``mean_n(q_n · k_m) = (mean_n q_n) · k_m``: the saliency needs no ``(N, M)`` score matrix. Softmax is
        monotonic, so the top-k of the scores is the top-k of their softmax (what the published code ranks).
        """
        saliency = torch.einsum("bhd,bmhd->bhm", q.mean(1), k) * HEAD_DIM**-0.5  # (B, h, M)
        if self.training and self.gumbel:
            u = torch.rand_like(saliency).clamp_(1e-9, 1.0 - 1e-9)
            saliency = saliency - torch.log(-torch.log(u))  # Gumbel(0, 1) noise
        return saliency.topk(topk, dim=-1).indices

    def _fine_stage(self, x, q, k, coarse_out, topk: int, backend: str) -> torch.Tensor:
        b, n, heads, d = q.shape
        w = x.shape[-1]
        wc = w // 2
        idx = self.select(q, k, topk)  # (B, h, k) coarse ids r·Wc + c
        r, c = idx // wc, idx % wc
        fine = torch.stack([(2 * r + dr) * w + 2 * c + dc for dr in (0, 1) for dc in (0, 1)], -1).flatten(2)
        kv_fine = self.kv(x).reshape(b, heads, 2 * d, n).transpose(2, 3)  # (B, h, N, 2d)
        picked = kv_fine.gather(2, fine.unsqueeze(-1).expand(-1, -1, -1, 2 * d))  # (B, h, 4k, 2d)
        k_f, v_f = picked.transpose(1, 2).split(d, dim=-1)  # (B, 4k, h, d) each
        fine_out, _ = attend(q, k_f, v_f, backend)  # (B, N, h, d)
        g = self._gate(coarse_out, fine_out)
        if self.training and torch.is_grad_enabled():
            self.gate_trained.fill_(1.0)
        return g * fine_out + (1 - g) * coarse_out

    def _gate(self, coarse_out: torch.Tensor, fine_out: torch.Tensor):
        with warnings.catch_warnings():  # the gate policy is model state: freezing it in an export is right
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            trained = bool(self.gate_trained > 0)
        if self.gate_mode == "fixed" or (self.gate_mode == "auto" and not trained and not self.training):
            return 0.5
        z = torch.cat((coarse_out, fine_out), -1)  # (B, N, h, 2d), the gate's [coarse | fine] input
        return torch.sigmoid(F.linear(z, self.gate_conv1d.weight.squeeze(-1), self.gate_conv1d.bias))


class PyramidSparseBlock(nn.Module):
    """``x + attn(x, upper)``, then ``x + mlp(x)`` (published ``PSAttnBlock``); no norm layers.

    Args:
        dim: channels. mlp_ratio: MLP hidden / dim. attn_kwargs: :class:`PyramidSparseAttention` options.

    Shapes: ``x (B, dim, H, W)``, ``upper (B, dim, H/2, W/2)`` → ``(B, dim, H, W)``.
    """

    def __init__(self, dim: int, mlp_ratio: float = 2.0, **attn_kwargs):
        super().__init__()
        self.attn = PyramidSparseAttention(dim, **attn_kwargs)
        hidden = mlp_hidden_width(type(self).__name__, dim, mlp_ratio)
        self.mlp = nn.Sequential(Conv(dim, hidden, 1), Conv(hidden, dim, 1, act=False))
        for m in self.modules():  # Conv2d only: the gate (a Conv1d) keeps its own init
            init_conv_weights(m)

    def forward(self, x: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x, upper)
        return x + self.mlp(x)


class PST(nn.Module):
    """Pyramid Sparse Transformer layer: ELAN-style stack of :class:`PyramidSparseBlock` on a [fine, coarse] pair.

    ``cv2(cat[xf, b1(xf, uf), b2(b1, uf), ...])`` with ``xf = cv1(x)``, ``uf = cvup(upper)``; the same ``uf``
    feeds every block.

    Args:
        c1: fine input channels. c_up: coarse input channels. c2: output channels. n: blocks.
        mlp_ratio: block MLP ratio. e: hidden width ``c_ = int(c2·e)``, a multiple of 32.
        topk, train_topk: fine-stage switches (eval / training), see :class:`PyramidSparseAttention`.

    Shapes: ``[(B, c1, H, W), (B, c_up, H/2, W/2)]`` → ``(B, c2, H, W)``.

    Attributes:
        cv1, cvup (Conv): 1×1 to ``c_``. cv2 (Conv): 1×1 ``(1+n)·c_ → c2``. attnlayer_<i> (PyramidSparseBlock).

    Example:
        >>> m = PST(64, 96, 64, n=2).eval()
        >>> m([torch.randn(1, 64, 8, 8), torch.randn(1, 96, 4, 4)]).shape
        torch.Size([1, 64, 8, 8])
    """

    def __init__(
        self,
        c1: int,
        c_up: int,
        c2: int,
        n: int = 1,
        mlp_ratio: float = 2.0,
        e: float = 0.5,
        topk: int = 8,
        train_topk: int = 0,
    ):
        super().__init__()
        owner = type(self).__name__
        c1, c_up, c2, n = (check_int(owner, k, v) for k, v in (("c1", c1), ("c_up", c_up), ("c2", c2), ("n", n)))
        c_ = check_hidden_width(owner, c2, check_real(owner, "e", e, EXPANSION))
        self.n = n
        self.cv1 = Conv(c1, c_, 1)
        self.cvup = Conv(c_up, c_, 1)
        self.cv2 = Conv((1 + n) * c_, c2, 1)
        for i in range(n):  # published attribute names, so released state dicts map one to one
            self.add_module(f"attnlayer_{i}", PyramidSparseBlock(c_, mlp_ratio, topk=topk, train_topk=train_topk))

    def blocks(self) -> list[PyramidSparseBlock]:
        return [getattr(self, f"attnlayer_{i}") for i in range(self.n)]

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        x, upper = xs
        require_ratio(self, "input 0 (fine map)", x, upper, 2)
        for block in self.blocks():
            _check_topk(self, block.attn.active_topk(), upper, "train_topk" if block.attn.training else "topk")
        uf = self.cvup(upper)
        y = [self.cv1(x)]
        for block in self.blocks():
            y.append(block(y[-1], uf))
        return self.cv2(torch.cat(y, 1))

    @classmethod
    def ul_parse(cls, ctx) -> dict:
        """YAML ``[[fine, coarse], n, PST, [c2, mlp_ratio=2.0, e=0.5, topk=8, train_topk=0]]``; the (depth-scaled)
        repeats become ``n``; ``c2`` is width-scaled with the stock formula."""
        ctx.check_arity(5, "[c2, mlp_ratio, e, topk, train_topk]")
        if not isinstance(ctx.f, list) or len(ctx.f) != 2:
            raise ctx.error(f"takes [fine, coarse] inputs (coarse = half the fine map's size); 'from' is {ctx.f}")
        c1, c_up = ctx.c_in_list()
        c2 = ctx.width(ctx.arg(0, "c2", int, check=POSITIVE))
        mlp_ratio = ctx.arg(1, "mlp_ratio", float, 2.0, check=POSITIVE)
        e = ctx.arg(2, "e", float, 0.5, check=EXPANSION)
        topk = ctx.arg(3, "topk", int, 8, check=NON_NEGATIVE)
        train_topk = ctx.arg(4, "train_topk", int, 0, check=NON_NEGATIVE)
        if ctx.n < 1:
            raise ctx.error(f"repeats must be >= 1, got {ctx.n}")
        try:
            check_hidden_width(cls.__name__, c2, e)
        except ValueError as err:
            raise ctx.error(f"{err} (c2 {c2} is the YAML's {ctx.args[0]} at width {ctx.width_multiple})") from None
        return {"args": [c1, c_up, c2, ctx.n, mlp_ratio, e, topk, train_topk], "c2": c2, "n": 1, "legacy": False}


def set_pst_options(
    model: nn.Module,
    topk: int | None = None,
    train_topk: int | None = None,
    gate: str | None = None,
    gumbel: bool | None = None,
) -> int:
    """Set the fine-stage switches of every PST attention in ``model`` (a ``YOLO``, its ``.model`` or any module).

    Args:
        topk: coarse tokens refined in eval mode (0 = coarse only; 8 = the published inference setting).
        train_topk: the same in training mode (0 = published; > 0 trains the gate).
        gate: ``"auto"``, ``"learned"`` or ``"fixed"``. gumbel: Gumbel-perturbed selection in training.

    Returns:
        The number of attention modules changed (0 means the model has no PST layer).

    Example:
        >>> from ultralytics import YOLO
        >>> model = YOLO("yolo11n-pst.yaml")  # doctest: +SKIP
        >>> set_pst_options(model, topk=0)  # coarse-only inference  # doctest: +SKIP
        2
    """
    model = getattr(model, "model", model)
    changed = 0
    for m in model.modules():
        if isinstance(m, PyramidSparseAttention):
            m.configure(topk=topk, train_topk=train_topk, gate=gate, gumbel=gumbel)
            changed += 1
    return changed
