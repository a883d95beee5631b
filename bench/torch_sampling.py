#!/usr/bin/env python3
"""PyTorch (CPU) counterpart of bench/diffusion.bench.ts: the same rollout sampling loop with the same network.

A space-time ViT equivalent to wellspring's `vit-small` (src/models/nn/vit.ts: width 256, 6 DiT blocks, 4 heads,
QK RMS-norm, mixed rotary embedding, learned projection of sinusoidal positions, noise embedding MLP, adaptive
LayerNorm modulation, mask channels), wrapped in EDM preconditioning on the log-logit schedule, sampled with 16
steps of 3rd-order Adams-Bashforth in rho = sigma / alpha with the context frame re-imposed at every step, for an
ensemble of 16 members rolled out window by window (window 5, context 1). Prints one JSON line.

Matrix products take one of two paths (--path): "onednn" (nn.Linear through torch.utils.mkldnn, attention as
grouped 1x1 convolutions, both on oneDNN) or "plain" (nn.Linear's addmm and torch.matmul, i.e. the BLAS that
libblas.so.3 resolves to: the reference BLAS on a bare Debian, OpenBLAS once libopenblas0-pthread is installed).
The output names the path, the BLAS library loaded and the one torch was built against.

Usage: python3 bench/torch_sampling.py [--threads <cores>] [--windows 1] [--ensemble 16] [--steps 16] [--path onednn|plain]
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
import torch.utils.mkldnn


def sinusoidal(values: torch.Tensor, features: int, max_period: float) -> torch.Tensor:
    half = features // 2
    freqs = torch.tensor([max_period ** (-i / max(half - 1, 1)) for i in range(half)], dtype=values.dtype)
    angles = values * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def rms_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)


def layer_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], eps=eps)


def grouped_conv_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v for [B, heads, N, d] as two grouped 1x1 convolutions (one group per batch and
    head), which run on oneDNN; Debian's torch does batched matmuls with the reference BLAS."""
    b, h, n, d = q.shape
    g = b * h
    q = q.reshape(g, n, d) / math.sqrt(d)
    k = k.reshape(g, n, d)
    v = v.reshape(g, n, d)
    scores = F.conv1d(q.transpose(1, 2).reshape(1, g * d, n), k.reshape(g * n, d, 1), groups=g)  # [1, g*n(j), n(i)]
    weights = torch.softmax(scores.reshape(g, n, n), dim=1)
    out = F.conv1d(weights.reshape(1, g * n, n), v.transpose(1, 2).reshape(g * d, n, 1), groups=g)  # [1, g*d, n]
    return out.reshape(b, h, d, n).transpose(2, 3)


class Block(nn.Module):
    grouped_conv_attention = False

    def __init__(self, width: int, heads: int, ffn: int, emb: int):
        super().__init__()
        self.heads = heads
        self.modulation = nn.Linear(emb, 6 * width)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width)
        self.theta = nn.Parameter(torch.randn(3, width // 2) * 0.1)
        self.fc1 = nn.Linear(width, ffn * width)
        self.fc2 = nn.Linear(ffn * width, width)

    def attention(self, h: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        b, n, w = h.shape
        hd = w // self.heads
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        to_heads = lambda t: t.reshape(b, n, self.heads, hd).transpose(1, 2)
        q, k, v = rms_norm(to_heads(q)), rms_norm(to_heads(k)), to_heads(v)
        angles = (coords @ self.theta).reshape(n, self.heads, hd // 2).transpose(0, 1)
        cos, sin = torch.cos(angles), torch.sin(angles)

        def rotate(t):
            a, c = t.chunk(2, dim=-1)
            return torch.cat([a * cos - c * sin, a * sin + c * cos], dim=-1)

        q, k = rotate(q), rotate(k)
        if self.grouped_conv_attention:
            y = grouped_conv_attention(q, k, v)
        else:
            weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
            y = weights @ v
        return self.out(y.transpose(1, 2).reshape(b, n, w))

    def forward(self, x, emb, coords):
        s1, c1, g1, s2, c2, g2 = self.modulation(F.silu(emb)).unsqueeze(1).chunk(6, dim=-1)
        x = x + g1 * self.attention(layer_norm(x) * (1 + c1) + s1, coords)
        x = x + g2 * self.fc2(F.silu(self.fc1(layer_norm(x) * (1 + c2) + s2)))
        return x


class SpaceTimeViT(nn.Module):
    def __init__(self, channels=16, width=256, depth=6, heads=4, ffn=4, emb=256, pos_features=32):
        super().__init__()
        self.channels, self.emb, self.pos_features = channels, emb, pos_features
        self.in_proj = nn.Linear(2 * channels, width)
        self.positional = nn.Linear(3 * pos_features, width)
        self.noise_fc1 = nn.Linear(emb, emb)
        self.noise_fc2 = nn.Linear(emb, emb)
        self.blocks = nn.ModuleList([Block(width, heads, ffn, emb) for _ in range(depth)])
        self.final_modulation = nn.Linear(emb, 2 * width)
        self.out_proj = nn.Linear(width, channels)

    def forward(self, x, mask, c_noise):
        b, l, h, w, c = x.shape
        n = l * h * w
        tokens = self.in_proj(torch.cat([x, mask], dim=-1).reshape(b, n, 2 * c))
        grid = torch.stack(torch.meshgrid(torch.arange(l), torch.arange(h), torch.arange(w), indexing="ij"), -1)
        coords = grid.reshape(n, 3).to(x.dtype)
        pos = sinusoidal(coords.reshape(n, 3, 1), self.pos_features, 1e2).reshape(n, 3 * self.pos_features)
        tokens = tokens + self.positional(pos)
        emb = self.noise_fc2(F.silu(self.noise_fc1(sinusoidal(c_noise.reshape(b, 1), self.emb, 1e3))))
        for block in self.blocks:
            tokens = block(tokens, emb, coords)
        shift, scale = self.final_modulation(F.silu(emb)).unsqueeze(1).chunk(2, dim=-1)
        return self.out_proj(layer_norm(tokens) * (1 + scale) + shift).reshape(b, l, h, w, c)


T_MIN, T_MAX = 1e-3 / (1 + 1e-3), 1e3 / (1 + 1e3)


def sigma_of(t: float) -> float:
    u = T_MIN + t * (T_MAX - T_MIN)
    return u / (1 - u)


def ab_weights(grid, i, order):
    n = min(order, i + 1)
    h = grid[i + 1] - grid[i]
    nodes = [(grid[k] - grid[i]) / h for k in range(i - n + 1, i + 1)]
    out = []
    for j in range(n):
        others = [a for k, a in enumerate(nodes) if k != j]
        poly = [1.0]
        for r in others:
            nxt = [0.0] * (len(poly) + 1)
            for p, cp in enumerate(poly):
                nxt[p + 1] += cp
                nxt[p] -= r * cp
            poly = nxt
        denom = math.prod(nodes[j] - a for a in others)
        out.append(h * sum(cp / (p + 1) for p, cp in enumerate(poly)) / denom)
    return out


@torch.no_grad()
def sample_window(net, observed, mask, steps, order, generator):
    """AB3 in rho = sigma (alpha = 1) with the context re-imposed at every step; EDM preconditioning."""
    times = [1 - i / steps for i in range(steps + 1)]
    rho = [sigma_of(t) for t in times]
    x = math.sqrt(1 + rho[0] ** 2) * torch.randn(observed.shape, generator=generator)
    frame_mask = mask[..., :1]
    history = []
    for i in range(steps):
        s = rho[i]
        norm = math.sqrt(1 + s * s)
        xt = frame_mask * norm * observed + (1 - frame_mask) * x
        c_noise = torch.full((x.shape[0],), 10 * math.log(s))
        d = xt / (1 + s * s) + (s / norm) * net(xt / norm, mask, c_noise)
        d = frame_mask * observed + (1 - frame_mask) * d
        history.append((x - d) / s)
        if len(history) > order:
            history.pop(0)
        w = ab_weights(rho, i, order)
        x = x + sum(wj * zj for wj, zj in zip(w, history))
    return frame_mask * observed + (1 - frame_mask) * x


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--windows", type=int, default=1)
    parser.add_argument("--ensemble", type=int, default=16)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--context", type=int, default=1)
    parser.add_argument(
        "--path",
        choices=["onednn", "plain"],
        default="onednn",
        help="onednn: Linear via torch.utils.mkldnn and attention via grouped convolutions; plain: nn.Linear and "
        "matmul on the loaded BLAS (with Debian's reference BLAS this is 10-50x slower)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = SpaceTimeViT().eval()
    params = sum(p.numel() for p in net.parameters())
    if args.path == "onednn":
        # oneDNN for every matrix product: Linear layers via torch.utils.mkldnn, attention via grouped convolutions.
        Block.grouped_conv_attention = True
        net = torch.utils.mkldnn.to_mkldnn(net)
    M, L, H, W, C = args.ensemble, args.window, 8, 8, 16
    gen = torch.Generator().manual_seed(0)
    context = torch.randn(M, args.context, H, W, C, generator=gen)
    mask = torch.zeros(M, L, H, W, C)
    mask[:, : args.context] = 1
    # warm-up: one denoiser call
    with torch.no_grad():
        net(torch.zeros(M, L, H, W, C), mask, torch.zeros(M))
    states = 0
    start = time.perf_counter()
    for _ in range(args.windows):
        observed = torch.cat([context, torch.zeros(M, L - args.context, H, W, C)], dim=1)
        window = sample_window(net, observed, mask, args.steps, 3, gen)
        context = window[:, L - args.context :]
        states += M * (L - args.context)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "states_per_second": states / seconds,
                "ms_per_denoiser_call": 1000 * seconds / (args.windows * args.steps),
                "seconds": seconds,
                "states": states,
                "params": params,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "blas": blas_library(),
                "blasBuild": blas_build(),
                "path": args.path,
                "cpu_seconds": time.process_time(),
            }
        )
    )


if __name__ == "__main__":
    main()
