#!/usr/bin/python3
"""PyTorch's float32 conv2d and batch norm, forward and backward, checked by AAL.

Writes each op's inputs and PyTorch's outputs in `aal kcheck --npy`'s layout (DIR/op.txt
and one NAME.npy per tensor) and runs `aal kcheck --npy DIR` on them: conv_forward,
conv_backward_data, conv_backward_filter (x [4,8,15,15], w [16,8,3,3], stride 2, pad 1),
bn_forward and bn_backward (x [8,16,12,12], channels offset from zero; PyTorch's saved
mean and invstd, from torch.ops.aten.native_batch_norm).  Then a perturbed copy of conv
forward's y and of batch norm backward's dx (one element moved by 2^-8 of max(|v|, 1)),
which AAL must report failing.  Exits 0 when every real output passes and every
perturbed one fails, 1 otherwise, 2 for bad usage or a missing numpy/PyTorch.

Needs numpy and PyTorch (Debian: python3-numpy, python3-torch, for /usr/bin/python3).

    /usr/bin/python3 examples/check_torch_conv.py --aal ./aal [--out DIR] [--seed S]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile


def parse_args():
    p = argparse.ArgumentParser(
        prog="examples/check_torch_conv.py",
        description="PyTorch's float32 conv2d and batch norm (forward and backward) "
        "checked by `aal kcheck --npy`, and a perturbed copy that must fail.")
    p.add_argument("--aal", default=os.environ.get("AAL_BIN", "./aal"),
                   help="the aal command (default: $AAL_BIN or ./aal)")
    p.add_argument("--out", help="write the directories here and keep them "
                   "(default: a temporary directory, removed at the end)")
    p.add_argument("--seed", type=int, default=1, help="torch.manual_seed (default 1)")
    return p.parse_args()


def save(d, name, t):
    """A tensor (or numpy array) as d/name.npy, float32 C order as PyTorch held it."""
    import numpy as np
    a = t.detach().cpu().numpy() if hasattr(t, "detach") else t
    np.save(os.path.join(d, name + ".npy"), np.ascontiguousarray(a))


def write_dir(root, name, op_lines, tensors):
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, "op.txt"), "w") as f:
        f.write("# written by examples/check_torch_conv.py from PyTorch\n")
        f.write("storage = float32\naccumulation = float32\n" + op_lines)
    for k, v in tensors.items():
        save(d, k, v)
    return d


def conv_dirs(torch, root):
    """conv2d (no bias), stride 2, pad 1: the forward and both gradients by autograd."""
    x = torch.randn(4, 8, 15, 15, requires_grad=True)
    w = torch.randn(16, 8, 3, 3, requires_grad=True)
    y = torch.nn.functional.conv2d(x, w, stride=2, padding=1)
    dy = torch.randn_like(y)
    y.backward(dy)
    args = "stride = 2\npad = 1\n"
    return {
        "conv_forward": write_dir(root, "conv_forward", "op = conv_forward\n" + args,
                                  {"x": x, "w": w, "y": y}),
        "conv_backward_data": write_dir(root, "conv_backward_data",
                                        "op = conv_backward_data\n" + args,
                                        {"dy": dy, "w": w, "dx": x.grad}),
        "conv_backward_filter": write_dir(root, "conv_backward_filter",
                                          "op = conv_backward_filter\n" + args,
                                          {"x": x, "dy": dy, "dw": w.grad}),
    }


def bn_dirs(torch, root):
    """Batch norm in training mode: y, the saved mean and invstd; and its backward."""
    eps = 1e-5
    c = 16
    scale = torch.logspace(-2, 1, c).reshape(1, c, 1, 1)
    offset = (torch.rand(1, c, 1, 1) - 0.5) * 20  # means up to 10 from zero
    x = torch.randn(8, c, 12, 12) * scale + offset
    gamma, beta = torch.randn(c), torch.randn(c)
    y, mean, invstd = torch.ops.aten.native_batch_norm(x, gamma, beta, None, None, True,
                                                       0.1, eps)
    dy = torch.randn_like(y)
    dx, dgamma, dbeta = torch.ops.aten.native_batch_norm_backward(
        dy, x, gamma, None, None, mean, invstd, True, eps, [True, True, True])
    return {
        "bn_forward": write_dir(root, "bn_forward", "op = bn_forward\neps = %g\n" % eps,
                                {"x": x, "gamma": gamma, "beta": beta, "y": y,
                                 "mean": mean, "invstd": invstd}),
        "bn_backward": write_dir(root, "bn_backward", "op = bn_backward\n",
                                 {"dy": dy, "x": x, "gamma": gamma, "mean": mean,
                                  "invstd": invstd, "dx": dx, "dgamma": dgamma,
                                  "dbeta": dbeta}),
    }


def perturbed(root, src, name, tensor, index):
    """A copy of directory src whose tensor has element index moved by 2^-8 of
    max(|v|, 1)."""
    import numpy as np
    d = os.path.join(root, name)
    shutil.copytree(src, d)
    path = os.path.join(d, tensor + ".npy")
    a = np.load(path)
    a[index] += np.float32(2.0 ** -8) * max(abs(a[index]), np.float32(1))
    np.save(path, a)
    return d


def run(aal, d):
    """aal kcheck --npy d: its exit status, output, and the summary's worst err/bound."""
    r = subprocess.run([aal, "kcheck", "--npy", d], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    m = re.search(r"worst err/bound (\S+)", r.stdout)
    return r.returncode, r.stdout, m.group(1) if m else "?"


def main():
    a = parse_args()
    try:
        import numpy
        import torch
    except ImportError as e:
        print("check_torch_conv: needs numpy and PyTorch (%s); on Debian: apt-get install "
              "python3-numpy python3-torch, and run /usr/bin/python3" % e, file=sys.stderr)
        return 2
    if shutil.which(a.aal) is None:
        print("check_torch_conv: --aal %s: no such command" % a.aal, file=sys.stderr)
        return 2
    torch.manual_seed(a.seed)
    root = a.out or tempfile.mkdtemp(prefix="aal-torch-")
    os.makedirs(root, exist_ok=True)
    print("check_torch_conv: PyTorch %s, numpy %s, seed %d, directories in %s"
          % (torch.__version__, numpy.__version__, a.seed, root))
    dirs = conv_dirs(torch, root)
    dirs.update(bn_dirs(torch, root))
    want = {k: 0 for k in dirs}
    dirs["conv_forward_perturbed"] = perturbed(root, dirs["conv_forward"],
                                               "conv_forward_perturbed", "y", (1, 2, 3, 4))
    dirs["bn_backward_perturbed"] = perturbed(root, dirs["bn_backward"],
                                              "bn_backward_perturbed", "dx", (2, 5, 6, 7))
    want["conv_forward_perturbed"] = want["bn_backward_perturbed"] = 1
    bad = 0
    for name, d in dirs.items():
        rc, out, worst = run(a.aal, d)
        print(out, end="")
        ok = rc == want[name]
        bad += not ok
        print("check_torch_conv: %-22s %s (exit %d, worst err/bound %s)%s\n"
              % (name, "PASS" if rc == 0 else "FAIL", rc, worst,
                 "" if ok else "  UNEXPECTED: want exit %d" % want[name]))
    if a.out is None:
        shutil.rmtree(root)
    print("check_torch_conv: %s" % ("every PyTorch output passes and every perturbed copy "
                                    "fails" if bad == 0 else "%d unexpected result(s)" % bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
