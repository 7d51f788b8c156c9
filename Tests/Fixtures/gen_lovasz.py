"""Golden fixtures for lovaszSoftmax (Lovasz-softmax loss, Berman et al. CVPR 2018).

PyTorch has no Lovasz loss; this script writes it from the paper's Algorithm 1 with torch
ops, as the authors' reference code computes it (softmax probabilities, errors sorted
descending, the Lovasz gradient of the Jaccard loss, mean over classes and, per image,
over images), and takes the gradient from torch.autograd. Sorting is stable so that tied
errors keep pixel order (the library's rule).

Writes lovasz.safetensors: logits, labels (float class ids or the ignore index), the
loss, an upstream scalar gradient grad_out and grad_logits.
    python Tests/Fixtures/gen_lovasz.py
"""
import torch

from fixturelib import save

torch.manual_seed(3)


def lovasz_grad(gt_sorted):
    g = gt_sorted.sum()
    inter = g - gt_sorted.cumsum(0)
    union = g + (1 - gt_sorted).cumsum(0)
    jac = 1.0 - inter / union
    jac[1:] = jac[1:] - jac[:-1]
    return jac


def lovasz_flat(probas, labels, classes):
    # probas [P, C], labels [P]
    if probas.numel() == 0:
        return probas.sum() * 0.0
    C = probas.shape[1]
    losses = []
    for c in range(C):
        fg = (labels == c).float()
        if classes == "present" and fg.sum() == 0:
            continue
        errors = (fg - probas[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, stable=True, dim=0, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    if not losses:
        return probas.sum() * 0.0
    return torch.stack(losses).mean()


def flatten(probas, labels, ignore):
    # [N, C, ...] -> [P, C] in (n, h, w) order, ignored pixels removed
    N, C = probas.shape[:2]
    p = probas.reshape(N, C, -1).permute(0, 2, 1).reshape(-1, C)
    y = labels.reshape(-1)
    keep = y != ignore
    return p[keep], y[keep]


def lovasz_softmax(logits, labels, ignore, classes, per_image):
    probas = logits.softmax(1)
    if per_image:
        return torch.stack([lovasz_flat(*flatten(p[None], y[None], ignore), classes)
                            for p, y in zip(probas, labels)]).mean()
    return lovasz_flat(*flatten(probas, labels, ignore), classes)


def cases():
    out = []
    shapes = [[1, 2, 4, 5], [2, 3, 5, 7], [2, 5, 3, 3], [1, 1, 4, 4], [3, 6, 2, 3], [4, 5], [2, 21, 6, 6],
              [2, 4, 9, 1], [1, 3, 8, 8]]
    k = 0
    for shape in shapes:
        for classes in ("present", "all"):
            for per_image in (False, True):
                N, C = shape[0], shape[1]
                spatial = shape[2:]
                ignore = 255 if k % 3 else -100
                scale = [1.0, 3.0, 0.2][k % 3]
                logits = (torch.randn(*shape) * scale).requires_grad_(True)
                labels = torch.randint(0, max(1, C - (k % 2)), [N] + spatial)   # some classes absent
                mask = torch.rand([N] + spatial) < [0.0, 0.3][k % 2]
                if k % 11 == 5:
                    mask[0] = True   # first image has no labelled pixel
                labels = torch.where(mask, torch.full_like(labels, ignore), labels)
                loss = lovasz_softmax(logits, labels, ignore, classes, per_image)
                g = torch.randn(())
                loss.backward(g)
                out.append(({"shape": shape, "classes": classes, "per_image": per_image, "ignore": ignore},
                            {"logits": logits, "labels": labels.float(), "loss": loss, "grad_out": g,
                             "grad_logits": logits.grad}))
                k += 1
    return out


if __name__ == "__main__":
    save("lovasz", cases())
