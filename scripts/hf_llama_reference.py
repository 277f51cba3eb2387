"""A ~1B-parameter Hugging Face Llama comparison, float64 against bf16, made on a CUDA machine.

Run (one GPU with ~40 GB free; PyTorch, transformers >= 4.45 (5.x included), safetensors):

    python3 scripts/hf_llama_reference.py --out DIR [--preset tinyllama-1.1b] [--seq 256] [--batch 2] [--seed N]

It builds a LlamaForCausalLM shaped like TinyLlama 1.1B (hidden 2048, 22 layers, 32 heads, 4 kv heads,
intermediate 5632, vocab 32000, rope_theta 10000, rms_norm_eps 1e-5, untied) with seeded random weights
drawn on the GPU (embeddings N(0,1), linear weights N(0, 1/fan_in), norm weights 1 + 0.2 N(0,1),
lm_head N(0, 9/hidden) so the logits are far from flat), rounds them to bf16 and writes the model
folder with save_pretrained in bf16: DIR/config.json, DIR/generation_config.json and the model
safetensors (one file or transformers' shards). Both runs below load that folder with from_pretrained,
so they compare exactly the weights on disk:
  (a) float64 on the GPU, attn_implementation="sdpa", with the float64 patches of scripts/hf_float64.py
      (RMSNorm and rotary angles in float64, inverse frequencies from our float64 formula);
  (b) plain transformers in bf16, attn_implementation="sdpa" (no patches);
each a forward and a backward of the mean cross-entropy over all batch*seq tokens,
torch.nn.functional.cross_entropy against random targets (not transformers' shifted `labels` loss; the
bf16 run takes it on the logits upcast to float32, as transformers' own loss does).

DIR/reference.safetensors holds:
  input_ids            I64 [batch, seq]
  targets              I64 [batch, seq]
  logits               F64 [batch, seq, vocab]    float64 run
  bf16_logits          F32 [batch, seq, vocab]    bf16 run (its bf16 logits, widened)
  loss                 F64 []                     float64 run
  bf16_loss            F64 []                     bf16 run
  grad.<name>          F64 (parameter's shape)    float64 run
  bf16_grad.<name>     F32 (parameter's shape)    bf16 run (its bf16 gradients, widened)
for <name> in: every parameter of model.layers.0 and of the last layer, model.norm.weight,
lm_head.weight, model.embed_tokens.weight. Metadata: torch_version, transformers_version, preset,
seed, seq, batch, device, attn_implementation, float64 (what is kept in float64), bf16 (how the bf16
run was made). With the defaults the file is about 3 GB.

It prints transformers' bf16 relative error ||bf16 - f64|| / ||f64|| of the logits and of each saved
gradient, the bf16 top-1 agreement with float64 over all tokens, the losses, and timings.
"""

import argparse
import gc
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_float64  # noqa: E402

import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

PRESETS = {
    "tinyllama-1.1b": dict(hidden=2048, layers=22, heads=32, kv_heads=4, intermediate=5632, vocab=32000,
                           rope_theta=10000.0, eps=1e-5, tied=False, max_pos=2048),
}


def config_kwargs(p):
    return dict(vocab_size=p["vocab"], hidden_size=p["hidden"], intermediate_size=p["intermediate"],
                num_hidden_layers=p["layers"], num_attention_heads=p["heads"], num_key_value_heads=p["kv_heads"],
                head_dim=p["hidden"] // p["heads"], hidden_act="silu", max_position_embeddings=p["max_pos"],
                rms_norm_eps=p["eps"], tie_word_embeddings=p["tied"], attention_bias=False, mlp_bias=False,
                attention_dropout=0.0, use_cache=False, bos_token_id=1, eos_token_id=2)


def sync():
    torch.cuda.synchronize()
    return time.perf_counter()


def free_gpu():
    gc.collect()
    torch.cuda.empty_cache()


def mean_ce(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def saved_names(model, layers):
    keep = []
    for n, _ in model.named_parameters():
        if (n.startswith("model.layers.0.") or n.startswith(f"model.layers.{layers - 1}.")
                or n in ("model.norm.weight", "lm_head.weight", "model.embed_tokens.weight")):
            keep.append(n)
    return keep


def build_and_save(config, p, seed, out):
    t0 = sync()
    with torch.device("cuda"):
        model = LlamaForCausalLM(config)
    model.to(torch.bfloat16)
    gen = torch.Generator(device="cuda").manual_seed(seed)
    with torch.no_grad():
        for name, prm in model.named_parameters():
            r = torch.randn(tuple(prm.shape), generator=gen, device="cuda", dtype=torch.float32)
            if name.endswith("norm.weight"):
                v = 1.0 + 0.2 * r
            elif name == "model.embed_tokens.weight":
                v = r
            elif name == "lm_head.weight":
                v = r * (3.0 / math.sqrt(prm.shape[1]))
            else:
                v = r / math.sqrt(prm.shape[1])
            prm.copy_(v.to(torch.bfloat16))  # round to nearest even
            del r, v
    n_params = sum(prm.numel() for prm in model.parameters())
    t1 = sync()
    model.save_pretrained(out, **hf_float64.save_pretrained_kwargs(model))
    t2 = time.perf_counter()
    print(f"built {n_params / 1e9:.3f}B parameters on the GPU in {t1 - t0:.1f} s, saved bf16 folder in {t2 - t1:.1f} s")
    print("  folder: " + ", ".join(f"{fn} ({os.path.getsize(os.path.join(out, fn)) / 2**20:.1f} MiB)"
                                   for fn in sorted(os.listdir(out))))
    del model
    free_gpu()


def load(out, dtype):
    t0 = time.perf_counter()
    model = LlamaForCausalLM.from_pretrained(out, attn_implementation="sdpa", **hf_float64.dtype_kwarg(dtype))
    model.to("cuda")
    model.eval()
    for n, prm in model.named_parameters():
        assert prm.dtype == dtype, f"{n} loaded as {prm.dtype}, not {dtype}"
    t1 = sync()
    print(f"loaded the folder in {dtype} in {t1 - t0:.1f} s (attn {model.config._attn_implementation})")
    return model


def forward_backward(model, input_ids, targets, names, upcast):
    model.zero_grad(set_to_none=True)
    t0 = sync()
    logits = model(input_ids=input_ids, use_cache=False).logits
    loss = mean_ce(logits.float() if upcast else logits, targets)
    t1 = sync()
    loss.backward()
    t2 = sync()
    params = dict(model.named_parameters())
    grads = {n: params[n].grad.detach().to("cpu") for n in names}
    out_logits = logits.detach().to("cpu")
    out_loss = loss.detach().to("cpu", torch.float64)
    print(f"  forward {t1 - t0:.2f} s, backward {t2 - t1:.2f} s, loss {out_loss.item():.6f}, logits {logits.dtype}")
    del logits, loss
    model.zero_grad(set_to_none=True)
    return out_logits, out_loss, grads


def rel_err(approx, exact):
    a = approx.to(torch.float64)
    e = exact.to(torch.float64)
    return (torch.linalg.vector_norm(a - e) / torch.linalg.vector_norm(e)).item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="tinyllama-1.1b", choices=sorted(PRESETS))
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    p = PRESETS[args.preset]
    os.makedirs(args.out, exist_ok=True)
    t_start = time.perf_counter()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.cuda.get_device_name()}")

    rope = {"rope_theta": p["rope_theta"]}
    print("rope config: " + hf_float64.check_rope_config_forms(config_kwargs(p), rope))
    config = hf_float64.llama_config(config_kwargs(p), rope)
    build_and_save(config, p, args.seed, args.out)

    gen = torch.Generator().manual_seed(args.seed)
    input_ids = torch.randint(0, p["vocab"], (args.batch, args.seq), generator=gen, dtype=torch.int64)
    targets = torch.randint(0, p["vocab"], (args.batch, args.seq), generator=gen, dtype=torch.int64)
    ids_gpu, tgt_gpu = input_ids.cuda(), targets.cuda()

    print("(a) float64, patched")
    model = load(args.out, torch.float64)
    names = saved_names(model, p["layers"])
    with hf_float64.Float64Patches(model):
        logits64, loss64, grads64 = forward_backward(model, ids_gpu, tgt_gpu, names, upcast=False)
    assert logits64.dtype == torch.float64
    del model
    free_gpu()

    print("(b) bf16, plain transformers")
    model = load(args.out, torch.bfloat16)
    logits16, loss16, grads16 = forward_backward(model, ids_gpu, tgt_gpu, names, upcast=True)
    del model
    free_gpu()

    probs = logits64.softmax(-1)
    print(f"float64: logits std {logits64.std().item():.3f}, mean max softmax prob "
          f"{probs.max(-1).values.mean().item():.3f} (uniform {1.0 / p['vocab']:.2e})")
    del probs
    top1 = (logits16.float().argmax(-1) == logits64.argmax(-1)).double().mean().item()
    print(f"bf16 vs float64: logits rel err {rel_err(logits16, logits64):.3e}, top-1 agreement {top1 * 100:.2f}% "
          f"of {args.batch * args.seq} tokens, loss {loss16.item():.6f} vs {loss64.item():.6f} "
          f"(rel {abs(loss16.item() - loss64.item()) / abs(loss64.item()):.2e})")
    for n in names:
        print(f"  grad rel err {rel_err(grads16[n], grads64[n]):.3e}  {n}  {tuple(grads64[n].shape)}")

    tensors = {"input_ids": input_ids.contiguous(), "targets": targets.contiguous(),
               "logits": logits64.contiguous(), "bf16_logits": logits16.float().contiguous(),
               "loss": loss64.reshape(()).contiguous(), "bf16_loss": loss16.reshape(()).contiguous()}
    for n in names:
        tensors["grad." + n] = grads64[n].to(torch.float64).contiguous()
        tensors["bf16_grad." + n] = grads16[n].float().contiguous()
    metadata = {"torch_version": torch.__version__, "transformers_version": transformers.__version__,
                "preset": args.preset, "seed": str(args.seed), "seq": str(args.seq), "batch": str(args.batch),
                "device": torch.cuda.get_device_name(), "attn_implementation": "sdpa",
                "float64": hf_float64.FLOAT64_NOTE,
                "bf16": "plain transformers in bf16 (no patches), loss on logits upcast to float32"}
    t0 = time.perf_counter()
    path = os.path.join(args.out, "reference.safetensors")
    save_file(tensors, path, metadata=metadata)
    print(f"wrote {path} ({os.path.getsize(path) / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f} s; "
          f"total {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
