"""PyTorch + diffusers half of the side-by-side speed table (issue 25); driven by tools/cpu/side_by_side.py.

Answers the same line protocol as `ddpo bench rows --serve` (replies start with "@@ "):
  setup ROW INPUTS.safetensors   build the row on the same folder as ours, load the inputs ours wrote, warm up
  time ROW                       one call; "@@ ms X"
  drop ROW / quit
Needs the refenv (../shared/refenv or $DDPO_REFENV: Debian torch 1.13 + diffusers 0.31 from pinned sources, on
PYTHONPATH via its env.sh, with `compat` imported first). Float32 on the CPU, torch.set_num_threads(--threads).
The rows mirror src/Ddpo/Benchmarks/SideBySideRows.cs; nothing here is timed that ours does not do.
"""
import argparse
import json
import math
import os
import sys
import time

import compat  # noqa: F401  (refenv: must precede diffusers; adds torch-2's scaled_dot_product_attention)
import torch
from safetensors.torch import load_file
from diffusers import AutoencoderKL, DDIMScheduler, FluxTransformer2DModel, SD3Transformer2DModel, UNet2DConditionModel

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class LoraLinear(torch.nn.Module):
    """base(x) + up(down(x)) * alpha / rank: the LoRA ours attaches (diffusers' own LoRA needs peft, absent here)."""

    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base = base
        self.down = torch.nn.Linear(base.in_features, rank, bias=False)
        self.up = torch.nn.Linear(rank, base.out_features, bias=False)
        torch.nn.init.normal_(self.down.weight, std=1.0 / rank)
        torch.nn.init.zeros_(self.up.weight)
        self.scale = alpha / rank

    def forward(self, x, *args, **kwargs):
        return self.base(x) + self.up(self.down(x)) * self.scale


def attach_lora(unet, rank, alpha):
    for module in list(unet.modules()):
        for name in ("to_q", "to_k", "to_v"):
            if isinstance(getattr(module, name, None), torch.nn.Linear):
                setattr(module, name, LoraLinear(getattr(module, name), rank, alpha))
        out = getattr(module, "to_out", None)
        if isinstance(out, torch.nn.ModuleList) and isinstance(out[0], torch.nn.Linear):
            out[0] = LoraLinear(out[0], rank, alpha)


def ddim_logprob(scheduler, eps, t, x, prev, eta):
    """DDIM step mean/std with ddpo-pytorch's clamp of the previous timestep at 0, and the Gaussian log-density of
    prev (mean over all but the batch dimension), as ours (DdimScheduler.Step with DdimFinalStep.Ddpo)."""
    gap = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    acp = scheduler.alphas_cumprod.to(x.dtype)
    a_t = acp[t].view(-1, 1, 1, 1)
    a_prev = acp[(t - gap).clamp(min=0)].view(-1, 1, 1, 1)
    x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    std = eta * variance.sqrt()
    mean = a_prev.sqrt() * x0 + (1 - a_prev - std ** 2).sqrt() * eps
    logp = -((prev.detach() - mean) ** 2) / (2 * std ** 2) - std.log() - math.log(math.sqrt(2 * math.pi))
    return logp.mean(dim=tuple(range(1, logp.dim())))


def build(name, inputs, builtin, fixtures):
    """The row's call, on the same folder and the inputs ours wrote."""
    if name in ("unet_fwd_b32", "unet_fwdbwd_b32", "sample_step_b16", "train_step_b4"):
        unet = UNet2DConditionModel.from_pretrained(os.path.join(builtin, "unet")).eval()
    x, t, ehs = inputs.get("sample"), inputs.get("timestep"), inputs.get("encoder_hidden_states")
    if name == "unet_fwd_b32":
        def call():
            with torch.inference_mode():
                unet(x, t, ehs).sample
        return call
    if name == "unet_fwdbwd_b32":
        def call():
            unet(x, t, ehs).sample.mean().backward()
        return call
    if name == "sd14_fwd_b1":
        # diffusers' defaults are Stable Diffusion 1.x's UNet except these two (as UNet2DConditionConfig.Sd14)
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768).eval()
        def call():
            with torch.inference_mode():
                unet(x, t, ehs).sample
        return call
    if name in ("sample_step_b16", "train_step_b4"):
        scheduler = DDIMScheduler.from_pretrained(os.path.join(builtin, "scheduler"))
        scheduler.set_timesteps(10)
    if name == "sample_step_b16":
        noise = inputs["noise"]
        def call():
            with torch.inference_mode():
                eps = unet(x, t, ehs).sample
                scheduler.step(eps, int(t[0]), x, eta=1.0, variance_noise=noise)
        return call
    if name == "train_step_b4":
        unet.requires_grad_(False)
        attach_lora(unet, 8, 8)
        prev = inputs["prev_sample"]
        def call():
            eps = unet(x, t, ehs).sample
            (-ddim_logprob(scheduler, eps, t, x, prev, 1.0).mean()).backward()
        return call
    if name == "vae_decode_b16":
        vae = AutoencoderKL.from_pretrained(os.path.join(fixtures, "vae", "model")).eval()
        def call():
            with torch.inference_mode():
                vae.decode(inputs["z"]).sample
        return call
    if name == "sd3_fwd":
        model = SD3Transformer2DModel.from_pretrained(os.path.join(fixtures, "sd3_transformer", "model")).eval()
        def call():
            with torch.inference_mode():
                model(hidden_states=inputs["hidden_states"], encoder_hidden_states=inputs["encoder_hidden_states"],
                      pooled_projections=inputs["pooled_projections"], timestep=inputs["timestep"]).sample
        return call
    if name == "flux_fwd":
        model = FluxTransformer2DModel.from_pretrained(os.path.join(fixtures, "flux_transformer", "model")).eval()
        def call():
            with torch.inference_mode():
                model(hidden_states=inputs["hidden_states"], encoder_hidden_states=inputs["encoder_hidden_states"],
                      pooled_projections=inputs["pooled_projections"], timestep=inputs["timestep"],
                      img_ids=inputs["img_ids"], txt_ids=inputs["txt_ids"], guidance=inputs["guidance"]).sample
        return call
    raise ValueError(f"unknown row {name!r}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--builtin", default=os.path.join(ROOT, "models", "builtin"))
    p.add_argument("--fixtures", default=os.path.join(ROOT, "tests", "Ddpo.Tests", "Fixtures", "refenv"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    import diffusers
    rows = {}

    def reply(text):
        sys.stdout.write("@@ " + text + "\n")
        sys.stdout.flush()

    reply("ready " + json.dumps({"torch": torch.__version__, "diffusers": diffusers.__version__, "threads": torch.get_num_threads()}))
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "quit":
                reply("bye")
                return
            if parts[0] == "setup":
                call = build(parts[1], load_file(parts[2]), a.builtin, a.fixtures)
                for _ in range(a.warmup):
                    call()
                rows[parts[1]] = call
                reply("ok")
            elif parts[0] == "time":
                start = time.perf_counter()
                rows[parts[1]]()
                reply("ms %r" % ((time.perf_counter() - start) * 1000))
            elif parts[0] == "drop":
                rows.pop(parts[1], None)
                reply("ok")
            else:
                reply(f"error unknown command {parts[0]!r}")
        except Exception as e:  # the driver prints it and skips the row
            reply("error " + repr(e).replace("\n", " "))


if __name__ == "__main__":
    main()
