"""Golden fixtures for Training/ and Data/: torch.optim steps, clipping, lr schedulers,
FCN score.py metrics (numpy) and F.interpolate resizes used by the augmentation.

Writes training_optim, training_clip, training_schedule, training_metrics, training_resize.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from fixturelib import save

torch.manual_seed(0)
STEPS = 6


# ---------------------------------------------------------------- optimizers
def optim_case(kind, cfg):
    g = torch.Generator().manual_seed(len(optim_cases) + 1)
    p0 = torch.randn(3, 5, generator=g)
    p1 = torch.randn(7, generator=g)
    g0 = torch.randn(STEPS, 3, 5, generator=g)
    g1 = torch.randn(STEPS, 7, generator=g) * 3
    a, b = p0.clone().requires_grad_(), p1.clone().requires_grad_()
    lr, wd = cfg["lr"], cfg.get("weight_decay", 0.0)
    lm, dm = cfg.get("lr_mult", 1.0), cfg.get("decay_mult", 1.0)
    groups = [{"params": [a]}, {"params": [b], "lr": lr * lm, "weight_decay": wd * dm}]
    if kind == "sgd":
        opt = torch.optim.SGD(groups, lr=lr, momentum=cfg.get("momentum", 0.0), dampening=cfg.get("dampening", 0.0),
                              weight_decay=wd, nesterov=cfg.get("nesterov", False), foreach=False)
    elif kind == "adam":
        opt = torch.optim.Adam(groups, lr=lr, betas=tuple(cfg["betas"]), eps=cfg["eps"], weight_decay=wd, foreach=False)
    else:
        opt = torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg["betas"]), eps=cfg["eps"], weight_decay=wd, foreach=False)
    skip = cfg.get("skip", [])
    outs0, outs1 = [], []
    for s in range(STEPS):
        a.grad = g0[s].clone()
        b.grad = None if s in skip else g1[s].clone()
        opt.step()
        outs0.append(a.detach().clone())
        outs1.append(b.detach().clone())
    cfg = dict(cfg, kind=kind)
    optim_cases.append((cfg, {"p0": p0, "p1": p1, "g0": g0, "g1": g1,
                              "p0_after": torch.stack(outs0), "p1_after": torch.stack(outs1)}))


optim_cases = []
for cfg in [
    {"lr": 0.1},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.99, "weight_decay": 5e-4},
    {"lr": 0.02, "momentum": 0.9, "nesterov": True},
    {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
    {"lr": 0.03, "momentum": 0.8, "dampening": 0.25, "weight_decay": 1e-3},
    {"lr": 0.01, "momentum": 0.99, "weight_decay": 5e-4, "lr_mult": 2.0, "decay_mult": 0.0},
    {"lr": 0.01, "weight_decay": 0.1, "lr_mult": 0.5, "decay_mult": 2.0},
    {"lr": 0.05, "momentum": 0.9, "skip": [1, 2]},
]:
    optim_case("sgd", cfg)
for kind in ["adam", "adamw"]:
    for cfg in [
        {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8},
        {"lr": 1e-2, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.05},
        {"lr": 3e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01, "lr_mult": 2.0, "decay_mult": 0.0},
        {"lr": 5e-3, "betas": [0.5, 0.9], "eps": 1e-3, "weight_decay": 0.1, "skip": [0, 3]},
        {"lr": 0.1, "betas": [0.0, 0.5], "eps": 1e-8},
    ]:
        optim_case(kind, cfg)
save("training_optim", optim_cases)

# ---------------------------------------------------------------- clipping
clip_cases = []
for i, (max_norm, norm_type, scale) in enumerate([(1.0, 2.0, 1.0), (10.0, 2.0, 1.0), (0.5, "inf", 1.0),
                                                   (100.0, "inf", 1.0), (2.0, 2.0, 30.0), (0.0, 2.0, 1.0)]):
    g = torch.Generator().manual_seed(100 + i)
    grads = [torch.randn(4, 3, generator=g) * scale, torch.randn(5, generator=g) * scale]
    ps = [torch.zeros_like(x, requires_grad=True) for x in grads]
    for p, x in zip(ps, grads):
        p.grad = x.clone()
    nt = math.inf if norm_type == "inf" else norm_type
    total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type=nt, foreach=False)
    clip_cases.append(({"mode": "norm", "max_norm": max_norm, "norm_type": norm_type},
                       {"g0": grads[0], "g1": grads[1], "total": total.reshape(1),
                        "c0": ps[0].grad, "c1": ps[1].grad}))
for i, v in enumerate([0.5, 1.5]):
    g = torch.Generator().manual_seed(200 + i)
    grads = [torch.randn(4, 3, generator=g), torch.randn(5, generator=g)]
    ps = [torch.zeros_like(x, requires_grad=True) for x in grads]
    for p, x in zip(ps, grads):
        p.grad = x.clone()
    torch.nn.utils.clip_grad_value_(ps, v, foreach=False)
    clip_cases.append(({"mode": "value", "clip_value": v}, {"g0": grads[0], "g1": grads[1], "c0": ps[0].grad, "c1": ps[1].grad}))
save("training_clip", clip_cases)

# ---------------------------------------------------------------- schedules
N = 40


def run_sched(make, base):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    sched = make(opt)
    lrs = []
    for _ in range(N):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return torch.tensor(lrs, dtype=torch.float64)


S = torch.optim.lr_scheduler
sched_cases = [
    ({"kind": "step", "base": 0.1, "step_size": 7, "gamma": 0.5}, lambda o: S.StepLR(o, 7, 0.5)),
    ({"kind": "step", "base": 0.01, "step_size": 3, "gamma": 0.1}, lambda o: S.StepLR(o, 3, 0.1)),
    ({"kind": "multistep", "base": 0.1, "milestones": [5, 12, 30], "gamma": 0.2}, lambda o: S.MultiStepLR(o, [5, 12, 30], 0.2)),
    ({"kind": "exponential", "base": 0.05, "gamma": 0.9}, lambda o: S.ExponentialLR(o, 0.9)),
    ({"kind": "poly", "base": 0.02, "max": 30, "power": 0.9}, lambda o: S.PolynomialLR(o, total_iters=30, power=0.9)),
    ({"kind": "poly_lambda", "base": 0.01, "max": 40, "power": 0.9},
     lambda o: S.LambdaLR(o, lambda x: (1 - x / 40) ** 0.9)),
    ({"kind": "cosine", "base": 0.1, "max": 25, "min": 0.001}, lambda o: S.CosineAnnealingLR(o, T_max=25, eta_min=0.001)),
    ({"kind": "warmup_poly", "base": 0.02, "warmup": 5, "start": 0.1, "max": 40, "power": 0.9},
     lambda o: S.ChainedScheduler([S.LinearLR(o, start_factor=0.1, total_iters=5), S.PolynomialLR(o, total_iters=40, power=0.9)])),
    ({"kind": "warmup_step", "base": 0.1, "warmup": 8, "start": 1 / 3, "step_size": 10, "gamma": 0.5},
     lambda o: S.ChainedScheduler([S.LinearLR(o, total_iters=8), S.StepLR(o, 10, 0.5)])),
]
save("training_schedule", [(cfg, {"lrs": run_sched(make, cfg["base"])}) for cfg, make in sched_cases])


# ---------------------------------------------------------------- metrics (FCN score.py)
def fast_hist(a, b, n):
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n ** 2).reshape(n, n)


metric_cases = []
rs = np.random.RandomState(3)
for i, (n, npix, absent, ignore_frac, acc) in enumerate([
    (5, 400, [], 0.1, 0.7), (21, 3000, [3, 7, 8], 0.05, 0.6), (4, 50, [2], 0.3, 0.5),
    (3, 200, [], 0.0, 1.0), (6, 500, [0, 5], 0.2, 0.3), (2, 100, [1], 0.0, 0.8)]):
    present = [c for c in range(n) if c not in absent]
    gt = rs.choice(present, size=npix)
    pred = np.where(rs.rand(npix) < acc, gt, rs.randint(0, n, size=npix))
    if i == 4:
        pred[pred == 5] = 4   # class 5 absent in gt and prediction: nan IU
    gt = np.where(rs.rand(npix) < ignore_frac, 255, gt)
    hist = fast_hist(gt, pred, n).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc_all = np.diag(hist).sum() / hist.sum()
        acc_cls = np.diag(hist) / hist.sum(1)
        iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    freq = hist.sum(1) / hist.sum()
    fwiu = (freq[freq > 0] * iu[freq > 0]).sum()
    metric_cases.append(({"classes": n},
                         {"gt": torch.tensor(gt, dtype=torch.float32), "pred": torch.tensor(pred, dtype=torch.float32),
                          "hist": torch.tensor(hist), "acc": torch.tensor([acc_all]),
                          "mean_acc": torch.tensor([np.nanmean(acc_cls)]), "mean_iu": torch.tensor([np.nanmean(iu)]),
                          "fwiu": torch.tensor([fwiu]), "iu": torch.tensor(iu), "acc_cls": torch.tensor(acc_cls)}))
save("training_metrics", metric_cases)

# ---------------------------------------------------------------- resize (F.interpolate)
resize_cases = []
for i, (c, ih, iw, oh, ow) in enumerate([(3, 7, 9, 13, 5), (3, 16, 16, 32, 32), (2, 10, 12, 5, 6), (1, 5, 5, 5, 5),
                                         (3, 11, 8, 17, 23), (1, 9, 13, 4, 31), (3, 33, 20, 20, 33), (1, 1, 4, 3, 7)]):
    g = torch.Generator().manual_seed(300 + i)
    x = torch.rand(1, c, ih, iw, generator=g) * 255
    lab = torch.randint(0, 6, (1, 1, ih, iw), generator=g).float()
    yb = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
    yn = F.interpolate(lab, size=(oh, ow), mode="nearest")
    resize_cases.append(({"out": [oh, ow]}, {"image": x[0], "label": lab[0, 0], "bilinear": yb[0], "nearest": yn[0, 0]}))
save("training_resize", resize_cases)
