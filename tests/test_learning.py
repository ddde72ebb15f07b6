"""Learning sanity ladder, rung (a): the model and optimiser can fit one batch.

The costly rungs (a clean motion task learnt to >= 95%, the web corpus's loss well below
chance, pre-trained features beating random ones) run in benchmarks/learning.py.
"""

import pytest
import torch
import torch.nn.functional as F

from weaksup.models.video_resnet import build_model


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_batch_is_overfit_to_near_zero_loss(precision):
    torch.manual_seed(0)
    model = build_model("r2plus1d_10", num_classes=4).to(memory_format=torch.channels_last_3d)
    x = torch.randn(8, 3, 4, 16, 16).contiguous(memory_format=torch.channels_last_3d)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(40):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1.0
    assert min(losses[-5:]) < 0.05, losses[-10:]
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).all()
