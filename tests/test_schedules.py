"""Learning-rate schedules against torch.optim.lr_scheduler, epoch by epoch, and weight
decay that leaves biases and BatchNorm alone when asked."""
import numpy as np
import pytest

from fastconv.nn import BatchNorm2D, Conv2D, Sequential
from fastconv.nn.optim import SGD, CosineAnnealingLR, LinearLR, SequentialLR, StepLR

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here")

SCHEDULES = {
    "step": (lambda o: StepLR(o, 3, gamma=0.5),
             lambda o: torch.optim.lr_scheduler.StepLR(o, 3, gamma=0.5)),
    "cosine": (lambda o: CosineAnnealingLR(o, 10, eta_min=0.01),
               lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, eta_min=0.01)),
    "linear_warmup": (lambda o: LinearLR(o, 0.1, 1.0, 4),
                      lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, 4)),
    "warmup_then_cosine": (
        lambda o: SequentialLR(o, [LinearLR(o, 0.25, 1.0, 3), CosineAnnealingLR(o, 8)], [3]),
        lambda o: torch.optim.lr_scheduler.SequentialLR(
            o, [torch.optim.lr_scheduler.LinearLR(o, 0.25, 1.0, 3),
                torch.optim.lr_scheduler.CosineAnnealingLR(o, 8)], [3])),
}


def small_model():
    return Sequential(Conv2D(2, 3, 3, seed=0, dtype=np.float64), BatchNorm2D(3).astype(np.float64))


@needs_torch
@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_gives_pytorch_rates_every_epoch(name):
    ours_of, theirs_of = SCHEDULES[name]
    optimizer = SGD(small_model(), lr=0.2)
    schedule = ours_of(optimizer)
    torch_optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    torch_schedule = theirs_of(torch_optimizer)
    for epoch in range(14):
        assert optimizer.lr == pytest.approx(torch_optimizer.param_groups[0]["lr"],
                                             rel=1e-12), epoch
        torch_optimizer.step()
        torch_schedule.step()
        schedule.step()


def test_schedule_resumes_at_its_epoch_and_refuses_bad_settings():
    optimizer = SGD(small_model(), lr=1.0)
    resumed = CosineAnnealingLR(SGD(small_model(), lr=1.0), 10, last_epoch=4)
    fresh = CosineAnnealingLR(optimizer, 10)
    for _ in range(4):
        fresh.step()
    assert optimizer.lr == resumed.optimizer.lr == pytest.approx((1 + np.cos(0.4 * np.pi)) / 2)
    with pytest.raises(ValueError, match="StepLR: step_size must be from 1"):
        StepLR(optimizer, 0)
    with pytest.raises(TypeError, match="optimizer must be an Optimizer"):
        StepLR("sgd", 3)
    with pytest.raises(ValueError, match="expected 1 increasing milestones"):
        SequentialLR(optimizer, [StepLR(optimizer, 2), StepLR(optimizer, 3)], [])


@pytest.mark.parametrize("schedules, milestones, error, words", [
    ("cosine", [3], TypeError, "SequentialLR: schedules must be a list of schedules, got str"),
    ([], [], ValueError, "SequentialLR: schedules must hold at least one schedule, got []"),
    ("step_and_text", [3], TypeError, "SequentialLR: schedules[1] must be a schedule "
                                      "(StepLR, CosineAnnealingLR, ...), got str 'cosine'"),
    ("two", 3, TypeError, "SequentialLR: milestones must be a list of ints, got int 3"),
    ("two", [2.7], TypeError, "SequentialLR: milestones[0] must be an int, got float 2.7"),
    ("two", ["3"], TypeError, "SequentialLR: milestones[0] must be an int, got str '3'"),
    ("two", [True], TypeError, "SequentialLR: milestones[0] must be an int, got bool True"),
    ("two", [0], ValueError, "SequentialLR: milestones[0] must be from 1"),
    ("two", [2, 4], ValueError, "SequentialLR: expected 1 increasing milestones >= 1 for 2 "
                                "schedules, got [2, 4]"),
    ("three", [4, 4], ValueError, "expected 2 increasing milestones >= 1 for 3 schedules, "
                                  "got [4, 4]"),
    ("three", [5, 2], ValueError, "got [5, 2]"),
])
def test_sequential_lr_refuses_bad_schedules_and_milestones_at_construction(
        schedules, milestones, error, words):
    optimizer = SGD(small_model(), lr=1.0)
    given = {"two": [StepLR(optimizer, 2), StepLR(optimizer, 3)],
             "three": [StepLR(optimizer, 2), StepLR(optimizer, 3), StepLR(optimizer, 4)],
             "step_and_text": [StepLR(optimizer, 2), "cosine"]}
    if isinstance(schedules, str) and schedules in given:
        schedules = given[schedules]
    with pytest.raises(error) as info:
        SequentialLR(optimizer, schedules, milestones)
    assert words in str(info.value)
    lr = SequentialLR(optimizer, (StepLR(optimizer, 2), StepLR(optimizer, 3)), (2,))
    assert lr.milestones == [2] and optimizer.lr == 1.0


@pytest.mark.parametrize("decay_all", [True, False])
def test_weight_decay_leaves_biases_and_norms_alone_when_asked(decay_all):
    model = small_model()
    for grad in model.grads().values():
        grad[...] = 0.0
    before = {k: v.copy() for k, v in model.params().items()}
    SGD(model, lr=0.1, weight_decay=0.5, decay_biases_and_norms=decay_all).step()
    for name, value in model.params().items():
        shrinks = decay_all or value.ndim > 1          # conv weight always decays
        np.testing.assert_allclose(value, before[name] * (0.95 if shrinks else 1.0),
                                   rtol=1e-15, err_msg=name)
