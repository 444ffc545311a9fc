"""The one figure helper: object API only (the process-wide backend stays as it was), atomic PNG output."""

import matplotlib
import numpy as np
from PIL import Image

from mammo.io.figures import new_figure, save_figure


def test_save_figure_writes_a_png_of_the_asked_size_and_leaves_the_backend(tmp_path):
    backend = matplotlib.get_backend()
    fig = new_figure(3.0, 2.0, dpi=50)
    fig.add_subplot().plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "line.png")
    with Image.open(tmp_path / "line.png") as img:
        assert img.format == "PNG" and img.size == (150, 100)
        assert np.asarray(img).std() > 0  # something was drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["line.png"]
    assert matplotlib.get_backend() == backend and fig.axes == []
