"""Float64 patches for Hugging Face transformers' Llama, shared by the fixture scripts.

Not run on its own: scripts/hf_llama_fixtures.py and scripts/hf_llama_reference.py import it.

transformers keeps three parts of a Llama forward in float32 whatever the model dtype:
  * LlamaRMSNorm.forward casts the hidden states to float32;
  * LlamaRotaryEmbedding builds `inv_freq` in float32 and its forward computes the angles
    (inv_freq @ position_ids), cos and sin in float32 with autocast disabled;
  * the eager attention takes its softmax in float32 (the scripts use attn_implementation="sdpa",
    which stays in the input dtype, float64 included).
`Float64Patches` replaces the first two by the same math in the input dtype, and sets every rotary
module's `inv_freq` to float64 values from our own copy of transformers' formula (default and llama3
rope types), after checking that the copy agrees with transformers' float32 buffer.

Supported: transformers 4.45 and later (config-driven LlamaRotaryEmbedding, `head_dim` in LlamaConfig),
including 5.x (rope_parameters instead of rope_theta/rope_scaling).
"""

import inspect
import math

import torch
import transformers
from transformers.models.llama import modeling_llama

SUPPORTED_ROPE_TYPES = ("default", "llama3")
FLOAT64_NOTE = "rmsnorm, rotary angles and attention softmax kept in float64"


def uses_rope_parameters():
    """True when the installed LlamaConfig keeps rope settings in `rope_parameters` (transformers 5.x)."""
    from transformers import LlamaConfig

    return getattr(LlamaConfig(), "rope_parameters", None) is not None


def version_tuple(v):
    out = []
    for part in v.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def dtype_kwarg(dtype):
    """from_pretrained's dtype argument: `dtype` from transformers 4.56 on, `torch_dtype` before."""
    return {"dtype": dtype} if version_tuple(transformers.__version__) >= (4, 56) else {"torch_dtype": dtype}


def save_pretrained_kwargs(model):
    """safe_serialization=True where save_pretrained still takes it (4.x); 5.x always writes safetensors."""
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        return {"safe_serialization": True}
    return {}


def llama_config(config_kwargs, rope, attn_implementation="sdpa"):
    """LlamaConfig in the installed version's native rope form. `rope`: rope_theta plus, for scaled
    rope, the rope_scaling keys (rope_type, factor, ...)."""
    from transformers import LlamaConfig

    kw = dict(config_kwargs)
    rope = dict(rope)
    theta = float(rope.pop("rope_theta"))
    if uses_rope_parameters():
        params = dict(rope) if rope else {"rope_type": "default"}
        params["rope_theta"] = theta
        kw["rope_parameters"] = params
    else:
        kw["rope_theta"] = theta
        kw["rope_scaling"] = dict(rope) if rope else None
    config = LlamaConfig(**kw)
    config._attn_implementation = attn_implementation
    return config


def rope_settings(config):
    """The rope settings of a config as one dict (rope_type, rope_theta and the scaling keys), whichever
    way the installed transformers stores them: `rope_parameters` (5.x) or `rope_theta` + `rope_scaling`."""
    rp = getattr(config, "rope_parameters", None)
    if isinstance(rp, dict) and rp:
        out = dict(rp)
    else:
        out = dict(getattr(config, "rope_scaling", None) or {})
        out["rope_theta"] = getattr(config, "rope_theta", 10000.0)
    out["rope_type"] = out.get("rope_type", out.get("type", "default")) or "default"
    return out


def head_dim_of(config):
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def rope_bands(config):
    """For llama3 rope: per rotary pair, its unscaled wavelength and band ('high' kept, 'medium'
    smoothed, 'low' divided by factor), computed in float64 as in transformers' formula."""
    rs = rope_settings(config)
    dim = head_dim_of(config)
    base = float(rs["rope_theta"])
    old = float(rs["original_max_position_embeddings"])
    low_wl = old / float(rs["low_freq_factor"])
    high_wl = old / float(rs["high_freq_factor"])
    out = []
    for i in range(dim // 2):
        inv = 1.0 / (base ** ((2 * i) / dim))
        wl = 2 * math.pi / inv
        band = "high" if wl < high_wl else ("low" if wl > low_wl else "medium")
        out.append((wl, band))
    return out


def inv_freq_float64(config, device=None):
    """Our float64 copy of transformers' inverse frequencies (modeling_rope_utils / LlamaRotaryEmbedding):
    default: 1 / theta^(2i/d); llama3: the Llama 3.1 wavelength bands with smoothing."""
    rs = rope_settings(config)
    rope_type = rs["rope_type"]
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise ValueError(f"rope_type {rope_type!r} not supported here (only {SUPPORTED_ROPE_TYPES})")
    if float(rs.get("partial_rotary_factor", 1.0) or 1.0) != 1.0:
        raise ValueError("partial_rotary_factor != 1 not supported")
    dim = head_dim_of(config)
    base = float(rs["rope_theta"])
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(torch.float64) / dim
    inv_freq = 1.0 / (base ** exponents)
    if rope_type == "llama3":
        factor = float(rs["factor"])
        low_freq_factor = float(rs["low_freq_factor"])
        high_freq_factor = float(rs["high_freq_factor"])
        old_context_len = float(rs["original_max_position_embeddings"])
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
        is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
        inv_freq = torch.where(is_medium, smoothed, inv_freq_llama)
    return inv_freq.to(device) if device is not None else inv_freq


def rmsnorm_forward_float64(self, hidden_states):
    """LlamaRMSNorm.forward without the float32 cast (the same math in the input dtype)."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
    return self.weight * hidden_states


@torch.no_grad()
def rotary_forward_float64(self, x, position_ids, *args, **kwargs):
    """LlamaRotaryEmbedding.forward with the angles, cos and sin in float64 (no dynamic rope update:
    only the default and llama3 rope types, which never update, are accepted)."""
    inv_freq = self.inv_freq.to(device=x.device, dtype=torch.float64)
    pos = position_ids.to(device=x.device, dtype=torch.float64)
    # transformers: (inv_freq[None, :, None] @ pos[:, None, :]).transpose(1, 2), an inner dimension of 1,
    # i.e. the same elementwise products.
    freqs = pos[:, :, None] * inv_freq[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    scaling = getattr(self, "attention_scaling", 1.0)
    if scaling is None:
        scaling = 1.0
    cos = emb.cos() * scaling
    sin = emb.sin() * scaling
    return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def rotary_modules(model):
    return [m for m in model.modules() if isinstance(m, modeling_llama.LlamaRotaryEmbedding)]


def max_rel(a, b):
    """max |a-b| / max |b|, in float64."""
    a = a.detach().to(torch.float64)
    b = b.detach().to(torch.float64)
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def check_inv_freq(config, transformers_inv_freq, tol=1e-6, label=""):
    """Assert our float64 inverse frequencies agree with transformers' float32 ones within `tol`
    relative (so the copy is the same formula); returns the float64 values and the difference."""
    ours = inv_freq_float64(config, device=transformers_inv_freq.device)
    theirs = transformers_inv_freq.detach().to(torch.float64)
    if ours.shape != theirs.shape:
        raise AssertionError(f"{label} inv_freq shape {tuple(ours.shape)} vs transformers {tuple(theirs.shape)}")
    rel = ((ours - theirs).abs() / theirs.abs()).max().item()
    if not rel <= tol:
        raise AssertionError(f"{label} inv_freq: our float64 formula differs from transformers' by {rel:.3e} (> {tol})")
    return ours, rel


class Float64Patches:
    """Context manager: while active, LlamaRMSNorm and LlamaRotaryEmbedding compute in float64 (the
    input dtype), and every rotary module of `model` holds float64 `inv_freq` (checked against
    transformers' buffer first). On exit the class methods and the original buffers are restored.
    Patches are class-wide: do not run another Llama model that should stay plain while active."""

    def __init__(self, model, verbose=True):
        self.model = model
        self.verbose = verbose
        self.saved_buffers = []
        self.inv_freq_rel = 0.0

    def __enter__(self):
        config = self.model.config
        rs = rope_settings(config)
        if rs["rope_type"] not in SUPPORTED_ROPE_TYPES:
            raise ValueError(f"rope_type {rs['rope_type']!r} not supported")
        mods = rotary_modules(self.model)
        if not mods:
            raise AssertionError("no LlamaRotaryEmbedding module found in the model")
        for m in mods:
            ours, rel = check_inv_freq(config, m.inv_freq, label="rotary")
            self.inv_freq_rel = max(self.inv_freq_rel, rel)
            saved = {"inv_freq": m.inv_freq}
            m.inv_freq = ours.clone()
            if hasattr(m, "original_inv_freq") and isinstance(getattr(m, "original_inv_freq"), torch.Tensor):
                saved["original_inv_freq"] = m.original_inv_freq
                m.original_inv_freq = ours.clone()
            self.saved_buffers.append((m, saved))
        self.saved_rms = modeling_llama.LlamaRMSNorm.forward
        self.saved_rot = modeling_llama.LlamaRotaryEmbedding.forward
        modeling_llama.LlamaRMSNorm.forward = rmsnorm_forward_float64
        modeling_llama.LlamaRotaryEmbedding.forward = rotary_forward_float64
        if self.verbose:
            print(f"  float64 patches on: {len(mods)} rotary module(s), rope_type={rs['rope_type']}, "
                  f"max rel |inv_freq(ours, float64) - inv_freq(transformers, float32)| = {self.inv_freq_rel:.2e}")
        return self

    def __exit__(self, *exc):
        modeling_llama.LlamaRMSNorm.forward = self.saved_rms
        modeling_llama.LlamaRotaryEmbedding.forward = self.saved_rot
        for m, saved in self.saved_buffers:
            for k, v in saved.items():
                setattr(m, k, v)
        self.saved_buffers = []
        return False


def check_rope_config_forms(config_kwargs, rope):
    """Build LlamaConfig with the installed version's native rope form and, where the version accepts it,
    the other form; assert that each accepted form gives transformers the same inverse frequencies, and
    that they agree with our float64 copy. `rope` is a dict: rope_theta plus optional rope_scaling keys
    (rope_type, factor, ...). Returns a short description."""
    from transformers import LlamaConfig

    theta = float(rope["rope_theta"])
    scaling = {k: v for k, v in rope.items() if k != "rope_theta"} or None
    legacy = dict(config_kwargs, rope_theta=theta, rope_scaling=dict(scaling) if scaling else None)
    params = dict(scaling) if scaling else {"rope_type": "default"}
    params["rope_theta"] = theta
    modern = dict(config_kwargs, rope_parameters=params)
    native_is_modern = uses_rope_parameters()

    def inv_of(kwargs):
        cfg = LlamaConfig(**kwargs)
        return cfg, modeling_llama.LlamaRotaryEmbedding(config=cfg).inv_freq.detach().clone()

    native_kwargs, other_kwargs = (modern, legacy) if native_is_modern else (legacy, modern)
    cfg, native_inv = inv_of(native_kwargs)
    check_inv_freq(cfg, native_inv, label="native config")
    notes = [f"native form {'rope_parameters' if native_is_modern else 'rope_theta/rope_scaling'}"]
    if native_is_modern:
        # 5.x converts legacy rope_theta/rope_scaling (as in older config.json files) into rope_parameters.
        try:
            cfg2, other_inv = inv_of(other_kwargs)
        except Exception as e:  # noqa: BLE001 - report and go on: the legacy form is optional
            notes.append(f"legacy form not accepted ({type(e).__name__}: {e})")
        else:
            if not torch.equal(other_inv, native_inv):
                raise AssertionError(f"legacy rope_theta/rope_scaling config gives other inv_freq: "
                                     f"{other_inv.tolist()} vs {native_inv.tolist()}")
            if rope_settings(cfg2)["rope_type"] != rope_settings(cfg)["rope_type"]:
                raise AssertionError("legacy config parsed to another rope_type")
            notes.append("legacy rope_theta/rope_scaling form gives identical inv_freq")
    else:
        notes.append("rope_parameters form not understood by this version (skipped)")
    # Round trip through a config dict (what config.json holds).
    cfg3 = LlamaConfig.from_dict(cfg.to_dict())
    inv3 = modeling_llama.LlamaRotaryEmbedding(config=cfg3).inv_freq
    if not torch.equal(inv3, native_inv):
        raise AssertionError("config to_dict/from_dict round trip changes inv_freq")
    notes.append("to_dict/from_dict round trip identical")
    return "; ".join(notes)
