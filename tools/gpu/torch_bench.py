#!/usr/bin/env python3
"""PyTorch + diffusers side of the GPU check (issue 9): the same rows as `ddpo gpu-check`, on the same card.

Usage: python3 tools/gpu/torch_bench.py --out FILE.json [--smoke] [--device cuda|cpu]

Rows (keys shared with src/Ddpo/Diagnostics/SpeedSuite.cs; sizes with GpuCheckSizes.cs: keep them in step):
UNet forward fp16/bf16, LoRA rank-4 training step (forward + backward + AdamW) at two batches, VAE decode,
one guided sampling run with DDPO log-probs, and one reduced DDPO-IS epoch (sampling, JPEG reward, training)
with time per phase and peak memory. Random weights: speed does not depend on them.

Without PyTorch (`import torch` fails, e.g. on the CPU machine of the tests) it writes a JSON file whose
"skipped" field says why, and exits 0, so that the check's other half still runs. The results file is
rewritten after every row, so a run cut short keeps what it measured.
"""
import argparse, json, os, platform, sys, threading, time, traceback

SIZES = {
    # name: unet (SD 1.4 or tiny), vae, text encoder, batches, steps, epoch sizes, warm-up and iterations
    "full": dict(unet=dict(sample_size=64, in_channels=4, out_channels=4,
                           down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                           up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                           block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                           cross_attention_dim=768, attention_head_dim=8),
                 vae=dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                          up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2, sample_size=512),
                 text=dict(hidden=768, layers=12, heads=12),
                 forward_batch=16, train_batches=(8, 16), decode_batch=8, sample_images=8, steps=50, guidance=5.0,
                 epoch_samples=32, epoch_sample_batch=8, epoch_train_batch=8, epoch_total_batch=16, lora_rank=4,
                 warmup=2, iterations=5),
    "smoke": dict(unet=dict(sample_size=8, in_channels=4, out_channels=4,
                            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                            block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=16,
                            attention_head_dim=2, norm_num_groups=8),
                  vae=dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                           up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, layers_per_block=1,
                           norm_num_groups=8, sample_size=16),
                  text=dict(hidden=16, layers=1, heads=2),
                  forward_batch=4, train_batches=(2, 4), decode_batch=2, sample_images=2, steps=4, guidance=5.0,
                  epoch_samples=4, epoch_sample_batch=2, epoch_train_batch=2, epoch_total_batch=4, lora_rank=4,
                  warmup=1, iterations=2),
}

RESULT = {"environment": {"python": platform.python_version()}, "rows": [], "errors": [], "skipped": None}


def save(path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(RESULT, f, indent=1)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="results JSON file")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds per row)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    a = ap.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    try:
        import torch  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        RESULT["skipped"] = f"import torch failed: {type(e).__name__}: {e}"
        print("torch_bench:", RESULT["skipped"], "- PyTorch half skipped", flush=True)
        save(a.out)
        return 0
    try:
        import diffusers  # noqa: F401
    except Exception as e:
        RESULT["skipped"] = f"import diffusers failed: {type(e).__name__}: {e}"
        print("torch_bench:", RESULT["skipped"], "- PyTorch half skipped", flush=True)
        save(a.out)
        return 0
    Bench(a).run()
    return 0


class Bench:
    def __init__(self, a):
        import torch
        self.torch = torch
        self.out = a.out
        self.s = SIZES["smoke" if a.smoke else "full"]
        self.dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.cuda = self.dev.type == "cuda"
        # half precision where ours uses it: fp16 frozen weights on CUDA, fp32 on the CPU
        self.half = torch.float16 if self.cuda else torch.float32
        if self.cuda:
            # the same switches `ddpo gpu-check` sets (CudaPerformance): TF32, cuDNN autotuning
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(0)
        self.environment()

    # ---------------------------------------------------------------- helpers
    def environment(self):
        torch = self.torch
        env = RESULT["environment"]
        env.update(torch=torch.__version__, torch_cuda=str(torch.version.cuda), device=str(self.dev),
                   torch_lib=os.path.join(os.path.dirname(torch.__file__), "lib"),
                   cudnn=str(torch.backends.cudnn.version()), sizes="smoke" if self.s is SIZES["smoke"] else "full",
                   tf32_matmul=str(torch.backends.cuda.matmul.allow_tf32).lower(),
                   cudnn_benchmark=str(torch.backends.cudnn.benchmark).lower())
        for mod in ("diffusers", "transformers", "peft", "PIL"):
            try:
                env[mod] = __import__(mod).__version__
            except Exception as e:
                env[mod] = f"not available ({type(e).__name__})"
        if self.cuda:
            env["gpu"] = torch.cuda.get_device_name(self.dev)
            env["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(self.dev)))
            env["gpu_memory_gib"] = f"{torch.cuda.get_device_properties(self.dev).total_memory / 2**30:.1f}"
        save(self.out)

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.dev)

    def time(self, fn, warmup=None, iterations=None):
        warmup = self.s["warmup"] if warmup is None else warmup
        iterations = self.s["iterations"] if iterations is None else iterations
        for _ in range(warmup):
            fn()
        self.sync()
        times = []
        for _ in range(max(1, iterations)):
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        return times[len(times) // 2]

    def row(self, key, what, ms, **extra):
        RESULT["rows"].append({"key": key, "what": what, "ms": ms, "extra": extra})
        print(f"  {key}: {ms:.1f} ms {extra}", flush=True)
        save(self.out)

    def attempt(self, name, fn):
        t0 = time.time()
        try:
            fn()
        except Exception as e:
            traceback.print_exc()
            RESULT["errors"].append(f"{name}: {type(e).__name__}: {e}")
            save(self.out)
        print(f"== {name} {time.time() - t0:.1f} s", flush=True)
        if self.cuda:
            self.torch.cuda.empty_cache()

    def dt(self, t):
        return {self.torch.float16: "fp16", self.torch.bfloat16: "bf16", self.torch.float32: "fp32"}[t]

    def unet(self, dtype):
        from diffusers import UNet2DConditionModel
        with self.torch.device(self.dev):
            m = UNet2DConditionModel(**self.s["unet"])
        return m.to(dtype)

    def unet_inputs(self, batch, dtype):
        torch, c = self.torch, self.s["unet"]
        x = torch.randn(batch, c["in_channels"], c["sample_size"], c["sample_size"], device=self.dev, dtype=dtype)
        ctx = torch.randn(batch, 77, c["cross_attention_dim"], device=self.dev, dtype=dtype)
        t = torch.full((batch,), 500, device=self.dev, dtype=torch.long)
        return x, t, ctx

    def add_lora(self, unet):
        """LoRA rank r on to_q/k/v/out.0 as ddpo-pytorch; fp32 LoRA weights on frozen (half) weights."""
        torch, r = self.torch, self.s["lora_rank"]
        unet.requires_grad_(False)
        try:
            from peft import LoraConfig
            unet.add_adapter(LoraConfig(r=r, lora_alpha=r, init_lora_weights="gaussian",
                                        target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
            params = [p for n, p in unet.named_parameters() if "lora" in n]
        except ImportError:
            params = self._own_lora(unet, r)
        for p in params:
            p.data = p.data.float()
            p.requires_grad_(True)
        return params

    def _own_lora(self, unet, r):
        torch = self.torch

        class Lora(torch.nn.Module):
            def __init__(self, base):
                super().__init__()
                self.base = base
                self.down = torch.nn.Parameter(torch.randn(r, base.in_features, device=base.weight.device) / r)
                self.up = torch.nn.Parameter(torch.zeros(base.out_features, r, device=base.weight.device))

            def forward(self, x):
                return self.base(x) + (x.float() @ self.down.t() @ self.up.t()).to(x.dtype)

        params = []
        for name, module in list(unet.named_modules()):
            for child in ("to_q", "to_k", "to_v"):
                if hasattr(module, child) and isinstance(getattr(module, child), torch.nn.Linear):
                    setattr(module, child, Lora(getattr(module, child)))
                    params += [getattr(module, child).down, getattr(module, child).up]
            if hasattr(module, "to_out") and isinstance(module.to_out, torch.nn.ModuleList) and isinstance(module.to_out[0], torch.nn.Linear):
                module.to_out[0] = Lora(module.to_out[0])
                params += [module.to_out[0].down, module.to_out[0].up]
        RESULT["environment"]["lora"] = "own LoRA module (peft not available)"
        return params

    def text_encoder(self):
        from transformers import CLIPTextConfig, CLIPTextModel
        t = self.s["text"]
        cfg = CLIPTextConfig(vocab_size=49408, hidden_size=t["hidden"], intermediate_size=4 * t["hidden"],
                             num_hidden_layers=t["layers"], num_attention_heads=t["heads"], max_position_embeddings=77,
                             hidden_act="quick_gelu", projection_dim=t["hidden"])
        return CLIPTextModel(cfg).to(self.dev, self.half).eval()

    def vae(self):
        from diffusers import AutoencoderKL
        with self.torch.device(self.dev):
            v = AutoencoderKL(**self.s["vae"])
        return v.to(self.half).eval()

    # ---------------------------------------------------------------- rows
    def run(self):
        s = self.s
        print(f"torch_bench: {RESULT['environment'].get('gpu', self.dev)}, torch {self.torch.__version__}", flush=True)
        self.attempt("unet_forward", self.unet_forward)
        self.attempt("lora_train_step", self.lora_step)
        self.pipe = None
        self.attempt("pipeline", self.build_pipeline)
        if self.pipe is not None:
            self.attempt("vae_decode", self.vae_decode)
            self.attempt("sampling", self.sampling)
            self.attempt("ddpo_epoch", self.epoch)
        save(self.out)

    def unet_forward(self):
        torch, s = self.torch, self.s
        for dtype in (torch.float16, torch.bfloat16):
            unet = self.unet(dtype).eval()
            x, t, ctx = self.unet_inputs(s["forward_batch"], dtype)
            with torch.inference_mode():
                from torch.utils.flop_counter import FlopCounterMode
                with FlopCounterMode(display=False) as fc:
                    unet(x, t, encoder_hidden_states=ctx)
                flops = fc.get_total_flops()
                ms = self.time(lambda: unet(x, t, encoder_hidden_states=ctx))
            self.row(f"unet_forward_{self.dt(dtype)}_b{s['forward_batch']}", f"UNet forward, {self.dt(dtype)}, batch {s['forward_batch']}",
                     ms, gflop_per_sample=flops / s["forward_batch"] / 1e9, tflops=flops / (ms / 1000) / 1e12)
            del unet

    def lora_step(self):
        torch, s = self.torch, self.s
        unet = self.unet(self.half)
        params = self.add_lora(unet)
        opt = torch.optim.AdamW(params, lr=3e-4)
        unet.train()
        for batch in s["train_batches"]:
            x, t, ctx = self.unet_inputs(batch, self.half)

            def step():
                with torch.autocast(self.dev.type, dtype=self.half, enabled=self.cuda):
                    loss = unet(x, t, encoder_hidden_states=ctx).sample.float().pow(2).mean()
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            ms = self.time(step)
            self.row(f"lora_train_step_b{batch}", f"LoRA r{s['lora_rank']} step (fwd+bwd+AdamW), {self.dt(self.half)} weights, batch {batch}",
                     ms, lora_params=sum(p.numel() for p in params))
        del unet, opt

    def build_pipeline(self):
        from diffusers import DDIMScheduler
        self.pipe = dict(unet=self.unet(self.half).eval(), vae=self.vae(), text=self.text_encoder(),
                         scheduler=DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                                 beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                                                 steps_offset=1, prediction_type="epsilon"))
        self.pipe["unet"].requires_grad_(False)
        self.pipe["vae"].requires_grad_(False)
        self.pipe["text"].requires_grad_(False)

    def vae_decode(self):
        torch, s = self.torch, self.s
        latent = s["unet"]["sample_size"]
        z = torch.randn(s["decode_batch"], 4, latent, latent, device=self.dev, dtype=self.half)
        vae = self.pipe["vae"]
        with torch.inference_mode():
            ms = self.time(lambda: vae.decode(z).sample, warmup=1, iterations=min(3, s["iterations"]))
        size = s["vae"]["sample_size"]
        self.row(f"vae_decode_b{s['decode_batch']}", f"VAE decode {s['decode_batch']} x {size}^2, {self.dt(self.half)}", ms)

    # ddpo-pytorch's ddim_step_with_logprob (float32 math, per-sample timesteps, previous timestep clamped at 0)
    def ddim_step(self, eps, t, x, eta, prev=None, generator=None):
        torch = self.torch
        sch = self.pipe["scheduler"]
        ac = self.alphas
        prev_t = (t - sch.config.num_train_timesteps // sch.num_inference_steps).clamp(min=0)
        shape = (-1,) + (1,) * (x.dim() - 1)
        a_t, a_prev = ac.gather(0, t).view(shape), ac.gather(0, prev_t).view(shape)
        eps, x = eps.float(), x.float()
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        var = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
        std = eta * var.sqrt()
        mean = a_prev.sqrt() * x0 + (1 - a_prev - std ** 2).sqrt() * eps
        if prev is None:
            prev = mean + std * torch.randn(x.shape, device=x.device, generator=generator)
        logp = -((prev.detach() - mean) ** 2) / (2 * std ** 2) - std.log() - 0.9189385332046727
        return prev, logp.mean(dim=tuple(range(1, x.dim())))

    def guided_eps(self, x, t, embeds, negative):
        # under autocast, as ddpo-pytorch samples and trains (accelerate's mixed_precision = "fp16")
        torch = self.torch
        g = self.s["guidance"]
        with torch.autocast(self.dev.type, dtype=self.half, enabled=self.cuda):
            both = self.pipe["unet"](torch.cat([x, x]).to(self.half), torch.cat([t, t]),
                                     encoder_hidden_states=torch.cat([negative, embeds])).sample.float()
        neg, pos = both.chunk(2)
        return neg + g * (pos - neg)

    def encode(self, batch):
        torch = self.torch
        ids = torch.randint(0, 49406, (batch, 77), device=self.dev)  # random token ids: the cost is 77 tokens
        with torch.no_grad():
            return self.pipe["text"](input_ids=ids).last_hidden_state.to(self.half)

    def sample(self, n, record=True, seed=1):
        """pipeline_with_logprob: guided DDIM (eta 1), recording latents and log-probs, then VAE decode to [0, 1]."""
        torch, s = self.torch, self.s
        sch = self.pipe["scheduler"]
        sch.set_timesteps(s["steps"], device=self.dev)
        self.alphas = sch.alphas_cumprod.to(self.dev, torch.float32)
        gen = torch.Generator(device=self.dev).manual_seed(seed)
        embeds, negative = self.encode(n), self.encode(1).expand(n, -1, -1)
        size = s["unet"]["sample_size"]
        x = torch.randn(n, 4, size, size, device=self.dev, generator=gen)
        latents, logps = [x], []
        with torch.no_grad():
            for t in sch.timesteps:
                tt = t.expand(n)
                eps = self.guided_eps(x, tt, embeds, negative)
                x, logp = self.ddim_step(eps, tt, x, 1.0, generator=gen)
                latents.append(x)
                logps.append(logp)
            images = (self.pipe["vae"].decode((x / 0.18215).to(self.half)).sample.float() / 2 + 0.5).clamp(0, 1).cpu()
        return images, torch.stack(latents, 1), torch.stack(logps, 1), embeds, negative

    def sampling(self):
        s = self.s
        n = s["sample_images"]
        ms = self.time(lambda: self.sample(n), warmup=1, iterations=min(2, s["iterations"]))
        self.row(f"sampling_{s['steps']}x{n}", f"guided sampling (g {s['guidance']}), {n} images, {s['steps']} steps, with log-probs and VAE decode, {self.dt(self.half)}",
                 ms, images_per_s=n / (ms / 1000))

    def jpeg_reward(self, images):
        import io
        try:
            from PIL import Image
        except ImportError:
            return [0.0] * len(images)
        out = []
        for im in (images * 255).round().to(self.torch.uint8).permute(0, 2, 3, 1).numpy():
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="JPEG", quality=95)
            out.append(-len(buf.getvalue()) / 1000)
        return out

    def epoch(self):
        """One reduced DDPO-IS epoch as ddpo-pytorch runs it: sample, reward, then train on every timestep."""
        torch, s = self.torch, self.s
        peak = MemoryPeak(torch, self.dev) if self.cuda else None
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.dev)
        t_start = time.perf_counter()
        unet = self.pipe["unet"]
        params = self.add_lora(unet)
        opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=1e-4)
        scaler = torch.amp.GradScaler(self.dev.type, enabled=self.cuda and self.half == torch.float16)
        # sampling + rewards (ddpo-pytorch computes rewards asynchronously; here after each batch)
        t0 = time.perf_counter()
        batches, reward_s = [], 0.0
        unet.eval()
        for b in range(s["epoch_samples"] // s["epoch_sample_batch"]):
            images, lat, logp, emb, neg = self.sample(s["epoch_sample_batch"], seed=100 + b)
            r0 = time.perf_counter()
            rewards = self.jpeg_reward(images)
            reward_s += time.perf_counter() - r0
            batches.append((lat, logp, emb, neg, torch.tensor(rewards)))
        self.sync()
        sampling_s = time.perf_counter() - t0 - reward_s
        lat = torch.cat([b[0] for b in batches]); logp_old = torch.cat([b[1] for b in batches])
        emb = torch.cat([b[2] for b in batches]); neg = torch.cat([b[3] for b in batches])
        rewards = torch.cat([b[4] for b in batches])
        adv = ((rewards - rewards.mean()) / (rewards.std() + 1e-8)).to(self.dev)
        # training: every timestep of every sample, micro-batches with guidance, accumulate to the total batch
        t1 = time.perf_counter()
        unet.train()
        n, steps, tb = lat.shape[0], s["steps"], s["epoch_train_batch"]
        timesteps = self.pipe["scheduler"].timesteps
        accumulate = (s["epoch_total_batch"] // tb) * steps
        perm = torch.randperm(n, device=self.dev)
        micro = 0
        for start in range(0, n, tb):
            idx = perm[start:start + tb]
            for j in range(steps):
                tt = timesteps[j].expand(len(idx))
                eps = self.guided_eps(lat[idx, j], tt, emb[idx], neg[idx])
                _, logp = self.ddim_step(eps, tt, lat[idx, j], 1.0, prev=lat[idx, j + 1])
                ratio = torch.exp(logp - logp_old[idx, j])
                a = adv[idx].clamp(-5, 5)
                loss = torch.maximum(-a * ratio, -a * ratio.clamp(1 - 1e-4, 1 + 1e-4)).mean() / accumulate
                scaler.scale(loss).backward()
                micro += 1
                if micro % accumulate == 0:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    scaler.step(opt)
                    scaler.update()
                    opt.zero_grad(set_to_none=True)
        self.sync()
        training_s = time.perf_counter() - t1
        total_ms = (time.perf_counter() - t_start) * 1000
        extra = dict(sampling_s=sampling_s, reward_s=reward_s, training_s=training_s)
        if self.cuda:
            extra.update(peak_memory_gib=peak.stop(), max_allocated_gib=torch.cuda.max_memory_allocated(self.dev) / 2**30,
                         max_reserved_gib=torch.cuda.max_memory_reserved(self.dev) / 2**30)
        self.row("ddpo_epoch", f"DDPO-IS epoch: {s['epoch_samples']} samples x {steps} steps, g {s['guidance']}, LoRA r{s['lora_rank']}, "
                 f"sample batch {s['epoch_sample_batch']}, train batch {tb}, {s['epoch_total_batch']} per optimizer step, JPEG reward",
                 total_ms, **extra)


class MemoryPeak:
    """Device memory in use (cudaMemGetInfo: total - free), polled: the same measure as ours (NVML)."""

    def __init__(self, torch, dev):
        self.torch, self.dev, self.peak, self.done = torch, dev, 0, False
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self):
        while not self.done:
            free, total = self.torch.cuda.mem_get_info(self.dev)
            self.peak = max(self.peak, total - free)
            time.sleep(0.005)

    def stop(self):
        self.done = True
        self.thread.join()
        return self.peak / 2**30


if __name__ == "__main__":
    sys.exit(main())
