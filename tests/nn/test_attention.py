"""Area attention: backend parity, the row-major area split, the backend switch and its fallbacks.

Every reference here is written with plain torch in the test (explicit loops over samples, areas and heads),
never with the helpers under test. Runtime: about 7 s on 2 CPU cores (two fresh interpreters).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import ultra_ext  # noqa: F401  (activates the integration)
from ultra_ext.nn import attention as attention_mod
from ultra_ext.nn.attention import (
    AreaSplitError,
    attend,
    backend_report,
    merge_areas,
    resolve_backend,
    split_areas,
)
from ultra_ext.nn.config import attn_backend, get_attn_backend, set_attn_backend
from ultra_ext.nn.yolov12 import AreaAttention, AreaAttentionTurbo

REPO = Path(__file__).resolve().parents[2]
ATTN_CLASSES = (AreaAttention, AreaAttentionTurbo)
# (B, H, W, area): square, non-square, and maps whose areas start mid-row (H % area != 0, N % area == 0)
SHAPES = [
    (1, 8, 8, 1),
    (2, 8, 8, 4),
    (2, 5, 4, 4),  # 20 tokens -> areas of 5: the 2nd area starts at (1, 1)
    (3, 6, 10, 4),  # 60 tokens -> areas of 15: starts at (1, 5), (3, 0), (4, 5)
    (2, 7, 3, 1),
    (1, 3, 12, 4),  # H < area: areas of 9 tokens span row boundaries
]


@pytest.fixture(autouse=True)
def _restore_backend():
    """Each test may switch the process-wide backend; put it back."""
    previous = get_attn_backend()
    yield
    set_attn_backend(previous)


def randomized(module: torch.nn.Module, seed: int = 0, std: float = 0.3) -> torch.nn.Module:
    """Non-trivial weights and BN statistics, eval mode.

    std 0.3 on the 64-channel projections makes q/k entries ~2.5 and the softmax sharp; the output projection
    gets std 0.02 so outputs stay O(1) and the absolute fp32 tolerance measures the attention, not the scale.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            s = 0.02 if name.endswith("proj.conv.weight") else std
            p.copy_(torch.randn(p.shape, generator=g) * s + (1.0 if name.endswith("bn.weight") else 0.0))
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return module.eval()


# --------------------------------------------------------------------------------------------------------
# plain-torch references
# --------------------------------------------------------------------------------------------------------
def reference_chunks(t: torch.Tensor, area: int) -> torch.Tensor:
    """Explicit per-sample, per-area loop: area ``a`` of sample ``b`` holds tokens ``[a*N/l, (a+1)*N/l)``."""
    b, n = t.shape[:2]
    size = n // area
    out = []
    for i in range(b):
        for a in range(area):
            out.append(torch.stack([t[i, j] for j in range(a * size, (a + 1) * size)]))
    return torch.stack(out)


def reference_attention(q, k, v, area: int) -> torch.Tensor:
    """``(B, N, h, d)`` q/k/v -> ``(B, N, h, d)``; softmax attention inside each row-major area, per head."""
    b, n, h, d = q.shape
    size = n // area
    out = torch.empty_like(q)
    for i in range(b):
        for a in range(area):
            sl = slice(a * size, (a + 1) * size)
            for j in range(h):
                s = q[i, sl, j] @ k[i, sl, j].T / d**0.5  # (size, size)
                out[i, sl, j] = torch.softmax(s, dim=-1) @ v[i, sl, j]
    return out


def reference_area_attention(m: AreaAttention, x: torch.Tensor) -> torch.Tensor:
    """v1.0 layout from its definition: qkv channels per head interleaved ``[q_j | k_j | v_j]``."""
    b, c, hh, ww = x.shape
    h, d = m.num_heads, c // m.num_heads
    t = m.qkv(x).reshape(b, h, 3, d, hh * ww)  # channel = head*3d + part*d + j
    q, k, v = (t[:, :, p].permute(0, 3, 1, 2) for p in range(3))  # (B, N, h, d)
    o = reference_attention(q, k, v, m.area)
    o_map = o.permute(0, 2, 3, 1).reshape(b, c, hh, ww)  # channel = head*d + j
    v_map = v.permute(0, 2, 3, 1).reshape(b, c, hh, ww)
    return m.proj(o_map + m.pe(v_map))


def reference_area_attention_turbo(m: AreaAttentionTurbo, x: torch.Tensor) -> torch.Tensor:
    """Turbo layout: q = qk channels [0, C), k = [C, 2C), both head-major; separate v; pe on the v map."""
    b, c, hh, ww = x.shape
    h, d = m.num_heads, c // m.num_heads
    qk = m.qk(x)
    v_map = m.v(x)
    to_tokens = lambda t: t.reshape(b, h, d, hh * ww).permute(0, 3, 1, 2)  # noqa: E731
    o = reference_attention(to_tokens(qk[:, :c]), to_tokens(qk[:, c:]), to_tokens(v_map), m.area)
    return m.proj(o.permute(0, 2, 3, 1).reshape(b, c, hh, ww) + m.pe(v_map))


REFERENCES = {AreaAttention: reference_area_attention, AreaAttentionTurbo: reference_area_attention_turbo}


# --------------------------------------------------------------------------------------------------------
# area split
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("b,h,w,area", SHAPES)
def test_split_areas_is_row_major_contiguous_chunks(b, h, w, area):
    t = torch.randn(b, h * w, 3, 5)
    got = split_areas(t, area)
    assert got.shape == (b * area, h * w // area, 3, 5)
    assert torch.equal(got, reference_chunks(t, area))
    assert torch.equal(merge_areas(got, area), t)


def test_split_areas_starts_mid_row():
    """5×4 map, area 4: chunks of 5 tokens; area 1 of sample 1 is (1,1) (1,2) (1,3) (2,0) (2,1)."""
    h, w = 5, 4
    yx = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1)  # (H, W, 2)
    tokens = yx.reshape(1, h * w, 2).repeat(2, 1, 1)  # row-major flatten, batch 2
    chunks = split_areas(tokens, 4)
    assert chunks.shape == (8, 5, 2)
    assert chunks[4 + 1].tolist() == [[1, 1], [1, 2], [1, 3], [2, 0], [2, 1]]
    assert chunks[4 + 3].tolist() == [[3, 3], [4, 0], [4, 1], [4, 2], [4, 3]]


def test_split_areas_area_one_is_identity_and_indivisible_raises():
    t = torch.randn(2, 21, 4)
    assert split_areas(t, 1) is t and merge_areas(t, 1) is t
    with pytest.raises(AreaSplitError, match=r"21 tokens.*area=4") as e:
        split_areas(t, 4)
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("backend", ["math", "sdpa"])
def test_attend_matches_per_area_loop(backend):
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 20, 2, 32, generator=g) * 2 for _ in range(3))
    ref = reference_attention(q, k, v, 4)
    out, ran = attend(*(split_areas(t, 4) for t in (q, k, v)), backend)
    assert ran == backend
    assert (merge_areas(out, 4) - ref).abs().max() <= 1e-5


# --------------------------------------------------------------------------------------------------------
# module parity: math vs SDPA vs the plain-torch reference
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ATTN_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("b,h,w,area", SHAPES)
def test_backends_agree_and_match_reference(cls, b, h, w, area):
    m = randomized(cls(64, 2, area), seed=h * 31 + w)
    x = torch.randn(b, 64, h, w, generator=torch.Generator().manual_seed(b))
    out = {}
    with torch.no_grad():
        for backend in ("math", "sdpa"):
            m.attn_backend = backend
            out[backend] = m(x)
            assert m.last_backend == backend
        ref = REFERENCES[cls](m, x)
    assert out["math"].shape == x.shape
    assert (out["math"] - out["sdpa"]).abs().max() <= 1e-5
    assert (out["math"] - ref).abs().max() <= 1e-5
    # the areas matter: ignoring them (global attention) gives a different function
    if area > 1:
        m.area = 1
        with torch.no_grad():
            assert (m(x) - ref).abs().max() > 1e-3


def test_attention_is_confined_to_its_area():
    """Changing a token of area 0 changes the attention output of area 0 only (pe zeroed, it crosses areas)."""
    m = randomized(AreaAttention(64, 2, area=4), seed=7)
    with torch.no_grad():
        m.pe.conv.weight.zero_()
        m.pe.bn.bias.zero_()
        m.pe.bn.running_mean.zero_()
        x = torch.randn(1, 64, 5, 4)
        y = x.clone()
        y[0, :, 0, 2] += 3.0  # token 2: area 0 (tokens 0-4)
        diff = (m(x) - m(y)).abs().amax(1).flatten()  # per token
    assert diff[:5].min() > 1e-4
    assert diff[5:].max() == 0


def test_module_rejects_bad_construction():
    with pytest.raises(ValueError, match="64.*3 heads"):
        AreaAttention(64, 3)
    with pytest.raises(ValueError, match="64.*3 heads"):
        AreaAttentionTurbo(64, 3)
    with pytest.raises(ValueError, match="area"):
        AreaAttention(64, 2, area=0)


def test_module_forward_with_indivisible_map_raises():
    m = AreaAttention(64, 2, area=4).eval()
    with pytest.raises(AreaSplitError, match=r"15 tokens.*area=4"):
        m(torch.randn(1, 64, 3, 5))


# --------------------------------------------------------------------------------------------------------
# backend selection
# --------------------------------------------------------------------------------------------------------
def test_flash_on_cpu_falls_back_to_sdpa_with_one_warning():
    attention_mod._warned.clear()
    m = randomized(AreaAttention(64, 2, area=4), seed=1)
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        m.attn_backend = "sdpa"
        expected = m(x)
        m.attn_backend = "flash"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = m(x)
            second = m(x)
            with attn_backend("flash"):  # the process-wide route warns through the same gate
                m.attn_backend = None
                third = m(x)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1, [str(w.message) for w in caught]
    assert "flash" in str(runtime[0].message) and "sdpa" in str(runtime[0].message).lower()
    assert m.last_backend == "sdpa"
    for out in (first, second, third):
        assert torch.equal(out, expected)
    assert backend_report(m) == {"": "sdpa"}


def test_precedence_module_over_process():
    m = randomized(AreaAttention(64, 2), seed=2)
    x = torch.randn(1, 64, 4, 4)
    set_attn_backend("sdpa")
    m(x)
    assert m.last_backend == "sdpa"
    with attn_backend("math"):
        assert get_attn_backend() == "math"
        m(x)
        assert m.last_backend == "math"  # no module setting: follows the process
        m.attn_backend = "sdpa"
        m(x)
        assert m.last_backend == "sdpa"  # module setting wins
    assert get_attn_backend() == "sdpa"
    m.attn_backend = "math"
    m(x)
    assert m.last_backend == "math"
    assert AreaAttention(64, 2, backend="MATH").attn_backend == "math"


def test_context_manager_restores_on_error():
    set_attn_backend("sdpa")
    with pytest.raises(KeyError):
        with attn_backend("math"):
            raise KeyError("boom")
    assert get_attn_backend() == "sdpa"


@pytest.mark.parametrize("bad", ["cuda", "", "fast", None, 3])
def test_invalid_backend_names_raise(bad):
    with pytest.raises(ValueError, match="unknown attention backend"):
        set_attn_backend(bad)
    with pytest.raises(ValueError, match="unknown attention backend"):
        with attn_backend(bad):
            pass
    if bad is not None:  # None is the module default: "follow the process"
        with pytest.raises(ValueError, match="unknown attention backend"):
            AreaAttention(64, 2, backend=bad)


def test_invalid_module_attribute_raises_value_error():
    m = AreaAttention(64, 2)
    m.attn_backend = "cuda"
    with pytest.raises(ValueError, match="unknown attention backend"):
        m(torch.randn(1, 64, 4, 4))


def test_backend_report_lists_every_attention_module():
    from ultralytics.nn.tasks import DetectionModel

    fresh = AreaAttention(64, 2, backend="math")
    assert backend_report(torch.nn.Sequential(fresh)) == {"0": "math (not run yet)"}
    fresh.attn_backend = None
    with attn_backend("sdpa"):
        assert backend_report(fresh) == {"": "sdpa (not run yet)"}

    model = DetectionModel("yolov12n.yaml", verbose=False).eval()  # building runs one forward (strides)
    report = backend_report(model)
    # n: layers 6 and 8, 2 units x 2 ABlocks each; the neck A2C2f rows have no attention
    assert sorted(report) == sorted(f"model.{i}.m.{u}.{j}.attn" for i in (6, 8) for u in (0, 1) for j in (0, 1))
    assert set(report.values()) == {get_attn_backend()}
    model.model[8].m[1][1].attn.attn_backend = "math"
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    report = backend_report(model)
    assert report.pop("model.8.m.1.1.attn") == "math"
    assert set(report.values()) == {"sdpa"}


def _run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,  # `-c` puts the cwd first on sys.path: this checkout, not the installed copy
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_env_var_is_read_at_import():
    code = (
        "import torch, ultra_ext, ultra_ext.nn.config as c\n"
        "from ultra_ext.nn.yolov12 import AreaAttention\n"
        "m = AreaAttention(64, 2); m(torch.randn(1, 64, 4, 4))\n"
        "print(c.__file__); print(c.get_attn_backend(), m.last_backend)\n"
    )
    r = _run_python(code, ULTRA_EXT_ATTN="MATH")
    assert r.returncode == 0, r.stderr
    file, result = r.stdout.strip().splitlines()[-2:]
    assert Path(file).resolve().is_relative_to(REPO)
    assert result == "math math"
    r = _run_python(code, ULTRA_EXT_ATTN="bogus")
    assert r.returncode != 0
    assert "ValueError" in r.stderr and "ULTRA_EXT_ATTN='bogus'" in r.stderr


# --------------------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------------------
def test_resolve_backend_outside_export_and_fallback():
    q = torch.randn(1, 4, 2, 32)
    assert resolve_backend("math", q) == "math"
    assert resolve_backend(None, q) == get_attn_backend()
    attention_mod._warned.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert resolve_backend("flash", q) == "sdpa"


@pytest.mark.parametrize("cls", ATTN_CLASSES, ids=lambda c: c.__name__)
def test_tracing_uses_math_path(cls):
    m = randomized(cls(64, 2, area=4), seed=4)
    m.attn_backend = "sdpa"
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        expected = m(x)
        traced = torch.jit.trace(m, x, check_trace=False)
        assert m.last_backend == "math"
        graph = str(traced.graph)
        assert "scaled_dot_product_attention" not in graph
        assert "aten::softmax" in graph and "aten::matmul" in graph
        assert (traced(x) - expected).abs().max() <= 1e-5


def test_onnx_export_uses_math_path(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    m = randomized(AreaAttention(64, 2, area=4), seed=5)
    m.attn_backend = "sdpa"
    x = torch.randn(1, 64, 8, 8)
    f = tmp_path / "attn.onnx"
    seen = []
    hook = m.register_forward_hook(lambda mod, i, o: seen.append(mod.last_backend))
    with torch.no_grad():
        expected = m(x).numpy()
        seen.clear()
        torch.onnx.export(m, (x,), str(f), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    hook.remove()
    assert seen and set(seen) == {"math"}
    ops = {n.op_type for n in onnx.load(str(f)).graph.node}
    assert {"MatMul", "Softmax"} <= ops and "Attention" not in ops
    got = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    assert abs(got - expected).max() <= 1e-4
