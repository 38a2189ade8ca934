#!/usr/bin/python3
"""One PyTorch training step of the Tiny ImageNet ResNet-18, timed: the comparison for
`aal bench step` (experiments/bench-vs-pytorch.sh).

The model is the one of SPEC section 6, written here without torchvision: stem conv 3x3
stride 2 pad 1 (3->64, no bias), BatchNorm, ReLU, no max pooling; BasicBlocks
[2, 2, 2, 2] at 64/128/256/512 channels (stride 2 on the first 3x3 conv of layers 2-4,
1x1 stride-2 projection shortcuts); global average pooling; Linear 512->200 with bias.
A step is what `aal bench step --rules bp` times: forward on a random batch (64x64,
normal values), softmax cross-entropy on random labels, backward (BP), and an SGD
update with momentum 0.9 and weight decay 1e-4 (lr 1e-3).

Prints one line per timed step, `step_s <seconds>`, after a warm-up step (untimed),
then a summary line.  Run with /usr/bin/python3 (Debian's python3-torch); --help
lists the options.
"""
import argparse
import sys
import time

try:
    import torch
    import torch.nn as nn
except ImportError as e:  # pragma: no cover
    print(f"step_torch.py: PyTorch is needed ({e}); run with /usr/bin/python3 "
          "(Debian's python3-torch)", file=sys.stderr)
    sys.exit(2)


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class TinyResNet18(nn.Module):
    """SPEC section 6: the Tiny ImageNet stem (no max pooling), 200 classes."""

    def __init__(self, classes=200, width=64):
        super().__init__()
        self.conv1 = conv3x3(3, width, stride=2)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        blocks, cin = [], width
        for i, n in enumerate([2, 2, 2, 2]):
            cout = width << i
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (b == 0 and i > 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--width", type=float, default=1.0,
                    help="width multiplier, as aal's --width (default 1: 64 channels)")
    ap.add_argument("--repeats", type=int, default=3, help="timed steps after the warm-up")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.threads < 1 or args.batch < 2 or args.repeats < 1 or args.size < 8:
        ap.error("--threads, --repeats >= 1, --batch >= 2, --size >= 8")
    width = round(64 * args.width)
    if width < 1 or abs(64 * args.width - width) > 1e-9:
        ap.error(f"--width {args.width}: 64 * width must be a whole number >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dtype = getattr(torch, args.dtype)
    model = TinyResNet18(width=width).to(dtype).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(args.batch, 3, args.size, args.size, dtype=dtype)
    y = torch.randint(0, 200, (args.batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    loss = step()  # warm-up: oneDNN primitives, allocations, momentum buffers
    if not torch.isfinite(torch.tensor(loss)):
        print(f"step_torch.py: warm-up loss {loss} is not finite", file=sys.stderr)
        return 1
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        print(f"step_s {times[-1]:.6f}", flush=True)
    times.sort()
    half = len(times) // 2
    med = times[half] if len(times) % 2 else 0.5 * (times[half - 1] + times[half])
    print(f"torch {torch.__version__} {args.dtype} threads {torch.get_num_threads()} "
          f"batch {args.batch} size {args.size} width {args.width:g}: median {med:.4f} s, "
          f"{args.batch / med:.2f} images/s (mkldnn {torch.backends.mkldnn.is_available()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
