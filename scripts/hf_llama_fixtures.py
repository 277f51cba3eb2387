"""Small float64 Hugging Face Llama fixtures for the tests.

Run (CPU; PyTorch, transformers >= 4.45 (5.x included) and safetensors installed):

    python3 scripts/hf_llama_fixtures.py --out tests/Fixtures/HfLlama

For each case (gqa, tied-llama3, mha) it builds a small LlamaForCausalLM in float64 with seeded random
weights (torch.Generator, one seed per case) and writes <out>/<case>/:

  config.json, generation_config.json, model.safetensors
      model.save_pretrained(...) of the float64 model: a genuine Hugging Face model folder
      (with tied embeddings transformers leaves lm_head.weight out of the file).
  reference.safetensors (safetensors.torch.save_file), all from one float64 forward + backward:
      input_ids   I64 [batch, seq]
      targets     I64 [batch, seq]          random, independent of input_ids
      logits      F64 [batch, seq, vocab]
      loss        F64 []                    mean over all batch*seq tokens of
                                            torch.nn.functional.cross_entropy(logits, targets)
                                            (not transformers' shifted `labels` loss)
      grad.<name> F64 (shape of the parameter) for every (name, p) in model.named_parameters(), the
                                            gradient of that mean loss (tied: model.embed_tokens.weight
                                            holds both uses; there is no lm_head entry)
    metadata: torch_version, transformers_version, case, seed, attn_implementation,
              float64 = "rmsnorm, rotary angles and attention softmax kept in float64".

Float64 throughout: attention runs through attn_implementation="sdpa" (float64 on the CPU); RMSNorm and
the rotary embedding are patched (scripts/hf_float64.py) so that they do not drop to float32, with
inverse frequencies from our float64 copy of transformers' formula, asserted to agree with
transformers' float32 buffer within 1e-6 relative. The script checks, and prints:
  * the llama3 case's pair wavelengths, asserting pairs fall in each of the three bands;
  * that legacy rope_theta/rope_scaling and 5.x rope_parameters configs give the same inv_freq
    (where the installed version accepts both);
  * logits without the patches (transformers' float32 parts) vs with them: ~1e-7 relative, not 0;
  * logits and every gradient against an independent float64 Llama written here from the state dict
    (<= 1e-12 / 1e-10 relative);
  * central finite differences on a few scalar weights against the backward (<= 1e-6 relative);
  * the saved folder reloaded with from_pretrained gives the same weights and logits;
  * logits std and mean max softmax probability, and file sizes (all well under 5 MB).
The output is deterministic: running the script twice writes identical files.
"""

import argparse
import math
import os
import shutil
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_float64  # noqa: E402

import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

FLOAT64_NOTE = hf_float64.FLOAT64_NOTE

CASES = [
    dict(name="gqa", seed=1001, hidden=64, heads=8, kv_heads=4, head_dim=8, intermediate=96, layers=2,
         vocab=97, rope={"rope_theta": 50000.0}, eps=1e-5, tied=False, seq=8, batch=2, max_pos=128),
    dict(name="tied-llama3", seed=1002, hidden=48, heads=4, kv_heads=1, head_dim=16, intermediate=64, layers=3,
         vocab=61, rope={"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
         eps=1e-6, tied=True, seq=12, batch=1, max_pos=512),
    dict(name="mha", seed=1003, hidden=32, heads=4, kv_heads=4, head_dim=None, intermediate=64, layers=2,
         vocab=53, rope={"rope_theta": 20000.0}, eps=1e-5, tied=False, seq=4, batch=4, max_pos=64),
]


def config_kwargs(case):
    kw = dict(vocab_size=case["vocab"], hidden_size=case["hidden"], intermediate_size=case["intermediate"],
              num_hidden_layers=case["layers"], num_attention_heads=case["heads"],
              num_key_value_heads=case["kv_heads"], hidden_act="silu", max_position_embeddings=case["max_pos"],
              rms_norm_eps=case["eps"], tie_word_embeddings=case["tied"], attention_bias=False, mlp_bias=False,
              attention_dropout=0.0, use_cache=False, bos_token_id=1, eos_token_id=2)
    if case["head_dim"] is not None:
        kw["head_dim"] = case["head_dim"]
    return kw


def make_config(case):
    return hf_float64.llama_config(config_kwargs(case), case["rope"])


def init_weights(model, case, gen):
    """Seeded, never zero, logits far from flat: embeddings N(0,1) (tied: N(0, 0.5^2) so the tied
    head gives logits of std ~3.5), linear weights N(0, 1/fan_in), norm weights 1 + 0.2 N(0,1),
    untied lm_head N(0, 9/hidden) (logits std ~3)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if name.endswith("norm.weight"):
                v = 1.0 + 0.2 * r
            elif name == "model.embed_tokens.weight":
                v = r * (0.5 if case["tied"] else 1.0)
            elif name == "lm_head.weight":
                v = r * (3.0 / math.sqrt(p.shape[1]))
            else:
                v = r / math.sqrt(p.shape[1])
            p.copy_(v)


def reference_llama(params, config, input_ids):
    """An independent float64 Llama forward written from the state dict (not transformers' code)."""
    b, s = input_ids.shape
    nh, nkv = config.num_attention_heads, config.num_key_value_heads
    hd = hf_float64.head_dim_of(config)
    eps = config.rms_norm_eps
    inv = hf_float64.inv_freq_float64(config)
    ang = torch.arange(s, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = ang.cos(), ang.sin()

    def rope(t):
        t1, t2 = t[..., : hd // 2], t[..., hd // 2:]
        return torch.cat((t1 * cos - t2 * sin, t2 * cos + t1 * sin), dim=-1)

    def rms(t, w):
        return w * (t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps))

    causal = torch.ones(s, s, dtype=torch.bool).tril()
    x = params["model.embed_tokens.weight"][input_ids]
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        h = rms(x, params[p + "input_layernorm.weight"])
        q = (h @ params[p + "self_attn.q_proj.weight"].T).view(b, s, nh, hd).transpose(1, 2)
        k = (h @ params[p + "self_attn.k_proj.weight"].T).view(b, s, nkv, hd).transpose(1, 2)
        v = (h @ params[p + "self_attn.v_proj.weight"].T).view(b, s, nkv, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        scores = scores.masked_fill(~causal, float("-inf"))
        a = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, s, nh * hd)
        x = x + a @ params[p + "self_attn.o_proj.weight"].T
        h = rms(x, params[p + "post_attention_layernorm.weight"])
        g = h @ params[p + "mlp.gate_proj.weight"].T
        u = h @ params[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(g) * u) @ params[p + "mlp.down_proj.weight"].T
    x = rms(x, params["model.norm.weight"])
    w_out = params["lm_head.weight"] if "lm_head.weight" in params else params["model.embed_tokens.weight"]
    return x @ w_out.T


def mean_ce(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def run_case(case, out_root):
    name = case["name"]
    print(f"== {name}")
    torch.manual_seed(case["seed"])  # anything transformers draws at construction is seeded too
    gen = torch.Generator().manual_seed(case["seed"])
    config = make_config(case)

    print("  rope config: " + hf_float64.check_rope_config_forms(config_kwargs(case), case["rope"]))
    if hf_float64.rope_settings(config)["rope_type"] == "llama3":
        bands = hf_float64.rope_bands(config)
        for i, (wl, band) in enumerate(bands):
            print(f"    pair {i}: wavelength {wl:12.3f}  {band}")
        for want in ("high", "medium", "low"):
            assert any(b == want for _, b in bands), f"no rotary pair in the llama3 {want} band"

    model = LlamaForCausalLM(config).to(torch.float64)
    model.eval()
    assert model.config._attn_implementation == "sdpa", model.config._attn_implementation
    hd = hf_float64.head_dim_of(config)
    q_shape = tuple(model.model.layers[0].self_attn.q_proj.weight.shape)
    assert q_shape == (case["heads"] * hd, case["hidden"]), f"q_proj {q_shape}: head_dim not honoured"
    if case["tied"]:
        assert model.lm_head.weight is model.model.embed_tokens.weight, "embeddings not tied"
    init_weights(model, case, gen)

    b, s, vocab = case["batch"], case["seq"], case["vocab"]
    input_ids = torch.randint(0, vocab, (b, s), generator=gen, dtype=torch.int64)
    targets = torch.randint(0, vocab, (b, s), generator=gen, dtype=torch.int64)

    with torch.no_grad():
        plain_logits = model(input_ids=input_ids, use_cache=False).logits.detach().clone()

    with hf_float64.Float64Patches(model):
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=input_ids, use_cache=False).logits
        assert logits.dtype == torch.float64 and logits.shape == (b, s, vocab), (logits.dtype, logits.shape)
        loss = mean_ce(logits, targets)
        loss.backward()
        named = list(model.named_parameters())
        grads = {n: p.grad.detach().clone() for n, p in named}
        logits = logits.detach().clone()
        loss = loss.detach().clone()

        # Central finite differences on a few scalar weights (the largest-gradient element of each).
        fd_names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight",
                    "model.norm.weight", "model.embed_tokens.weight"]
        params = dict(named)
        with torch.no_grad():
            for pn in fd_names:
                p = params[pn]
                idx = int(grads[pn].abs().argmax())
                flat = p.view(-1)
                w0 = flat[idx].item()
                h = 1e-5 * max(1.0, abs(w0))
                flat[idx] = w0 + h
                lp = mean_ce(model(input_ids=input_ids, use_cache=False).logits, targets).item()
                flat[idx] = w0 - h
                lm = mean_ce(model(input_ids=input_ids, use_cache=False).logits, targets).item()
                flat[idx] = w0
                fd = (lp - lm) / (2 * h)
                an = grads[pn].view(-1)[idx].item()
                rel = abs(fd - an) / abs(an)
                print(f"  finite difference {pn}[{idx}]: backward {an:+.12e}  central {fd:+.12e}  rel {rel:.2e}")
                assert rel < 1e-6, f"finite difference disagrees with the backward ({rel:.2e})"
            again = model(input_ids=input_ids, use_cache=False).logits
            assert torch.equal(again, logits), "weights not restored after finite differences"

    # Patches off again: transformers' float32 RMSNorm and rotary must give a ~1e-7 difference.
    with torch.no_grad():
        unpatched_again = model(input_ids=input_ids, use_cache=False).logits
    assert torch.equal(unpatched_again, plain_logits), "patches not removed cleanly"
    d_plain = hf_float64.max_rel(plain_logits, logits)
    print(f"  logits, transformers' float32 parts (no patches) vs float64 patches: max rel diff {d_plain:.2e}")
    assert 1e-12 < d_plain < 1e-4, "the patches did not change the float32 parts as expected"

    # Independent float64 Llama: logits and every gradient.
    ref_params = {n: p.detach().clone().requires_grad_(True) for n, p in named}
    ref_logits = reference_llama(ref_params, config, input_ids)
    ref_loss = mean_ce(ref_logits, targets)
    ref_grads = torch.autograd.grad(ref_loss, [ref_params[n] for n, _ in named])
    d_ref = hf_float64.max_rel(logits, ref_logits)
    d_loss = abs(loss.item() - ref_loss.item()) / abs(ref_loss.item())
    d_grad = max(hf_float64.max_rel(grads[n], g) for (n, _), g in zip(named, ref_grads))
    print(f"  vs independent float64 Llama: logits {d_ref:.2e}, loss {d_loss:.2e}, worst gradient {d_grad:.2e}")
    assert d_ref < 1e-12 and d_loss < 1e-12 and d_grad < 1e-10, "transformers float64 differs from the reference"

    probs = logits.softmax(-1)
    print(f"  loss {loss.item():.6f}  logits std {logits.std().item():.3f}  "
          f"mean max softmax prob {probs.max(-1).values.mean().item():.3f}  (uniform would be {1.0 / vocab:.3f})")

    folder = os.path.join(out_root, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    model.save_pretrained(folder, **hf_float64.save_pretrained_kwargs(model))
    assert os.path.isfile(os.path.join(folder, "model.safetensors")), os.listdir(folder)

    tensors = {"input_ids": input_ids.contiguous(), "targets": targets.contiguous(),
               "logits": logits.contiguous(), "loss": loss.reshape(()).contiguous()}
    for n, _ in named:
        tensors["grad." + n] = grads[n].contiguous()
    metadata = {"torch_version": torch.__version__, "transformers_version": transformers.__version__,
                "case": name, "seed": str(case["seed"]), "attn_implementation": "sdpa",
                "float64": FLOAT64_NOTE}
    save_file(tensors, os.path.join(folder, "reference.safetensors"), metadata=metadata)

    # The saved folder, loaded back the ordinary way, is the same model.
    reloaded = LlamaForCausalLM.from_pretrained(folder, attn_implementation="sdpa",
                                                **hf_float64.dtype_kwarg(torch.float64))
    reloaded.eval()
    rsd, msd = reloaded.state_dict(), model.state_dict()
    for n, p in named:
        assert rsd[n].dtype == torch.float64 and torch.equal(rsd[n], msd[n]), f"reloaded {n} differs"
    if case["tied"]:
        assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr(), \
            "reloaded lm_head not tied"
    with hf_float64.Float64Patches(reloaded, verbose=False), torch.no_grad():
        d_reload = hf_float64.max_rel(reloaded(input_ids=input_ids, use_cache=False).logits, logits)
    print(f"  reloaded folder: weights identical, logits max rel diff {d_reload:.1e}")
    assert d_reload < 1e-13

    total = 0
    for fn in sorted(os.listdir(folder)):
        size = os.path.getsize(os.path.join(folder, fn))
        total += size
        print(f"    {fn:24s} {size:9d} bytes")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/Fixtures/HfLlama")
    ap.add_argument("--cases", default=",".join(c["name"] for c in CASES), help="comma-separated case names")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    wanted = args.cases.split(",")
    total = 0
    for case in CASES:
        if case["name"] in wanted:
            total += run_case(case, args.out)
    print(f"total {total} bytes ({total / 2**20:.2f} MiB)")
    assert total < 5 * 2**20, "fixtures over 5 MiB"


if __name__ == "__main__":
    main()
