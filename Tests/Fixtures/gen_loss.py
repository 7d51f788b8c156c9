"""Golden fixtures for softmaxCrossEntropy (PyTorch F.cross_entropy, autograd).

Writes loss.safetensors: logits, labels (float class ids, 255 or another ignore index),
optional class weights, the loss, an upstream gradient grad_out and grad_logits.
When every pixel is ignored PyTorch returns NaN for 'mean'; the library defines 0 with a
zero gradient, stored here as the expected values (config all_ignored).
    python Tests/Fixtures/gen_loss.py
"""
import torch
import torch.nn.functional as F

from fixturelib import save

torch.manual_seed(1)


def loss_cases():
    cases = []
    shapes = [[1, 21, 4, 5], [2, 3, 5, 7], [2, 5, 3, 3], [1, 1, 4, 4], [3, 17, 2, 3], [2, 2, 6, 1],
              [4, 5], [7, 3], [1, 21, 8, 8], [2, 4, 3, 9], [1, 3, 1, 1], [2, 21], [2, 6, 4, 4]]
    k = 0
    for shape in shapes:
        for reduction in ("mean", "sum", "none"):
            N, C = shape[0], shape[1]
            spatial = shape[2:]
            ignore = [255, -100, 255, 0][k % 4] if C > 1 else 255
            weighted = k % 3 == 1
            ignore_frac = [0.2, 0.0, 0.5][k % 3]
            all_ignored = (k % 13 == 6)
            scale = [1.0, 4.0, 1e4][k % 3] if k % 5 == 2 else [1.0, 4.0][k % 2]
            logits = (torch.randn(*shape) * scale).requires_grad_(True)
            labels = torch.randint(0, C, [N] + spatial)
            if ignore == 0 and C > 1:
                labels = torch.randint(1, C, [N] + spatial)  # ignore class 0 exactly where masked
            mask = torch.rand([N] + spatial) < ignore_frac
            if all_ignored:
                mask[...] = True
            labels = torch.where(mask, torch.full_like(labels, ignore), labels)
            w = torch.rand(C) + 0.25 if weighted else None
            out = F.cross_entropy(logits, labels, weight=w, ignore_index=ignore, reduction=reduction)
            g = torch.randn(out.shape)
            if all_ignored and reduction == "mean":
                out = torch.zeros(())
                grad = torch.zeros(*shape)
            else:
                out.backward(g)
                grad = logits.grad
            ts = {"logits": logits, "labels": labels.float(), "loss": out, "grad_out": g, "grad_logits": grad}
            if weighted:
                ts["weights"] = w
            cases.append(({"shape": shape, "reduction": reduction, "ignore": ignore, "weighted": weighted,
                           "all_ignored": all_ignored, "scale": scale}, ts))
            k += 1
    return cases


if __name__ == "__main__":
    save("loss", loss_cases())
