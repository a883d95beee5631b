"""PyTorch CPU reference for bench/compute.bench.ts: train-step time of the same architectures.

Prints one JSON line per figure, like the TypeScript benchmarks. Debian's python3-torch links libblas.so.3, which
is the reference BLAS (libblas3) unless an optimised one provides it: `apt-get install libopenblas0-pthread`
registers OpenBLAS as the libblas.so.3 alternative, and then torch's linear layers (addmm, which calls sgemm)
run on OpenBLAS. The "blas" field names the library this process actually loaded, "blasBuild" what torch was
built against (torch.__config__.show()), "matmul" the path the float32 linear layers take. Usage:
    python3 bench/torch_train.py [--threads <cores>] [--steps 5] [--which dcae-small,vit-small,dcae-demo,vit-demo]
        [--device cpu|cuda]
(dcae-demo and vit-demo: the demo's autoencoder, channels 16-128 on 32x32x5 states, and its emulators, width 96,
depth 4, on 5 frames of 4x4x16 latents.)

With --device cuda the same step runs on the GPU (the step time then waits for the GPU to finish: synchronised);
bench/webgpu.bench.ts and scripts/gpu-check.sh use it to put PyTorch on CUDA beside wellspring's webgpu step times.

The networks mirror the ones the TypeScript benchmark trains (see bench/compute.bench.ts): same layer shapes,
same loss, AdamW update included in the step. Layout is NCHW (PyTorch's native one); the arithmetic is the same.
"""

import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_env import blas_build, blas_library


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor, without affine parameters."""

    def forward(self, x):
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        return (x - mean) * torch.rsqrt(var + 1e-5)


class ResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.norm = ChannelNorm()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.silu(self.conv1(self.norm(x))))


class ConvAutoencoder(nn.Module):
    """DCAE-like: residual blocks per level, 2x2 space-to-channel + 3x3 conv down, 3x3 conv + pixel shuffle up."""

    def __init__(self, in_channels, channels, latent):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.enc = nn.ModuleList(ResBlock(c) for c in channels)
        self.down = nn.ModuleList(nn.Conv2d(4 * channels[i], channels[i + 1], 3, padding=1) for i in range(len(channels) - 1))
        self.lat = nn.Conv2d(channels[-1], latent, 3, padding=1)
        self.dlat = nn.Conv2d(latent, channels[-1], 3, padding=1)
        self.dec = nn.ModuleList(ResBlock(c) for c in channels)
        self.up = nn.ModuleList(nn.Conv2d(channels[i + 1], 4 * channels[i], 3, padding=1) for i in range(len(channels) - 1))
        self.out = nn.Conv2d(channels[0], in_channels, 3, padding=1)

    def forward(self, x):
        h = self.inp(x)
        n = len(self.enc)
        for i in range(n):
            h = self.enc[i](h)
            if i + 1 < n:
                h = self.down[i](F.pixel_unshuffle(h, 2))
        z = self.lat(h)
        z = z / torch.sqrt(1 + (z / 5) ** 2)
        h = self.dlat(z)
        for i in reversed(range(n)):
            h = self.dec[i](h)
            if i > 0:
                h = F.pixel_shuffle(self.up[i - 1](h), 2)
        return self.out(h)


class Block(nn.Module):
    """DiT-style block: adaLN modulation, QK-normalised attention, GELU MLP."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.mod = nn.Linear(width, 6 * width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp1 = nn.Linear(width, 4 * width)
        self.mlp2 = nn.Linear(4 * width, width)

    def forward(self, x, c):
        b, t, w = x.shape
        s1, b1, g1, s2, b2, g2 = self.mod(c).unsqueeze(1).chunk(6, dim=-1)
        h = self.norm(x) * (1 + s1) + b1
        q, k, v = self.qkv(h).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        q = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + 1e-6)
        k = k * torch.rsqrt(k.pow(2).mean(-1, keepdim=True) + 1e-6)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(w // self.heads), dim=-1) @ v
        x = x + g1 * self.proj(a.transpose(1, 2).reshape(b, t, w))
        h = self.norm(x) * (1 + s2) + b2
        return x + g2 * self.mlp2(F.gelu(self.mlp1(h)))


class ViT(nn.Module):
    def __init__(self, in_channels, width, depth, heads, tokens):
        super().__init__()
        self.inp = nn.Linear(2 * in_channels, width)
        self.pos = nn.Parameter(torch.randn(tokens, width) * 0.02)
        self.emb = nn.Sequential(nn.Linear(64, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.out = nn.Linear(width, in_channels)

    def forward(self, x, mask, noise):
        freqs = torch.exp(torch.linspace(0, -math.log(1e4), 32, device=noise.device))
        e = noise[:, None] * freqs[None]
        c = self.emb(torch.cat([torch.sin(e), torch.cos(e)], dim=-1))
        h = self.inp(torch.cat([x * mask, mask], dim=-1)) + self.pos
        for block in self.blocks:
            h = block(h, c)
        return self.out(h)


def time_steps(model, batch, loss_fn, steps, sync=None):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, *batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        value = loss.item()
        if sync is not None:
            sync()
        return value

    step()  # warm-up
    times = []
    cpu0 = time.process_time()
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000)
    cpu_ms = (time.process_time() - cpu0) * 1000 / steps
    times.sort()
    return times[len(times) // 2], cpu_ms


def matmul_path():
    """How float32 nn.Linear runs on the CPU here: addmm calls the loaded BLAS's sgemm (oneDNN is used for float32
    linear layers only through torch.utils.mkldnn, which this script does not use)."""
    return "addmm -> BLAS sgemm (%s threads, oneDNN %s but unused for float32 Linear)" % (
        torch.get_num_threads(), "available" if torch.backends.mkldnn.is_available() else "absent")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--which", default="dcae-small,vit-small,dcae-demo,vit-demo")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    which = args.which.split(",")
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA device")
    sync = torch.cuda.synchronize if cuda else None
    context = {"threads": torch.get_num_threads(), "torch": torch.__version__, "device": str(dev)}
    context.update({"gpu": torch.cuda.get_device_name(dev)} if cuda else
                   {"blas": blas_library(), "blasBuild": blas_build(), "matmul": matmul_path()})
    dcaes = {"dcae-small": ([32, 64, 128, 256], 64), "dcae-demo": ([16, 32, 64, 128], 32)}
    for name, (channels, side) in dcaes.items():
        if name not in which:
            continue
        model = ConvAutoencoder(5, channels, 16).to(dev)
        x = torch.randn(16, 5, side, side, device=dev)
        ms, cpu_ms = time_steps(model, (x,), lambda m, x: F.mse_loss(m(x), x), args.steps, sync)
        print(json.dumps({"bench": "compute", "figure": f"torch-train-step {name}", "value": round(ms, 1),
                          "unit": "ms", "batch": 16, "processCpuMsPerStep": round(cpu_ms), **context}), flush=True)
    vits = {"vit-small": (256, 6, 8), "vit-demo": (96, 4, 4)}
    for name, (width, depth, side) in vits.items():
        if name not in which:
            continue
        tokens = 5 * side * side
        model = ViT(16, width, depth, 4, tokens).to(dev)
        x = torch.randn(32, tokens, 16, device=dev)
        mask = (torch.rand(32, tokens, 1, device=dev) < 0.3).float().expand(32, tokens, 16).contiguous()
        noise = torch.randn(32, device=dev)
        ms, cpu_ms = time_steps(model, (x, mask, noise), lambda m, x, mask, noise: F.mse_loss(m(x, mask, noise), x),
                                args.steps, sync)
        print(json.dumps({"bench": "compute", "figure": f"torch-train-step {name}", "value": round(ms, 1),
                          "unit": "ms", "batch": 32, "processCpuMsPerStep": round(cpu_ms), **context}), flush=True)


if __name__ == "__main__":
    main()
