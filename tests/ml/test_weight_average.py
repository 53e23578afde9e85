"""CopyCat's moving average of the weights: its formula, what the files hold, exact resume."""

from __future__ import annotations

import pytest
import torch

from nodegraph.ml.modelfile import load_cat
from nodegraph.ml.state import load_state
from nodegraph.ml.train import EMA_DECAY, TrainingInterrupted, WeightAverage, train

from test_train import TINY, interrupt_at, shot_graph  # the tiny network and synthetic shot of the training tests


def test_average_follows_the_decay_formula():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    avg = WeightAverage(net)
    expected = [p.detach().clone() for p in net.parameters()]
    for step in range(1, 40):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        avg.update(step)
        decay = min(EMA_DECAY, (1 + step) / (10 + step))
        expected = [decay * e + (1 - decay) * p.detach() for e, p in zip(expected, net.parameters())]
        for mine, e in zip(avg.module.parameters(), expected):
            torch.testing.assert_close(mine, e, rtol=1e-5, atol=1e-6)
    assert not any(p.requires_grad for p in avg.module.parameters())
    # the source network is untouched by the average
    assert all(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("step,share", [(0, 1 - 0.1), (90, 1 - 0.91), (10 ** 6, 1 - EMA_DECAY)])
def test_share_of_the_current_weights(step, share):
    assert WeightAverage(torch.nn.Linear(1, 1)).weight(step) == pytest.approx(share)


def _weights(path):
    return {k: v.float() for k, v in load_cat(path).module.state_dict().items()}


def test_model_files_hold_the_average_and_resume_continues_it(tmp_path):
    g = shot_graph(tmp_path / "a", checkpointInterval=6, imageInterval=0)
    full = train(g, "CopyCat1", steps=12, device="cpu", log_every=1, network=TINY)
    state = load_state(full.state_path)
    cat = _weights(full.model_path)
    for name, value in state["ema"].items():
        torch.testing.assert_close(cat[name], value.float())
    # the raw weights differ from the average that the model file holds
    assert any(not torch.equal(state["model"][n].float(), cat[n]) for n in cat)

    # interrupted at step 6 and resumed: the same average, bit for bit
    g2 = shot_graph(tmp_path / "b", checkpointInterval=6, imageInterval=0)
    with pytest.raises(TrainingInterrupted):
        train(g2, "CopyCat1", steps=12, device="cpu", log_every=1, network=TINY, on_event=interrupt_at(6))
    resumed = train(g2, "CopyCat1", resume=True, device="cpu", log_every=1)
    assert resumed.resumed_from == 6
    again = _weights(resumed.model_path)
    for name in cat:
        assert torch.equal(again[name], cat[name]), name


def test_resume_file_without_an_average_starts_one_from_the_weights(tmp_path):
    """Resume files written before the average existed hold none: it starts from the saved weights."""
    from nodegraph.ml.state import save_state

    g = shot_graph(tmp_path, checkpointInterval=4, imageInterval=0)

    with pytest.raises(TrainingInterrupted) as info:
        train(g, "CopyCat1", steps=8, device="cpu", log_every=1, network=TINY, on_event=interrupt_at(4))
    ost = info.value.result.state_path
    state = load_state(ost)
    state["ema"] = None
    save_state(ost, state)
    result = train(g, "CopyCat1", resume=True, device="cpu", log_every=1)
    assert result.step == 8 and result.model_path.is_file()


def test_edited_average_in_the_resume_file_is_a_state_file_error(tmp_path):
    from nodegraph.ml.state import StateFileError, save_state

    g = shot_graph(tmp_path, checkpointInterval=4, imageInterval=0)
    first = train(g, "CopyCat1", steps=4, device="cpu", log_every=1, network=TINY)
    state = load_state(first.state_path)
    name = next(iter(state["ema"]))
    state["ema"][name] = torch.zeros(3)
    state["total_steps"] = 8
    save_state(first.state_path, state)
    with pytest.raises(StateFileError, match="ema") as err:
        train(g, "CopyCat1", resume=True, device="cpu", log_every=1)
    assert str(first.state_path) in str(err.value)
