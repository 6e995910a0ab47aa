"""PyTorch as a bench peer: `python3 test/bench/peers/torch_bench.py '<ChildRequest as JSON>'`.

The parent (test/bench/run.ts) starts it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from
the environment and glibc's malloc told to keep freed memory (MALLOC_*_ env), one process per
workload and thread count. It follows the timing protocol of test/bench/protocol.ts (warm-up, steps
per run from the warm-up's pace, median of the runs) and prints one line
`@@BENCH_RESULT <json>` on stdout.

The model is the workload's (test/bench/workloads.ts), translated to nn.Sequential: float32, NCHW,
nn.CrossEntropyLoss on logits (the final softmax folded into the loss, as our trainer does) or
nn.MSELoss, torch.optim.SGD with the same lr and momentum; denormals flushed to zero (see main). One step: zero_grad, forward, loss,
backward, step, loss.item() (our trainer reads the loss every step too). Inference (W4) runs under
torch.no_grad() and applies the softmax, as the other peers' predict does.
"""
import json
import os
import sys
import time

RESULT_MARKER = "@@BENCH_RESULT "
READY_MARKER = "@@BENCH_READY"


def emit(result):
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()


def blas_info(torch):
    """Which BLAS the process really uses: the libraries mapped into it after a matmul, and what
    the build says (Debian builds against the generic libblas.so.3, which update-alternatives points
    at an implementation)."""
    a = torch.randn(64, 64)
    (a @ a).sum().item()
    libs = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if any(key in name for key in ("blas", "lapack", "mkl", "dnnl", "gomp", "omp")):
                libs.add(os.path.realpath(path))
    config = torch.__config__.show()
    build_blas = ""
    for part in config.replace("\n", ",").split(","):
        if "BLAS_INFO=" in part:
            build_blas = part[part.index("BLAS_INFO="):].strip()
    openblas = any("openblas" in lib for lib in libs)
    core = ""
    for lib in libs:
        if "libopenblas" in lib:
            try:
                import ctypes

                handle = ctypes.CDLL(lib)
                handle.openblas_get_config.restype = ctypes.c_char_p
                handle.openblas_get_corename.restype = ctypes.c_char_p
                core = "%s; core %s" % (handle.openblas_get_config().decode(), handle.openblas_get_corename().decode())
            except (OSError, AttributeError):
                pass
    return {
        "openblasConfig": core,
        "blas": "OpenBLAS" if openblas else "not OpenBLAS (see libraries)",
        "blasLibraries": " ".join(sorted(libs)),
        "buildBlas": build_blas,
        "mkldnn": str(torch.backends.mkldnn.is_available()),
    }


def build(torch, nn, workload):
    layers = []
    shape = list(workload["inputShape"])  # C, H, W or [features]
    specs = workload["layers"]
    for i, spec in enumerate(specs):
        last = i == len(specs) - 1
        kind = spec["type"]
        if kind == "dense":
            in_features = 1
            for d in shape:
                in_features *= d
            layers.append(nn.Linear(in_features, spec["units"]))
            shape = [spec["units"]]
        elif kind == "conv2d":
            k = spec["kernel_size"]
            assert spec["padding"] == "valid" and spec["stride"] == 1
            layers.append(nn.Conv2d(shape[0], spec["filters"], k, stride=1, padding=0))
            shape = [spec["filters"], shape[1] - k + 1, shape[2] - k + 1]
        elif kind == "maxpool2d":
            p = spec["pool_size"]
            layers.append(nn.MaxPool2d(p))
            shape = [shape[0], shape[1] // p, shape[2] // p]
        elif kind == "flatten":
            layers.append(nn.Flatten())
            n = 1
            for d in shape:
                n *= d
            shape = [n]
        else:
            raise ValueError("unknown layer " + kind)
        activation = spec.get("activation", "linear")
        if activation == "relu":
            layers.append(nn.ReLU())
        elif activation == "tanh":
            layers.append(nn.Tanh())
        elif activation == "softmax":
            # Folded into nn.CrossEntropyLoss for training; applied explicitly for inference.
            assert last and workload["loss"] == "cross_entropy"
        elif activation != "linear":
            raise ValueError("unknown activation " + activation)
    return nn.Sequential(*layers)


def synthetic(torch, workload, seed):
    """In-memory data from a seeded generator, with the same distributions as workloads.ts."""
    g = torch.Generator().manual_seed(seed)
    rows = workload["poolRows"]
    shape = workload["inputShape"]
    x = torch.rand((rows, *shape), generator=g, dtype=torch.float32)
    if workload["loss"] == "cross_entropy":
        classes = workload["layers"][-1]["units"]
        y = torch.randint(0, classes, (rows,), generator=g)
    else:
        x = x * 2 - 1
        width = shape[0]
        j = torch.arange(1, width + 1, dtype=torch.float32)
        y = (torch.sin(j * x).sum(dim=1, keepdim=True) / width).contiguous()
    return x, y


def machine_cpu():
    """Busy and total CPU ticks of the whole machine (/proc/stat), or None."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def measure(step, samples_per_step, plan):
    warm_start = time.perf_counter()
    times = []
    while True:
        done = len(times)
        elapsed = time.perf_counter() - warm_start
        if done >= 2 and elapsed > plan["warmupMaxSeconds"]:
            break
        if done >= plan["warmupSteps"] and elapsed >= plan["warmupMinSeconds"]:
            break
        step()
        times.append(time.perf_counter())
    warmed = len(times)
    half = warmed >> 1
    pace_from = warm_start if half == 0 else times[half - 1]
    seconds_per_step = (times[-1] - pace_from) / max(1, warmed - half)
    steps = plan.get("steps") or min(plan["maxSteps"], max(plan["minSteps"], -(-plan["runSeconds"] // seconds_per_step)))
    steps = int(steps)
    runs = []
    machine_from = machine_cpu()
    own_from = time.process_time()
    timed_from = time.perf_counter()
    for _ in range(plan["runs"]):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        runs.append(steps * samples_per_step / (time.perf_counter() - t0))
    wall = time.perf_counter() - timed_from
    own = time.process_time() - own_from
    machine_to = machine_cpu()
    other = None
    if machine_from and machine_to and machine_to[1] > machine_from[1]:
        busy_cores = (machine_to[0] - machine_from[0]) / (machine_to[1] - machine_from[1]) * os.cpu_count()
        other = busy_cores - own / wall
    ordered = sorted(runs)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return {"warmupSteps": warmed, "stepsPerRun": steps, "runs": runs, "median": median, "min": min(runs), "max": max(runs), "otherCores": other, "ownCores": own / wall}


def main(request):
    import torch
    from torch import nn

    threads = request["threads"]
    torch.set_num_threads(threads)
    # Flush denormals to zero (FTZ/DAZ), PyTorch's own switch for CPU speed. Without it W1 slows
    # to half after ~1,500 steps: the momentum buffers of parameters whose gradient is exactly 0
    # (dead ReLU units) decay into denormals and stick at the smallest ones (0.9 * 1 ulp rounds
    # back to 1 ulp), and every float32 operation on a denormal is a slow microcode assist. Our
    # trainer does not need it (its figures stay flat), so torch gets it.
    flush = torch.set_flush_denormal(True)
    workload = request["workload"]
    torch.manual_seed(request["seed"])
    info = {
        "torch": torch.__version__,
        "threads": str(torch.get_num_threads()),
        "cpus": str(len(os.sched_getaffinity(0))),
        "flushDenormal": str(flush),
    }
    info.update(blas_info(torch))

    model = build(torch, nn, workload)
    x, y = synthetic(torch, workload, request["seed"])
    batch = workload["batch"]
    count = x.shape[0] // batch
    batches = [(x[b * batch:(b + 1) * batch].contiguous(), y[b * batch:(b + 1) * batch].contiguous()) for b in range(count)]
    state = {"next": 0}

    if workload["mode"] == "infer":
        model.eval()

        def step():
            xb, _ = batches[state["next"] % count]
            state["next"] += 1
            with torch.no_grad():
                torch.softmax(model(xb), dim=1)
    else:
        loss_fn = nn.CrossEntropyLoss() if workload["loss"] == "cross_entropy" else nn.MSELoss()
        opt = workload["optimizer"]
        optimizer = torch.optim.SGD(model.parameters(), lr=opt["lr"], momentum=opt["momentum"])
        model.train()

        def step():
            xb, yb = batches[state["next"] % count]
            state["next"] += 1
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            value = loss.item()
            if value != value or value in (float("inf"), float("-inf")):
                raise RuntimeError("the loss became %r" % value)

    return {"ok": True, "measurement": measure(step, batch, request["plan"]), "info": info}


if __name__ == "__main__":
    try:
        result = main(json.loads(sys.argv[1]))
    except Exception as error:  # reported, never a crash
        result = {"ok": False, "status": "error", "error": "%s: %s" % (type(error).__name__, error), "info": {}}
    emit(result)
