"""A training step against its FLOP floor: achieved GFLOP/s beside this machine's matmul rate.

    python benchmarks/flop_floor.py [--config actstrack/lri_bernoulli_egnn] [--steps 6]
                                    [--repeat 3] [--threads 1] [--base REV]

One training step (forward, backward, Adam) of a shipped config on batches of the built-in
simulation (ActsTrack-sim, 3,000 events; Tau3Mu-sim, 20,000; the config's batch size). In
each side's process (this tree; with ``--base REV`` also the code of REV, a git worktree first
on ``PYTHONPATH``, the processes interleaved):

* the step's matrix-multiply FLOPs (``torch.utils.flop_counter``: ``mm``, ``addmm``, ``bmm``
  forward and backward; a multiply-add counts 2);
* the time of a step (median of ``--steps`` after 2 untimed ones; best median of
  ``--repeat`` processes), and the achieved GFLOP/s;
* the **floor**: the step's FLOPs at the matmul rate measured in the same process, the best of
  square 1024^3 products and of the step's own matrix products replayed back to back (same
  shapes and layouts, nothing else running). ``floor ratio`` = step time / floor; 1.0 would
  be a step that does nothing but its matrix products at full speed.

For the eager sides the step's **memory traffic** is counted as well: every ATen operator's
tensor operands and results in bytes (views and allocations excluded; an operand counts at
most its storage), at the bandwidth of a large single-threaded ``add`` (STREAM's "add"
kernel) measured in the same process. The **roofline floor** is then the sum over the step's
operators of ``max(FLOPs / peak, bytes / bandwidth)``: the time of these operators if each
ran at this machine's limit, matmul rate or memory bandwidth. ``roofline ratio`` = step time /
roofline floor: near 1, the step is bound by the memory traffic of its operators, and only
fusing operators (fewer bytes) can make it faster. (Compiled layers run Inductor's kernels,
which the count does not see: no traffic is given for that side.)

The sides start from the same seed on the same batches; their losses after every step are
printed side by side (a change of the computation that keeps the results shows differences
at float rounding only).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVENTS = {"actstrack": 3000, "tau3mu": 20000}
MATMULS = ("aten.mm.default", "aten.addmm.default", "aten.bmm.default")


def _batches(kind: str, batch_size: int, count: int) -> list:
    import torch
    from _common import simulated_dataset
    from torch_geometric.loader import DataLoader

    from hepx.data import load_dataset

    ds = load_dataset(simulated_dataset(kind, EVENTS[kind]))
    gen = torch.Generator().manual_seed(0)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, generator=gen)
    out = []
    while len(out) < count:
        out.extend(itertools.islice(loader, count - len(out)))
    return out, ds


def _matmul_shapes(run_step) -> list[tuple]:
    """The matrix products of one step: ``(op, [(shape, stride), ...])`` per call."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    calls: list[tuple] = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = str(func)
            if name in MATMULS:
                tensors = [a for a in args if isinstance(a, torch.Tensor)]
                calls.append((name, [(tuple(t.shape), tuple(t.stride())) for t in tensors]))
            return func(*args, **(kwargs or {}))

    with Record():
        run_step()
    return calls


def _matmul_flops(name: str, shapes: list[tuple]) -> int:
    """Multiply-add FLOPs (2 per multiply-add) of one recorded matrix product."""
    if name == "aten.bmm.default":
        (b, m, k), (_, _, n) = shapes[0], shapes[1]
        return 2 * b * m * k * n
    (m, k), (_, n) = shapes[-2], shapes[-1]
    return 2 * m * k * n


def _traffic(run_step) -> list[tuple[str, int, int]]:
    """``(operator, bytes, matmul FLOPs)`` of every ATen operator of one step that moves data: its
    tensor operands and results (each at most its storage), views and allocations left out."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    ops: list[tuple[str, int, int]] = []
    skip = ("aten.empty", "aten.new_empty", "aten.detach", "aten.alias", "aten.lift_fresh")

    def nbytes(t: torch.Tensor) -> int:
        logical = t.numel() * t.element_size()
        return min(logical, t.untyped_storage().nbytes()) if t.device.type != "meta" else 0

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = str(func)
            if getattr(func, "is_view", False) or name.startswith(skip):
                return out
            leaves = tree_leaves((args, kwargs or {}, out))
            tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
            flops = 0
            if name in MATMULS:  # from the operands: (bias,) m1, m2
                shapes = [
                    tuple(t.shape) for t in args if isinstance(t, torch.Tensor) and t.dim() >= 2
                ]
                flops = _matmul_flops(name, shapes)
            ops.append((name, sum(nbytes(t) for t in tensors), flops))
            return out

    with Count():
        run_step()
    return ops


def _bandwidth(n: int = 1 << 25, repeat: int = 5) -> float:
    """Bytes/s of ``c = a + b`` on float32 vectors of ``n`` elements (two reads and a write:
    STREAM's add), best of ``repeat``."""
    import torch

    a, b, c = torch.rand(n), torch.rand(n), torch.empty(n)
    torch.add(a, b, out=c)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        torch.add(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 3 * 4 * n / best


def _replay_seconds(calls: list[tuple], repeat: int = 3) -> float:
    """Best time of the recorded matrix products run back to back on fresh operands."""
    import torch

    def operand(shape, stride):
        span = 1 + sum((n - 1) * s for n, s in zip(shape, stride, strict=True) if n > 0)
        return torch.randn(max(span, 1)).as_strided(shape, stride)

    ops = {
        "aten.mm.default": torch.mm,
        "aten.addmm.default": torch.addmm,
        "aten.bmm.default": torch.bmm,
    }
    prepared = [(ops[name], [operand(*t) for t in tensors]) for name, tensors in calls]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for fn, args in prepared:
            fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def _square_rate(n: int = 1024, repeat: int = 5) -> float:
    """FLOP/s of an ``n x n`` by ``n x n`` product (best of ``repeat``)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def first_step_gradients(model, batch, info_coef: float, *, compiled: bool) -> list:
    """The gradient of one training step from ``model``'s weights in float32 (compiled layers
    when ``compiled``) and in float64 (eager), as flat float64 arrays. Both draw the same
    noise: ``torch.rand_like`` draws float32 and casts, so float64 sees the same numbers."""
    import copy

    import torch

    from hepx.training import TrainStep

    draw = torch.rand_like

    def gradient(dtype: torch.dtype):
        twin = copy.deepcopy(model).to(dtype)
        if compiled and dtype == torch.float32:
            from hepx.models import compile_layers

            compile_layers(twin)
        data = batch.clone()
        for key in ("pos", "x"):
            if data.get(key) is not None:
                data[key] = data[key].to(dtype)
        torch.manual_seed(1)
        TrainStep(twin, pred_coef=1.0, info_coef=info_coef).train()(data)[0].backward()
        return torch.cat([p.grad.flatten() for p in twin.parameters() if p.grad is not None])

    torch.rand_like = lambda t, **kw: draw(t, dtype=torch.float32).to(kw.get("dtype", t.dtype))
    try:
        return [gradient(d).double().numpy() for d in (torch.float32, torch.float64)]
    finally:
        torch.rand_like = draw


def child(spec: dict) -> None:
    """``--child``: one side's figures with the hepx on ``sys.path``, as JSON on stdout."""
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hepx.config import load_yaml, resolve_run_config, shipped_config_dir
    from hepx.models import build_model
    from hepx.training import TrainStep

    torch.set_num_threads(spec["threads"])
    kind = spec["config"].split("/")[0]
    cfg = load_yaml(shipped_config_dir() / f"{spec['config']}.yaml")
    cfg["dataset"]["path"] = "unused"
    cfg = resolve_run_config(cfg)
    batches, ds = _batches(kind, cfg["train"]["batch_size"], spec["steps"] + 3)
    torch.manual_seed(0)
    model = build_model(
        cfg["model"], pos_dim=ds.pos_dim, x_dim=ds.num_point_features, period=ds.meta["period"]
    )
    info_coef = cfg["train"]["info_loss_coef"]
    gradients = first_step_gradients(model, batches[0], info_coef, compiled=spec["compile"])
    np.save(spec["gradient_file"], np.stack(gradients))
    if spec["compile"]:
        from hepx.models import compile_layers

        compile_layers(model)
    step = TrainStep(model, pred_coef=1.0, info_coef=info_coef).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def run(batch) -> float:
        loss = step(batch)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    losses, seconds = [], []
    for i, batch in enumerate(batches[: spec["steps"] + 2]):
        t0 = time.perf_counter()
        losses.append(run(batch))
        if i >= 2:  # the first steps pay one-off costs
            seconds.append(time.perf_counter() - t0)
    probe = batches[-1]
    with FlopCounterMode(display=False) as counter:
        run(probe)
    calls = _matmul_shapes(lambda: run(probe))
    traffic = [] if spec["compile"] else _traffic(lambda: run(probe))
    result = {
        "traffic": traffic,
        "bandwidth": _bandwidth(),
        "losses": losses,
        "step_s": statistics.median(seconds),
        "flops": counter.get_total_flops(),
        "hits": statistics.mean(b.num_nodes for b in batches),
        "replay_s": _replay_seconds(calls),
        "square_flops_per_s": _square_rate(),
    }
    print(json.dumps(result))


def _run_side(src: Path, spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(spec["threads"])}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", default="actstrack/lri_bernoulli_egnn")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per process")
    ap.add_argument("--repeat", type=int, default=3, help="processes per side (best median)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--base", default=None, help="git revision to measure beside this tree")
    ap.add_argument(
        "--compile", action="store_true", help="also this tree with train.compile (torch.compile)"
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(json.loads(args.child))
        return
    from _common import WORKDIR

    WORKDIR.mkdir(parents=True, exist_ok=True)
    sides = {"this tree": (REPO, False)}
    if args.compile:
        sides["this tree, train.compile"] = (REPO, True)
    if args.base:
        from seeded_equivalence import checkout

        sides[f"base {args.base}"] = (checkout(args.base, WORKDIR), False)
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for _ in range(args.repeat):
        for n, (name, (src, compiled)) in enumerate(sides.items()):
            spec = {
                "config": args.config,
                "steps": args.steps,
                "threads": args.threads,
                "compile": compiled,
                "gradient_file": str(WORKDIR / f"flop_floor_gradient_{n}.npy"),
            }
            runs[name].append({**_run_side(src, spec), "gradient_file": spec["gradient_file"]})
    report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, list[dict]]) -> None:
    """The side-by-side table and the losses of every step."""
    every = [r for side in runs.values() for r in side]
    square = max(r["square_flops_per_s"] for r in every)
    print(
        f"{args.config}, {args.threads} thread(s), {args.steps} timed steps x {args.repeat} "
        f"processes per side; matmul rate: square 1024^3 {square / 1e9:.0f} GFLOP/s"
    )
    bandwidth = max(r["bandwidth"] for r in every)
    print(f"memory bandwidth: single-threaded add {bandwidth / 1e9:.1f} GB/s")
    head = (
        "| side | hits/step | GFLOP/step | step | GFLOP/s | matmuls alone | peak | floor | ratio "
        "| GB moved/step | roofline floor | roofline ratio |"
    )
    print("\n" + head + "\n|" + "---|" * 12)
    base_time = None
    for name, side in runs.items():
        best = min(side, key=lambda r: r["step_s"])
        replay = min(r["replay_s"] for r in side)
        peak = max(square, best["flops"] / replay)
        floor = best["flops"] / peak
        base_time = base_time or best["step_s"]
        roof = "| - | - | - |"
        if best["traffic"]:
            moved = sum(b for _, b, _ in best["traffic"])
            bound = sum(max(f / peak, b / bandwidth) for _, b, f in best["traffic"])
            roof = f"| {moved / 1e9:.2f} | {bound:.3f} s | {best['step_s'] / bound:.2f} |"
        print(
            f"| {name} | {best['hits']:,.0f} | {best['flops'] / 1e9:.2f} | "
            f"{best['step_s']:.3f} s | {best['flops'] / best['step_s'] / 1e9:.0f} | "
            f"{replay:.3f} s | {peak / 1e9:.0f} | {floor:.3f} s | {best['step_s'] / floor:.2f} "
            + roof
        )
    traffic = min(runs[next(iter(runs))], key=lambda r: r["step_s"])["traffic"]
    if traffic:
        by_op: dict[str, list[int]] = {}
        for name, moved, _ in traffic:
            by_op.setdefault(name, []).append(moved)
        total = sum(sum(v) for v in by_op.values())
        print(f"\nbytes moved by operator ({next(iter(runs))}; the largest shares):")
        for name, moved in sorted(by_op.items(), key=lambda kv: -sum(kv[1]))[:10]:
            share = sum(moved) / total
            print(f"  {name}: {sum(moved) / 1e9:.2f} GB in {len(moved)} calls ({share:.0%})")
    compare(runs)
    print(
        "\nmatmuls alone: the step's own matrix products replayed back to back; peak: the "
        "better of that rate and the square product's; floor = FLOPs / peak; ratio = step / floor; "
        "roofline floor = sum over the step's operators of max(FLOPs / peak, bytes / bandwidth)"
    )


def compare(runs: dict[str, list[dict]]) -> None:
    """Every side against the first: step time, the first step's gradient, the losses."""
    import numpy as np

    names = list(runs)
    first = min(runs[names[0]], key=lambda r: r["step_s"])
    exact = np.load(first["gradient_file"])[1]

    def error(a, b) -> float:
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    print("\nthe first step's gradient, float32 against float64 (|g32 - g64| / |g64|):")
    for name in names:
        g32, g64 = np.load(runs[name][0]["gradient_file"])
        print(
            f"  {name}: {error(g32, g64):.1e}; its float64 against {names[0]}'s: "
            f"{error(g64, exact):.1e}"
        )
    for name in names[1:]:
        other = min(runs[name], key=lambda r: r["step_s"])
        print(f"\n{name} against {names[0]}:")
        print(f"  step time ratio {other['step_s'] / first['step_s']:.2f}")
        print("  losses per step (relative difference):")
        for i, (a, b) in enumerate(zip(first["losses"], other["losses"], strict=True)):
            print(f"    step {i}: {a:.6f} | {b:.6f} | {abs(a - b) / max(abs(a), 1e-12):.1e}")


if __name__ == "__main__":
    main()
