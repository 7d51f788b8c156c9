"""Golden outputs of the FCN models, from PyTorch implementations of the same layouts.

Weights are not stored: both sides fill them from the parameter names (detinit.py), so
the fixture holds inputs, outputs and (for the gradient check) parameter gradients.
    python Tests/Fixtures/gen_models.py [fixture names, default all]
Models:
  * VGG16 FCN-32s/16s/8s/8s-at-once in the Caffe reference layout (pad 100, ceil-mode
    pools, fc6 7x7, crops 19/5+27/9+31), with a width multiplier for small fixtures;
  * the same four with size-preserving padding (conv1_1 pad 1, fc6 pad 3, upsampling
    kernel 2f stride f pad f/2, fusions aligned at offset 0 with the longer map cut at
    its end), fixture models_vgg_same;
  * the ResNet-34 FCN-8s of seed 002 (stage1..3, scores1..3, upsample_2x/4x/8x);
  * torchvision fcn_resnet50 (aux head on), names = torchvision's state-dict keys.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from detinit import deterministic_init
from fixturelib import save

torch.manual_seed(0)
SEED = 2015


def bilinear_kernel(c, k):
    f = (k + 1) // 2
    center = f - 1 if k % 2 == 1 else f - 0.5
    og = np.ogrid[:k, :k]
    filt = (1 - abs(og[0] - center) / f) * (1 - abs(og[1] - center) / f)
    w = np.zeros((c, c, k, k), dtype=np.float32)
    w[range(c), range(c)] = filt
    return torch.from_numpy(w)


def ch(n, width):
    return max(1, int(round(n * width)))


class VGGFCN(nn.Module):
    """Caffe reference FCN (fcn.berkeleyvision.org voc-fcn{32,16,8}s, 8s-atonce), and FCN-4s:
    one more skip from pool2. Its crops (17 for score_pool2, 33 at the end) follow Caffe's
    coord_map rules (conv/pool: x = s*i + (k-1)/2 - p; deconv: the inverse), composed
    from the data layer by hand."""

    def __init__(self, variant, n_class, width):
        super().__init__()
        self.variant = variant
        cfg = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]
        cin = 3
        for s, stage in enumerate(cfg, 1):
            for i, c in enumerate(stage, 1):
                c = ch(c, width)
                pad = 100 if (s, i) == (1, 1) else 1
                setattr(self, f"conv{s}_{i}", nn.Conv2d(cin, c, 3, padding=pad))
                cin = c
        f = ch(4096, width)
        self.fc6 = nn.Conv2d(cin, f, 7)
        self.fc7 = nn.Conv2d(f, f, 1)
        self.score_fr = nn.Conv2d(f, n_class, 1)
        up = lambda k, s: nn.ConvTranspose2d(n_class, n_class, k, s, bias=False)
        if variant == "32s":
            self.upscore = up(64, 32)
        else:
            self.upscore2 = up(4, 2)
            self.score_pool4 = nn.Conv2d(ch(512, width), n_class, 1)
            if variant == "16s":
                self.upscore16 = up(32, 16)
            else:
                self.upscore_pool4 = up(4, 2)
                self.score_pool3 = nn.Conv2d(ch(256, width), n_class, 1)
                if variant == "4s":
                    self.upscore_pool3 = up(4, 2)
                    self.score_pool2 = nn.Conv2d(ch(128, width), n_class, 1)
                    self.upscore4 = up(8, 4)
                else:
                    self.upscore8 = up(16, 8)
        for name, m in self.named_modules():
            if isinstance(m, nn.ConvTranspose2d):
                m.weight.data.copy_(bilinear_kernel(n_class, m.kernel_size[0]))

    def forward(self, x):
        H, W = x.shape[2:]
        h = x
        pools = {}
        for s, n in enumerate([2, 2, 3, 3, 3], 1):
            for i in range(1, n + 1):
                h = F.relu(getattr(self, f"conv{s}_{i}")(h))
            h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            pools[s] = h
        h = F.dropout(F.relu(self.fc6(h)), 0.5, self.training)
        h = F.dropout(F.relu(self.fc7(h)), 0.5, self.training)
        h = self.score_fr(h)
        crop = lambda t, o, ref: t[:, :, o:o + ref.shape[2], o:o + ref.shape[3]]
        if self.variant == "32s":
            h = self.upscore(h)
            return h[:, :, 19:19 + H, 19:19 + W]
        up2 = self.upscore2(h)
        p4 = pools[4] * 0.01 if self.variant == "8s-atonce" else pools[4]
        h = up2 + crop(self.score_pool4(p4), 5, up2)
        if self.variant == "16s":
            h = self.upscore16(h)
            return h[:, :, 27:27 + H, 27:27 + W]
        up4 = self.upscore_pool4(h)
        p3 = pools[3] * 0.0001 if self.variant == "8s-atonce" else pools[3]
        h = up4 + crop(self.score_pool3(p3), 9, up4)
        if self.variant == "4s":
            up8 = self.upscore_pool3(h)
            h = up8 + crop(self.score_pool2(pools[2]), 17, up8)
            h = self.upscore4(h)
            return h[:, :, 33:33 + H, 33:33 + W]
        h = self.upscore8(h)
        return h[:, :, 31:31 + H, 31:31 + W]


class VGGFCNSame(nn.Module):
    """The VGG16 FCNs without the 100-pixel margin: every conv keeps its size, the
    bilinear upsamplings are padded by f/2 so the grids align, crops start at 0."""

    def __init__(self, variant, n_class, width):
        super().__init__()
        self.variant = variant
        cfg = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]
        cin = 3
        for s, stage in enumerate(cfg, 1):
            for i, c in enumerate(stage, 1):
                c = ch(c, width)
                setattr(self, f"conv{s}_{i}", nn.Conv2d(cin, c, 3, padding=1))
                cin = c
        f = ch(4096, width)
        self.fc6 = nn.Conv2d(cin, f, 7, padding=3)
        self.fc7 = nn.Conv2d(f, f, 1)
        self.score_fr = nn.Conv2d(f, n_class, 1)
        up = lambda k, s: nn.ConvTranspose2d(n_class, n_class, k, s, padding=s // 2, bias=False)
        if variant == "32s":
            self.upscore = up(64, 32)
        else:
            self.upscore2 = up(4, 2)
            self.score_pool4 = nn.Conv2d(ch(512, width), n_class, 1)
            if variant == "16s":
                self.upscore16 = up(32, 16)
            else:
                self.upscore_pool4 = up(4, 2)
                self.score_pool3 = nn.Conv2d(ch(256, width), n_class, 1)
                if variant == "4s":
                    self.upscore_pool3 = up(4, 2)
                    self.score_pool2 = nn.Conv2d(ch(128, width), n_class, 1)
                    self.upscore4 = up(8, 4)
                else:
                    self.upscore8 = up(16, 8)
        for name, m in self.named_modules():
            if isinstance(m, nn.ConvTranspose2d):
                m.weight.data.copy_(bilinear_kernel(n_class, m.kernel_size[0]))

    def forward(self, x):
        H, W = x.shape[2:]
        h = x
        pools = {}
        for s, n in enumerate([2, 2, 3, 3, 3], 1):
            for i in range(1, n + 1):
                h = F.relu(getattr(self, f"conv{s}_{i}")(h))
            h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            pools[s] = h
        h = F.dropout(F.relu(self.fc6(h)), 0.5, self.training)
        h = F.dropout(F.relu(self.fc7(h)), 0.5, self.training)
        h = self.score_fr(h)
        fit = lambda t, ref: t[:, :, :ref.shape[2], :ref.shape[3]]
        if self.variant == "32s":
            return self.upscore(h)[:, :, :H, :W]
        p4 = self.score_pool4(pools[4] * 0.01 if self.variant == "8s-atonce" else pools[4])
        h = fit(self.upscore2(h), p4) + p4
        if self.variant == "16s":
            return self.upscore16(h)[:, :, :H, :W]
        p3 = self.score_pool3(pools[3] * 0.0001 if self.variant == "8s-atonce" else pools[3])
        h = fit(self.upscore_pool4(h), p3) + p3
        if self.variant == "4s":
            p2 = self.score_pool2(pools[2])
            h = fit(self.upscore_pool3(h), p2) + p2
            return self.upscore4(h)[:, :, :H, :W]
        return self.upscore8(h)[:, :, :H, :W]


class ResNet34FCN(nn.Module):
    """Seed 002: ResNet-34 stages at 1/8, 1/16, 1/32 with bilinear transpose convolutions."""

    def __init__(self, n_class):
        super().__init__()
        import torchvision
        net = torchvision.models.resnet34(weights=None)
        self.stage1 = nn.Sequential(*list(net.children())[:-4])
        self.stage2 = list(net.children())[-4]
        self.stage3 = list(net.children())[-3]
        self.scores1 = nn.Conv2d(512, n_class, 1)
        self.scores2 = nn.Conv2d(256, n_class, 1)
        self.scores3 = nn.Conv2d(128, n_class, 1)
        self.upsample_8x = nn.ConvTranspose2d(n_class, n_class, 16, 8, 4, bias=False)
        self.upsample_8x.weight.data = bilinear_kernel(n_class, 16)
        self.upsample_4x = nn.ConvTranspose2d(n_class, n_class, 4, 2, 1, bias=False)
        self.upsample_4x.weight.data = bilinear_kernel(n_class, 4)
        self.upsample_2x = nn.ConvTranspose2d(n_class, n_class, 4, 2, 1, bias=False)
        self.upsample_2x.weight.data = bilinear_kernel(n_class, 4)

    def forward(self, x):
        s1 = self.stage1(x)
        s2 = self.stage2(s1)
        s3 = self.stage3(s2)
        s3 = self.upsample_2x(self.scores1(s3))
        s2 = self.scores2(s2) + s3
        s2 = self.upsample_4x(s2)
        s = self.scores3(s1) + s2
        return self.upsample_8x(s)


def vgg_cases():
    cases = []
    n_class = 5
    for variant in ["32s", "16s", "8s", "8s-atonce", "4s"]:
        model = deterministic_init(VGGFCN(variant, n_class, 1 / 32), SEED).eval()
        for (h, w) in [(1, 1), (17, 23), (32, 32)]:
            x = torch.randn(1, 3, h, w) * 50
            with torch.no_grad():
                y = model(x)
            cases.append(({"model": "vgg", "variant": variant, "classes": n_class, "width": 1 / 32,
                           "seed": SEED, "params": sum(p.numel() for p in model.parameters()),
                           "names": list(model.state_dict().keys())},
                          {"input": x, "output": y}))
    return cases


def vgg_same_cases():
    """Same-padding layout: the five variants at sizes divisible by 32 and not (the
    ceil-mode pools then leave a longer upsampled map to cut), plus 1x1; one FCN-8s
    gradient case (every parameter's gradient of sum(output * R))."""
    torch.manual_seed(1)   # its own stream: independent of the other fixtures
    cases = []
    n_class = 5
    for variant in ["32s", "16s", "8s", "8s-atonce", "4s"]:
        model = deterministic_init(VGGFCNSame(variant, n_class, 1 / 32), SEED).eval()
        for (h, w) in [(1, 1), (17, 23), (32, 40)]:
            x = torch.randn(1, 3, h, w) * 50
            with torch.no_grad():
                y = model(x)
            cases.append(({"model": "vgg", "variant": variant, "classes": n_class, "width": 1 / 32,
                           "seed": SEED, "grad": False}, {"input": x, "output": y}))
    model = deterministic_init(VGGFCNSame("8s", 3, 1 / 128), SEED).eval()
    x = torch.randn(2, 3, 20, 27) * 50
    y = model(x)
    r = torch.randn_like(y)
    (y * r).sum().backward()
    ts = {"input": x, "output": y, "grad_output": r}
    for name, p in model.named_parameters():
        ts["grad." + name] = p.grad
    cases.append(({"model": "vgg", "variant": "8s", "classes": 3, "width": 1 / 128, "seed": SEED, "grad": True}, ts))
    return cases


def vgg_grad_cases():
    """FCN-8s at 1/64 width in training mode without dropout (p made inert by eval of
    dropout only): every parameter's gradient of sum(output * R)."""
    model = deterministic_init(VGGFCN("8s", 3, 1 / 64), SEED)
    model.eval()  # dropout off; no batch norm in this model, so eval == train otherwise
    x = torch.randn(2, 3, 20, 27) * 50
    y = model(x)
    r = torch.randn_like(y)
    (y * r).sum().backward()
    ts = {"input": x, "output": y, "grad_output": r}
    for name, p in model.named_parameters():
        ts["grad." + name] = p.grad
    return [({"model": "vgg", "variant": "8s", "classes": 3, "width": 1 / 64, "seed": SEED}, ts)]


def resnet_cases():
    import torchvision
    cases = []
    m = deterministic_init(ResNet34FCN(7), SEED).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y = m(x)
    cases.append(({"model": "resnet34_fcn8s", "classes": 7, "seed": SEED,
                   "params": sum(p.numel() for p in m.parameters()),
                   "names": list(m.state_dict().keys())}, {"input": x, "output": y}))
    for arch in ["fcn_resnet50"]:
        m = getattr(torchvision.models.segmentation, arch)(weights=None, weights_backbone=None,
                                                           num_classes=4, aux_loss=True)
        m = deterministic_init(m, SEED).eval()
        x = torch.randn(1, 3, 48, 40)
        with torch.no_grad():
            out = m(x)
        cases.append(({"model": arch, "classes": 4, "aux": True, "seed": SEED,
                       "params": sum(p.numel() for p in m.parameters()),
                       "names": list(m.state_dict().keys())},
                      {"input": x, "output": out["out"], "aux": out["aux"]}))
    return cases


if __name__ == "__main__":
    import sys
    fixtures = {"models_vgg": vgg_cases, "models_vgg_grad": vgg_grad_cases,
                "models_resnet": resnet_cases, "models_vgg_same": vgg_same_cases}
    for name, make in fixtures.items():
        if len(sys.argv) == 1 or name in sys.argv[1:]:
            save(name, make())
