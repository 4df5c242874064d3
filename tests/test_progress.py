"""Progress bars follow CBFT_PROGRESS: a person sees them, an executed page never does."""
import torch

from cbft_core.kernels import models, train
from cbft_core.kernels.data.imageset import ImageSet
from cbft_core.kernels.optim import SGDConfig
from cbft_core.kernels.progress import ENV, bar, enabled


def _tiny_set(n=32):
    g = torch.Generator().manual_seed(0)
    return ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                    torch.arange(n) % 10, tuple(str(k) for k in range(10)))


def test_env_turns_every_bar_off(monkeypatch, capsys):
    model = models.build("cnn", 10, width=0.25, seed=0)
    monkeypatch.setenv(ENV, "0")
    assert not enabled() and bar(range(3), desc="x").disable
    train.fit(model, _tiny_set(), SGDConfig(lr=0.01), epochs=2, batch_size=16, progress=True, desc="quiet")
    assert "quiet" not in capsys.readouterr().err


def test_bars_show_by_default_and_respect_show(monkeypatch, capsys):
    monkeypatch.delenv(ENV, raising=False)
    assert enabled() and not bar(range(3), desc="x").disable and bar(range(3), desc="x", show=False).disable
    model = models.build("cnn", 10, width=0.25, seed=0)
    train.fit(model, _tiny_set(), SGDConfig(lr=0.01), epochs=2, batch_size=16, progress=True, desc="loud")
    assert "loud" in capsys.readouterr().err
