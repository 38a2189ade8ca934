#!/usr/bin/python3
"""What PyTorch autograd saves for backward in the authors' Transformer-like models (an
independent check of `aal memory --model vit-large|mixer-large|bert-large|transformer`,
sim/model/tfmem.c, with no dependency on the C code).

The four models are written here from the structure of the authors' files
(github.com/WooSunghyeon/Auxiliary_Activation_Learning, d8a5a32, experiments/:
ViT_L/models/modeling.py, MLP-Mixer_L/models/modeling.py, BERT_L/models.py and
classify.py, Transformer/transformer_model.py): the same ops in the same order, the same
LayerNorm kinds (nn.LayerNorm; BERT's TF-style module of elementary ops), dropout rates,
heads and views.  ASAk replaces the linear layers the authors' files make Linear_ASA by a
function that keeps one bit an element, in int32 words, as their make_asa kernel does.
Mesa is not modelled here (it needs the Mesa package).

What the ops keep is PyTorch 1.8's, the authors' version (their aal.yaml), whatever
PyTorch runs this: softmax and log_softmax keep their input as well as their output (1.8's
derivatives.yaml passes `self` to their backward; later versions keep the output only),
and a mean keeps only sizes (1.13's torch.mean keeps its input); --native uses the
installed version's own ops instead.  Dropout runs through torch.native_dropout, which
keeps a bool mask as the CUDA kernel does (CPU nn.Dropout would keep a float mask).  One training-mode forward pass
runs inside torch.autograd.graph.saved_tensors_hooks; every saved storage that is not a
parameter is counted once (whole storages: a view keeps its base).  The loss is part of
the forward for ViT and Mixer (their train.py measures around model(x, y)); BERT and the
Transformer return logits / log-probabilities (the authors measure before the loss).

Run with /usr/bin/python3 (Debian's python3-torch); --help lists the options.
"""
import argparse
import math
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print(f"memory_torch_tf.py: PyTorch and NumPy are needed ({e}); run with "
          "/usr/bin/python3 (Debian's python3-torch)", file=sys.stderr)
    sys.exit(2)


NATIVE = False  # --native: the installed PyTorch's own ops


def mean(x, dim, keepdim=False):
    """x.mean(dim) as PyTorch 1.8 keeps it (sizes only): a sum over the count; --native:
    torch.mean, whose backward in PyTorch 1.13 keeps the input."""
    if NATIVE:
        return x.mean(dim, keepdim=keepdim)
    return x.sum(dim, keepdim=keepdim) / x.shape[dim]


class Keep18(torch.autograd.Function):
    """softmax or log_softmax along the last dimension, keeping input and output."""

    @staticmethod
    def forward(ctx, x, log):
        y = torch.log_softmax(x, -1) if log else torch.softmax(x, -1)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover (memory only)
        raise RuntimeError("memory measurement only")


def softmax(x):
    return torch.softmax(x, -1) if NATIVE else Keep18.apply(x, False)


def log_softmax(x):
    return torch.log_softmax(x, -1) if NATIVE else Keep18.apply(x, True)


def cross_entropy(logits, y):
    return F.nll_loss(log_softmax(logits), y)


class Drop(nn.Module):
    """Dropout keeping a bool mask (what CUDA's fused kernel keeps); p = 0: identity."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0 or not self.training:
            return x
        return torch.native_dropout(x, self.p, True)[0]


class SignLinearFn(torch.autograd.Function):
    """A linear layer that keeps only the sign of its input: ceil(n/32) int32 words."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        words = torch.zeros((x.numel() + 31) // 32, dtype=torch.int32)
        ctx.save_for_backward(words)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover (memory only)
        raise RuntimeError("memory measurement only")


class Lin(nn.Linear):
    """nn.Linear, or an ASA linear when asa is set."""

    def __init__(self, n_in, n_out, asa=False):
        super().__init__(n_in, n_out)
        self.asa = asa

    def forward(self, x):
        if self.asa:
            return SignLinearFn.apply(x, self.weight, self.bias)
        return super().forward(x)


# ---------------------------------------------------------------- ViT (pre-LN)
class ViT(nn.Module):
    def __init__(self, a, rule):
        super().__init__()
        d, f, self.h = a.width, a.width * a.mlp_ratio, a.heads
        n = (a.image // a.patch) ** 2
        self.patch = nn.Conv2d(3, d, a.patch, a.patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.zeros(1, n + 1, d))
        self.drop = Drop(0.1)
        self.blocks = nn.ModuleList()
        for _ in range(a.depth):
            b = nn.Module()
            b.ln1, b.ln2 = nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6)
            b.q, b.k, b.v = (Lin(d, d, rule >= 4) for _ in range(3))
            b.out = Lin(d, d, rule >= 3)
            b.fc1, b.fc2 = Lin(d, f, rule >= 2), Lin(f, d, rule >= 1)
            b.attn_drop, b.proj_drop, b.mlp_drop = Drop(0.0), Drop(0.0), Drop(0.1)
            self.blocks.append(b)
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, a.classes)

    def heads(self, x):
        return x.view(*x.shape[:-1], self.h, -1).permute(0, 2, 1, 3)

    def forward(self, x, y):
        B = x.shape[0]
        x = self.patch(x).flatten(2).transpose(-1, -2)
        x = self.drop(torch.cat((self.cls.expand(B, -1, -1), x), dim=1) + self.pos)
        for b in self.blocks:
            h = x
            t = b.ln1(x)
            q, k, v = self.heads(b.q(t)), self.heads(b.k(t)), self.heads(b.v(t))
            s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            p = b.attn_drop(softmax(s))
            c = torch.matmul(p, v).permute(0, 2, 1, 3).contiguous().flatten(2)
            x = b.proj_drop(b.out(c)) + h
            h = x
            t = b.mlp_drop(b.fc2(b.mlp_drop(F.gelu(b.fc1(b.ln2(x))))))
            x = t + h
        x = self.norm(x)
        return cross_entropy(self.head(x[:, 0]), y)


# ---------------------------------------------------------------- MLP-Mixer
class Mixer(nn.Module):
    def __init__(self, a, rule):
        super().__init__()
        d, f, t = a.width, a.width * a.mlp_ratio, a.token_mlp
        n = (a.image // a.patch) ** 2
        self.stem = nn.Conv2d(3, d, a.patch, a.patch)
        self.blocks = nn.ModuleList()
        for _ in range(a.depth):
            b = nn.Module()
            b.ln1, b.ln2 = nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6)
            b.t0, b.t1 = Lin(n, t, rule >= 4), Lin(t, n, rule >= 3)
            b.c0, b.c1 = Lin(d, f, rule >= 2), Lin(f, d, rule >= 1)
            self.blocks.append(b)
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, a.classes)

    def forward(self, x, y):
        x = self.stem(x).flatten(2).transpose(-1, -2)
        for b in self.blocks:
            t = b.t1(F.gelu(b.t0(b.ln1(x).transpose(-1, -2)))).transpose(-1, -2)
            x = t + x
            x = b.c1(F.gelu(b.c0(b.ln2(x)))) + x
        x = mean(self.norm(x), 1)
        return cross_entropy(self.head(x), y)


# ---------------------------------------------------------------- BERT (post-LN, TF LN)
class TFLayerNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.gamma, self.beta = nn.Parameter(torch.ones(d)), nn.Parameter(torch.zeros(d))

    def forward(self, x):
        u = mean(x, -1, keepdim=True)
        s = mean((x - u).pow(2), -1, keepdim=True)
        x = (x - u) / torch.sqrt(s + 1e-12)
        return self.gamma * x + self.beta


class Bert(nn.Module):
    def __init__(self, a, rule):
        super().__init__()
        d, f, self.h = a.width, a.width * a.mlp_ratio, a.heads
        self.tok, self.pos, self.seg = nn.Embedding(a.vocab, d), nn.Embedding(512, d), \
            nn.Embedding(2, d)
        self.norm, self.drop = TFLayerNorm(d), Drop(0.1)
        self.blocks = nn.ModuleList()
        for _ in range(a.depth):
            b = nn.Module()
            b.q, b.k, b.v = (Lin(d, d, rule >= 4) for _ in range(3))
            b.proj = Lin(d, d, rule >= 3)
            b.fc1, b.fc2 = Lin(d, f, rule >= 2), Lin(f, d, rule >= 1)
            b.norm1, b.norm2 = TFLayerNorm(d), TFLayerNorm(d)
            b.attn_drop, b.drop = Drop(0.1), Drop(0.1)
            self.blocks.append(b)
        self.fc, self.cls_drop = nn.Linear(d, d), Drop(0.1)
        self.classifier = nn.Linear(d, a.classes)

    def forward(self, ids, seg, mask):
        pos = torch.arange(ids.size(1), dtype=torch.long).unsqueeze(0).expand_as(ids)
        h = self.drop(self.norm(self.tok(ids) + self.pos(pos) + self.seg(seg)))
        for b in self.blocks:
            q, k, v = (t.view(*t.shape[:-1], self.h, -1).transpose(1, 2)
                       for t in (b.q(h), b.k(h), b.v(h)))
            s = q @ k.transpose(-2, -1) / np.sqrt(k.size(-1))
            s -= 10000.0 * (1.0 - mask[:, None, None, :].float())
            s = b.attn_drop(softmax(s))
            c = (s @ v).transpose(1, 2).contiguous()
            c = c.view(*c.shape[:-2], -1)
            h = b.norm1(h + b.drop(b.proj(c)))
            h = b.norm2(h + b.drop(b.fc2(F.gelu(b.fc1(h)))))
        return self.classifier(self.cls_drop(torch.tanh(self.fc(h[:, 0]))))


# ---------------------------------------------------------------- Transformer (pre-LN)
class Attention(nn.Module):
    def __init__(self, d, h, rule):
        super().__init__()
        self.h = h
        self.qkv = nn.ModuleList(Lin(d, d, rule >= 4) for _ in range(3))
        self.out = Lin(d, d, rule >= 3)
        self.drop = Drop(0.1)

    def forward(self, q, k, v, mask):
        B = q.shape[0]
        q, k, v = (net(x).view(B, -1, self.h, q.shape[-1] // self.h).transpose(1, 2)
                   for net, x in zip(self.qkv, (q, k, v)))
        s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        s.masked_fill_(mask == torch.tensor(False), float("-inf"))
        p = self.drop(softmax(s))
        c = torch.matmul(p, v)
        return self.out(c.transpose(1, 2).reshape(B, -1, self.h * q.shape[-1]))


class Sublayer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm, self.drop = nn.LayerNorm(d), Drop(0.1)

    def forward(self, x, fn):
        return x + self.drop(fn(self.norm(x)))


class FFN(nn.Module):
    def __init__(self, d, f, rule):
        super().__init__()
        self.l1, self.l2, self.drop = Lin(d, f, rule >= 2), Lin(f, d, rule >= 1), Drop(0.1)

    def forward(self, x):
        return self.l2(self.drop(F.gelu(self.l1(x))))


class Transformer(nn.Module):
    def __init__(self, a, rule):
        super().__init__()
        d, f = a.width, a.width * a.mlp_ratio
        self.d = d
        self.src, self.trg = nn.Embedding(a.vocab, d), nn.Embedding(a.vocab, d)
        self.register_buffer("pe", torch.randn(a.seq, d))
        self.src_drop, self.trg_drop = Drop(0.1), Drop(0.1)
        self.enc = nn.ModuleList()
        for _ in range(a.depth):
            e = nn.Module()
            e.sub = nn.ModuleList(Sublayer(d) for _ in range(2))
            e.attn, e.ffn = Attention(d, a.heads, rule), FFN(d, f, rule)
            self.enc.append(e)
        self.dec = nn.ModuleList()
        for _ in range(a.depth):
            e = nn.Module()
            e.sub = nn.ModuleList(Sublayer(d) for _ in range(3))
            e.self_attn, e.src_attn = Attention(d, a.heads, rule), Attention(d, a.heads, rule)
            e.ffn = FFN(d, f, rule)
            self.dec.append(e)
        self.enc_norm, self.dec_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.gen = nn.Linear(d, a.vocab)

    def forward(self, src, trg, src_mask, trg_mask):
        x = self.src_drop(self.src(src) * math.sqrt(self.d) + self.pe[:src.shape[1]])
        for e in self.enc:
            x = e.sub[0](x, lambda t: e.attn(t, t, t, src_mask))
            x = e.sub[1](x, e.ffn)
        m = self.enc_norm(x)
        y = self.trg_drop(self.trg(trg) * math.sqrt(self.d) + self.pe[:trg.shape[1]])
        for e in self.dec:
            y = e.sub[0](y, lambda t: e.self_attn(t, t, t, trg_mask))
            y = e.sub[1](y, lambda t: e.src_attn(t, m, m, src_mask))
            y = e.sub[2](y, e.ffn)
        return log_softmax(self.gen(self.dec_norm(y)))


# ---------------------------------------------------------------- measurement
DEFAULTS = {  # small versions of the paper's models (the shapes, not the sizes)
    "vit-large": dict(depth=2, width=64, heads=4, mlp_ratio=4, image=32, patch=8, batch=4,
                      classes=10),
    "mixer-large": dict(depth=2, width=64, token_mlp=32, mlp_ratio=4, image=32, patch=8,
                        batch=4, classes=10),
    "bert-large": dict(depth=2, width=64, heads=4, mlp_ratio=4, seq=16, batch=4, vocab=100,
                       classes=2),
    "transformer": dict(depth=2, width=64, heads=4, mlp_ratio=4, seq=16, batch=4, vocab=100),
}


def measure(a, rule):
    torch.manual_seed(1)
    params = set()
    if a.model == "vit-large":
        net = ViT(a, rule)
        args = (torch.randn(a.batch, 3, a.image, a.image),
                torch.randint(0, a.classes, (a.batch,)))
    elif a.model == "mixer-large":
        net = Mixer(a, rule)
        args = (torch.randn(a.batch, 3, a.image, a.image),
                torch.randint(0, a.classes, (a.batch,)))
    elif a.model == "bert-large":
        net = Bert(a, rule)
        args = (torch.randint(0, a.vocab, (a.batch, a.seq)),
                torch.randint(0, 2, (a.batch, a.seq)), torch.ones(a.batch, a.seq))
    else:
        net = Transformer(a, rule)
        args = (torch.randint(0, a.vocab, (a.batch, a.seq)),
                torch.randint(0, a.vocab, (a.batch, a.seq)),
                torch.ones(a.batch, 1, 1, a.seq, dtype=torch.bool),
                torch.tril(torch.ones(a.seq, a.seq, dtype=torch.bool)).expand(
                    a.batch, 1, a.seq, a.seq))
    net.train()
    for p in list(net.parameters()) + list(net.buffers()):
        params.add(p.storage().data_ptr())
    seen = {}

    def pack(t):
        st = t.storage()
        if st.data_ptr() not in params and st.nbytes() > 0:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(*args)
    del out
    return sum(seen.values())


def main():
    ap = argparse.ArgumentParser(
        prog="experiments/memory_torch_tf.py",
        description="Bytes PyTorch autograd saves in one forward pass of the authors' "
                    "Transformer-like models (small configurations), per rule: CSV "
                    "model,rule,bytes on stdout.")
    ap.add_argument("--model", choices=sorted(DEFAULTS), required=True)
    for k in ("depth", "width", "heads", "mlp_ratio", "token_mlp", "seq", "image", "patch",
              "batch", "vocab", "classes"):
        ap.add_argument("--" + k.replace("_", "-"), type=int, dest=k, default=None)
    ap.add_argument("--native", action="store_true",
                    help="the installed PyTorch's own mean, softmax and log_softmax (1.13: "
                         "mean keeps its input, the softmaxes their output only) instead of "
                         "what PyTorch 1.8 keeps")
    a = ap.parse_args()
    global NATIVE
    NATIVE = a.native
    for k, v in DEFAULTS[a.model].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    torch.set_num_threads(1)
    for rule in range(5):
        print(f"{a.model},{'bp' if rule == 0 else f'asa{rule}'},{measure(a, rule)}")


if __name__ == "__main__":
    main()
