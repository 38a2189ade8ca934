#!/usr/bin/python3
"""What PyTorch autograd saves for backward in the ImageNet ResNets (an independent
measurement of BP's activation memory, no dependency on the C code).

The model is written here, exactly like torchvision's v1.5 ResNets (stride on the
bottleneck's 3x3 conv), with torchvision's module names; torchvision is not imported.
One training-mode forward pass (and the cross-entropy loss on random labels, unless
--no-loss) runs on random input inside torch.autograd.graph.saved_tensors_hooks; the
pack hook records every tensor autograd saves, with its storage, and attributes it to
the module that was running (forward pre-hooks and hooks on every module).  Parameters
and buffers (weights, running statistics) are left out: the question is activation
memory.  A storage saved by several ops is counted once, for the first module that
saved it; whole storages (nbytes) are counted, since that is what occupies memory.

Run with /usr/bin/python3 (Debian's python3-torch); --help lists the options.
"""
import argparse
import csv
import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print(f"memory_torch.py: PyTorch is needed ({e}); run with /usr/bin/python3 "
          "(Debian's python3-torch)", file=sys.stderr)
    sys.exit(2)

MODELS = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
}


# ---------------------------------------------------------------- the model

class MaskReLUFunction(torch.autograd.Function):
    """ReLU that saves only its torch.bool mask (counted as 1 bit an element)."""

    @staticmethod
    def forward(ctx, x):
        mask = x > 0
        ctx.save_for_backward(mask)
        ctx.mark_non_differentiable(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask


class MaskReLU(nn.Module):
    def forward(self, x):
        return MaskReLUFunction.apply(x)


def make_relu(kind):
    if kind == "inplace":
        return nn.ReLU(inplace=True)
    if kind == "outofplace":
        return nn.ReLU(inplace=False)
    return MaskReLU()


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, downsample, relu):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = make_relu(relu)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):  # torchvision's, line for line
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, downsample, relu):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)  # v1.5: the stride is here
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = make_relu(relu)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):  # torchvision's, line for line
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        out = self.conv3(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes, width, relu):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = make_relu(relu)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0], 1, relu)
        self.layer2 = self._make_layer(block, 2 * width, layers[1], 2, relu)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], 2, relu)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], 2, relu)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride, relu):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, relu)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, 1, None, relu))
        return nn.Sequential(*layers)

    def forward(self, x):  # torchvision's _forward_impl
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


def build(args):
    kind, layers = MODELS[args.model]
    if args.blocks is not None:
        layers = args.blocks
    block = BasicBlock if kind == "basic" else Bottleneck
    return ResNet(block, layers, args.classes, args.width, args.relu)


# ---------------------------------------------------------------- the measurement

def storage_of(t):
    """(data pointer, nbytes) of the whole storage behind t (torch 1.13 and 2.x)."""
    s = t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()
    return s.data_ptr(), s.nbytes()


DT = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16",
      torch.bfloat16: "bf16", torch.int64: "i64", torch.int32: "i32", torch.bool: "bool"}


def describe(shape, dtype):
    return f"{DT.get(dtype, str(dtype))}[{','.join(str(d) for d in shape)}]"


def role_of(module_type, t):
    """What a saved tensor is, from the module that saved it and the tensor itself."""
    if module_type == "Conv2d":
        return "conv.input"
    if module_type == "BatchNorm2d":
        return "bn.input" if t.dim() == 4 else "bn.stats"
    if module_type == "ReLU":
        return "relu.output"
    if module_type == "MaskReLU":
        return "relu.mask"
    if module_type == "MaxPool2d":
        return "maxpool.indices" if t.dtype == torch.int64 else "maxpool.input"
    if module_type == "AdaptiveAvgPool2d":
        return "avgpool.input"
    if module_type == "Linear":
        return "fc.input"
    if module_type == "loss":
        if t.dtype == torch.int64:
            return "loss.target"
        return "loss.total_weight" if t.dim() == 0 else "loss.log_softmax"
    return "other"


# kinds that are not the activations proper, and kinds whose size does not grow with N
NOT_ACTIVATION = ("bn.stats", "maxpool.indices", "relu.mask", "loss.target",
                  "loss.total_weight")
BATCH_INDEPENDENT = ("bn.stats", "loss.total_weight")


def measure(args, batch):
    torch.manual_seed(args.seed)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    model = build(args).to(dtype)
    model.train()
    x = torch.randn(batch, 3, args.size, args.size, dtype=dtype)
    target = torch.randint(0, args.classes, (batch,))

    excluded = {}
    for p in list(model.parameters()) + list(model.buffers()):
        ptr, nb = storage_of(p)
        excluded[ptr] = nb

    stack = []        # (label, module type) of the modules running now
    calls = {}        # module name -> calls so far
    order = []        # labels in the order they first ran
    names = {m: (n or "(model)") for n, m in model.named_modules()}

    def pre(m, _inp):
        name = names[m]
        calls[name] = calls.get(name, 0) + 1
        label = name if calls[name] == 1 else f"{name}#{calls[name]}"
        stack.append((label, type(m).__name__))
        order.append(label)

    def post(m, _inp, _out):
        stack.pop()

    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))

    storages = {}     # ptr -> dict(nbytes, counted, first label, first role, savers)
    events = []       # every save: (label, role, shape, dtype, ptr, new?)
    keep = []         # hold every saved tensor so no storage is freed and reused
    param_refs = {"count": 0, "bytes_if_counted": 0}

    def pack(t):
        keep.append(t)
        if stack:
            label, mtype = stack[-1]
            if mtype not in ("Conv2d", "BatchNorm2d", "ReLU", "MaskReLU", "MaxPool2d",
                             "AdaptiveAvgPool2d", "Linear", "loss"):
                label = label + ".(functional)"  # e.g. the residual add, flatten
        else:
            label, mtype = "(outside)", "other"
        ptr, nb = storage_of(t)
        if ptr in excluded:
            param_refs["count"] += 1
            param_refs["bytes_if_counted"] += nb
            return t
        role = role_of(mtype, t)
        counted = nb
        if role == "relu.mask":
            counted = (t.numel() + 7) // 8  # a packed bit mask: 1 bit an element
        new = ptr not in storages
        if new:
            storages[ptr] = {"nbytes": nb, "counted": counted, "label": label,
                             "role": role, "roles": [role], "savers": [label],
                             "dtype": t.dtype}
        else:
            s = storages[ptr]
            s["savers"].append(label)
            if role not in s["roles"]:
                s["roles"].append(role)
        events.append((label, role, tuple(t.shape), t.dtype, ptr, new))
        return t

    def unpack(t):
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        out = model(x)
        if not args.no_loss:
            stack.append(("loss", "loss"))
            order.append("loss")
            loss = F.cross_entropy(out, target)
            stack.pop()
        else:
            loss = out.sum()
    for h in handles:
        h.remove()
    assert not stack, stack
    del loss, out
    return {"storages": storages, "events": events, "order": order,
            "params": param_refs, "batch": batch}


def summarize(r):
    st = r["storages"]
    total = sum(s["counted"] for s in st.values())
    indep = sum(s["counted"] for s in st.values() if s["role"] in BATCH_INDEPENDENT)
    return total, indep


# ---------------------------------------------------------------- the report

def fmt_b(b):
    return f"{b:,}"


def report(args, r, out):
    st, ev, batch = r["storages"], r["events"], r["batch"]
    total, indep = summarize(r)
    p = lambda *a: print(*a, file=out)  # noqa: E731

    # per module: counted bytes (new storages), shared bytes (storages first saved
    # elsewhere), the tensors
    rows = {lab: {"bytes": 0, "shared": 0, "tensors": []} for lab in r["order"]}
    for label, role, shape, dtype, ptr, new in ev:
        row = rows.setdefault(label, {"bytes": 0, "shared": 0, "tensors": []})
        s = st[ptr]
        desc = f"{describe(shape, dtype)} {role}"
        if new:
            row["bytes"] += s["counted"]
            if s["counted"] != s["nbytes"]:
                desc += f" ({s['counted']} B as bits; storage {s['nbytes']} B)"
        else:
            row["shared"] += s["nbytes"]
            desc += f" =storage of {s['label']}"
        row["tensors"].append(desc)

    p(f"model {args.model} blocks {','.join(map(str, r['layers']))} width {args.width} "
      f"classes {args.classes}; input {batch}x3x{args.size}x{args.size} {args.dtype}; "
      f"relu {args.relu}; loss {'none' if args.no_loss else 'cross-entropy'}; "
      f"torch {torch.__version__} on CPU; seed {args.seed}")
    if not args.quiet:
        p("")
        p(f"{'module':<28} {'bytes':>14} {'shared':>12}  saved tensors")
        for lab in rows:
            row = rows[lab]
            if not row["tensors"]:
                continue
            p(f"{lab:<28} {fmt_b(row['bytes']):>14} {fmt_b(row['shared']):>12}  "
              + "; ".join(row["tensors"]))
        p("(bytes: storages this module saved first; shared: storages it saved that an "
          "earlier module had saved, not counted again)")

    n_saves = len(ev)
    raw = 0
    for label, role, shape, dtype, ptr, new in ev:
        raw += st[ptr]["counted"]
    shared = sum(s["counted"] for s in st.values() if len(s["savers"]) > 1)
    p("")
    p(f"saved tensors: {n_saves} saves of {len(st)} distinct storages; "
      f"{len([s for s in st.values() if len(s['savers']) > 1])} storages "
      f"({fmt_b(shared)} B) saved by more than one op, counted once "
      f"(without deduplication: {fmt_b(raw)} B)")
    p(f"parameters and buffers referenced by saves, not counted: {r['params']['count']} "
      f"saves, {fmt_b(r['params']['bytes_if_counted'])} B")

    # composition, by the first saver's kind and by the set of kinds sharing a storage
    by_role, by_set = {}, {}
    for s in st.values():
        by_role[s["role"]] = by_role.get(s["role"], 0) + s["counted"]
        k = "+".join(s["roles"])
        by_set[k] = by_set.get(k, 0) + s["counted"]
    p("")
    p("composition by the kind of the first op that saved each storage:")
    for k, b in sorted(by_role.items(), key=lambda kv: -kv[1]):
        p(f"  {k:<44} {fmt_b(b):>16} B  {100.0 * b / total:6.2f} %")
    p("composition by the kinds of all the ops that saved each storage:")
    for k, b in sorted(by_set.items(), key=lambda kv: -kv[1]):
        p(f"  {k:<44} {fmt_b(b):>16} B  {100.0 * b / total:6.2f} %")
    p("saved memory that is not the activations proper (by kind):")
    any_na = False
    for k in NOT_ACTIVATION:
        if k in by_role:
            any_na = True
            extra = ""
            if k == "relu.mask":
                nb = sum(s["nbytes"] for s in st.values() if s["role"] == k)
                extra = f" (as packed bits; the torch.bool storages hold {fmt_b(nb)} B)"
            elif k == "bn.stats":
                extra = " (save_mean and save_invstd, per channel)"
            elif k == "maxpool.indices":
                extra = " (int64, one per pooled output)"
            p(f"  {k:<44} {fmt_b(by_role[k]):>16} B  "
              f"{100.0 * by_role[k] / total:6.2f} %{extra}")
    if not any_na:
        p("  none")

    per_sample = (total - indep) / batch
    p("")
    p(f"total saved: {fmt_b(total)} B = {total / 1e9:.6f} GB = {total / 2**30:.6f} GiB "
      f"at batch {batch}")
    p(f"bytes per sample: {total / batch:,.1f} (all); {per_sample:,.1f} without the "
      f"{fmt_b(indep)} B that do not grow with the batch (BN statistics, loss scalar)")
    B = args.extrapolate_batch
    ext = total * B / batch
    aff = per_sample * B + indep
    p(f"extrapolated to batch {B}: {ext / 1e9:.3f} GB = {ext / 2**30:.3f} GiB "
      f"(total * {B} / {batch}: assumes the saved memory is linear in the batch, as the "
      f"activations are; the per-channel BN statistics are not, which makes this "
      f"{(ext - aff) / 1e6:.3f} MB too high: {aff / 1e9:.3f} GB exactly)")
    return total, rows


def write_csv(args, r, rows, total, f):
    with f:
        w = csv.writer(f)
        w.writerow(["model", "size", "batch", "dtype", "relu", "module", "bytes",
                    "shared_bytes", "tensors"])
        for lab, row in rows.items():
            if row["tensors"]:
                w.writerow([args.model, args.size, r["batch"], args.dtype, args.relu, lab,
                            row["bytes"], row["shared"], "; ".join(row["tensors"])])
        w.writerow([args.model, args.size, r["batch"], args.dtype, args.relu, "TOTAL",
                    total, "", ""])


# ---------------------------------------------------------------- options

def positive(name):
    def f(s):
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} expects a positive integer, got '{s}'")
        if v <= 0:
            raise argparse.ArgumentTypeError(f"{name} expects a positive integer, got '{s}'")
        return v
    return f


def blocks_list(s):
    parts = s.split(",")
    try:
        v = [int(x) for x in parts]
    except ValueError:
        v = []
    if len(v) != 4 or any(b <= 0 for b in v):
        raise argparse.ArgumentTypeError(
            f"blocks expects four positive integers a,b,c,d, got '{s}'")
    return v


def out_size(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="experiments/memory_torch.py",
        description="Measure what PyTorch autograd saves for backward in one "
        "training-mode forward pass of a torchvision-style v1.5 ImageNet ResNet "
        "(activations only: parameters and buffers are left out; storages saved by "
        "several ops are counted once).")
    ap.add_argument("--model", default="resnet50",
                    choices=sorted(MODELS, key=lambda m: int(m[6:])),
                    help="the network (default resnet50)")
    ap.add_argument("--size", type=positive("size"), default=224,
                    help="input height and width (default 224)")
    ap.add_argument("--batch", type=positive("batch"), default=2,
                    help="batch size of the measured pass (default 2)")
    ap.add_argument("--classes", type=positive("classes"), default=1000,
                    help="classes of the fc layer (default 1000)")
    ap.add_argument("--width", type=positive("width"), default=64,
                    help="width of the stem and the first stage; stages have W,2W,4W,8W "
                    "planes (default 64)")
    ap.add_argument("--blocks", type=blocks_list, default=None, metavar="a,b,c,d",
                    help="override the blocks of layer1..layer4")
    ap.add_argument("--relu", default="inplace", choices=["inplace", "outofplace", "mask"],
                    help="nn.ReLU(inplace=True) as torchvision (default), "
                    "nn.ReLU(inplace=False), or an out-of-place ReLU whose backward "
                    "saves only a bool mask (counted as 1 bit an element)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                    help="parameter and activation type (default float32)")
    ap.add_argument("--seed", type=int, default=0, help="torch.manual_seed (default 0)")
    ap.add_argument("--extrapolate-batch", type=positive("extrapolate-batch"), default=512,
                    metavar="B", help="also print total * B / N (default 512)")
    ap.add_argument("--check-linear", action="store_true",
                    help="measure at batch N and 2N too and compare the per-sample figures")
    ap.add_argument("--no-loss", action="store_true",
                    help="leave out the cross-entropy loss (by default it runs on random "
                    "labels and its saves are counted under 'loss')")
    ap.add_argument("--csv", metavar="FILE", help="write the per-module table as CSV")
    ap.add_argument("--quiet", action="store_true", help="no per-module table on stdout")
    args = ap.parse_args(argv)

    kind, layers = MODELS[args.model]
    r_layers = args.blocks or layers
    # BatchNorm in training needs more than one value per channel
    h = out_size(args.size, 7, 2, 3)
    h = out_size(h, 3, 2, 1)
    for _ in range(3):
        h = out_size(h, 3, 2, 1)
    if args.batch * h * h < 2:
        ap.error(f"batch {args.batch} at size {args.size} leaves layer4 with one value per "
                 f"channel ({h}x{h}); BatchNorm cannot train on that: use a larger size or batch")

    csv_file = None
    if args.csv:
        try:
            csv_file = open(args.csv, "w", newline="")
        except OSError as e:
            ap.error(f"cannot write --csv {args.csv}: {e.strerror}")

    r = measure(args, args.batch)
    r["layers"] = r_layers
    total, rows = report(args, r, sys.stdout)
    if csv_file:
        write_csv(args, r, rows, total, csv_file)

    if args.check_linear:
        r2 = measure(args, 2 * args.batch)
        t1, i1 = summarize(r)
        t2, i2 = summarize(r2)
        a1, a2 = (t1 - i1) / args.batch, (t2 - i2) / (2 * args.batch)
        linear = (t1 - i1) * 2 == (t2 - i2) and i1 == i2
        print("")
        print(f"linearity: batch {args.batch}: {t1:,} B, {t1 / args.batch:,.1f} B a sample; "
              f"batch {2 * args.batch}: {t2:,} B, {t2 / (2 * args.batch):,.1f} B a sample")
        print(f"linearity: without the batch-independent part ({i1:,} B and {i2:,} B): "
              f"{a1:,.1f} and {a2:,.1f} B a sample: "
              + ("exactly linear" if linear else "NOT linear"))
        if not linear:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
