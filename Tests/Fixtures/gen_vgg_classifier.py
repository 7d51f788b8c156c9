"""Golden logits of a narrow torchvision VGG16 (VGGFCNSurgeryTests, VGG16Classifier).

torchvision's own VGG class and make_layers, with every channel count scaled by the
width rule of gen_models.py (max(1, round(n * width))) and the classifier rebuilt with the
same module layout at the narrow width (torchvision hard-codes 512*7*7 -> 4096), so the
state-dict names are torchvision's. Weights from detinit (not stored). Inputs: a 224x224
image filled on both sides like a parameter named "input" (uniform in [-1, 1), not
stored), and a stored 1x3x40x72 one (features 1x2, stretched to 7x7 by the adaptive pool).
    python Tests/Fixtures/gen_vgg_classifier.py
"""
import torch
import torch.nn as nn
import torchvision

from detinit import deterministic_init, fill
from fixturelib import save

SEED = 2015
WIDTH = 1 / 16
CLASSES = 10


def ch(n):
    return max(1, int(round(n * WIDTH)))


def narrow_vgg16():
    cfg = [ch(v) if v != "M" else v for v in torchvision.models.vgg.cfgs["D"]]
    model = torchvision.models.vgg.VGG(torchvision.models.vgg.make_layers(cfg), num_classes=CLASSES)
    h = ch(4096)
    model.classifier = nn.Sequential(
        nn.Linear(cfg[-2] * 49, h), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(h, h), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(h, CLASSES))
    return model


if __name__ == "__main__":
    model = deterministic_init(narrow_vgg16(), SEED).eval()
    cfg = {"width": WIDTH, "classes": CLASSES, "seed": SEED,
           "names": list(model.state_dict().keys()),
           "params": sum(p.numel() for p in model.parameters())}
    x224 = fill("input", [1, 3, 224, 224], -1.0, 1.0, SEED)
    x_small = torch.randn(1, 3, 40, 72, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cases = [(dict(cfg, input="generated", size=[224, 224]), {"output": model(x224)}),
                 (dict(cfg, input="stored", size=[40, 72]), {"input": x_small, "output": model(x_small)})]
    save("models_vgg_classifier", cases)
