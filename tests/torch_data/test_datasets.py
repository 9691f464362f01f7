"""Datasets: Fashion-MNIST from the local Debian files, ImageFolder, deterministic synthetic."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

from proglearn.data import FASHION_MNIST_DIR, DataMissingError
from proglearn.integrations.torch.datasets import FashionMNIST, SyntheticImages, image_folder
from proglearn.integrations.torch.transforms import eval_transform

needs_fmnist = pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
                                  reason="dataset-fashion-mnist not installed")


@needs_fmnist
def test_fashion_mnist_reads_the_local_files():
    test = FashionMNIST("test")
    assert len(test) == 10_000 and len(test.classes) == 10
    img, label = test[0]
    assert isinstance(img, Image.Image) and img.mode == "L" and img.size == (28, 28)
    assert label == 9 and test.classes[label] == "Ankle boot"  # the first test image
    assert np.array_equal(np.asarray(img), test.data[0])
    assert np.bincount(test.targets).tolist() == [1000] * 10
    rgb, _ = FashionMNIST("test", rgb=True)[0]
    assert rgb.mode == "RGB" and np.array_equal(np.asarray(rgb)[..., 2], test.data[0])


@needs_fmnist
def test_fashion_mnist_through_a_real_dataloader():
    data = FashionMNIST("test", transform=eval_transform(32, in_chans=1))
    images, labels = next(iter(DataLoader(Subset(data, range(8)), batch_size=8)))
    assert images.shape == (8, 1, 32, 32) and labels.dtype == torch.int64
    assert labels.tolist() == data.targets[:8].tolist()


def test_fashion_mnist_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(DataMissingError, match="never downloads data.*apt-get install "
                                               "dataset-fashion-mnist"):
        FashionMNIST("train", root=tmp_path)


def test_image_folder(tmp_path):
    for cls, value in (("cat", 10), ("dog", 200)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (20, 12), (value, value, value)).save(tmp_path / cls / f"{i}.png")
    data = image_folder(tmp_path, transform=eval_transform(16))
    assert data.classes == ["cat", "dog"] and len(data) == 4
    image, label = data[3]
    assert image.shape == (3, 16, 16) and label == 1
    with pytest.raises(FileNotFoundError, match=r"path: no directory at '.*nope'"):
        image_folder(tmp_path / "nope")


def test_synthetic_is_deterministic_balanced_and_typed():
    a, b = SyntheticImages(30, 3, 12, seed=1), SyntheticImages(30, 3, 12, seed=1)
    assert np.array_equal(a.data, b.data) and a.data.shape == (30, 12, 12, 3)
    assert not np.array_equal(a.data, SyntheticImages(30, 3, 12, seed=2).data)
    assert a.targets.tolist() == [0, 1, 2] * 10
    img, label = a[4]
    assert img.mode == "RGB" and img.size == (12, 12) and label == 1
    gray, _ = SyntheticImages(4, 2, 8, channels=1)[0]
    assert gray.mode == "L"
    with pytest.raises(ValueError, match=r"channels: must be 1 or 3 \(received 2\)"):
        SyntheticImages(4, 2, 8, channels=2)
    with pytest.raises(ValueError, match=r"num_classes: must be an integer >= 1 \(received 0\)"):
        SyntheticImages(4, 0, 8)


def test_synthetic_is_learnable():
    torch.manual_seed(0)
    data = SyntheticImages(200, 4, 8, channels=1, seed=3)
    x = torch.from_numpy(data.data).float().flatten(1) / 255
    y = torch.from_numpy(data.targets)
    model = torch.nn.Linear(x.shape[1], 4)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    held_out = SyntheticImages(400, 4, 8, channels=1, seed=3)  # first 200 are the same
    xh = torch.from_numpy(held_out.data[200:]).float().flatten(1) / 255
    accuracy = (model(xh).argmax(1) == torch.from_numpy(held_out.targets[200:])).float().mean()
    assert accuracy > 0.95
