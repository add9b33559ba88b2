"""II.4c's data layer: scikit-learn's digits are verified on load (shape, pixel range, no blank image,
balanced labels), and a corrupted copy is refused with a message naming the bad value."""

from __future__ import annotations

import numpy as np
import pytest

from claims.ii4_stationary import DIGITS_SHAPE, N_CLASSES, check_digits, load_digit_images


@pytest.fixture(scope="module")
def raw():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data.copy(), digits.target.copy()


def test_the_shipped_digits_pass_and_load_as_unit_norm_images(raw):
    check_digits(*raw)
    images, labels = load_digit_images()
    assert images.shape == DIGITS_SHAPE and labels.shape == DIGITS_SHAPE[:1]
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, rtol=1e-12)
    assert images.min() >= 0.0
    assert np.array_equal(np.unique(labels), np.arange(N_CLASSES))


@pytest.mark.parametrize("corrupt, message", [
    (lambda x, y: (x[:-1], y[:-1]), "shape"),
    (lambda x, y: (x, y[:-1]), "labels have shape"),
    (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 5, 17.0, x), y), "integers in"),
    (lambda x, y: (x * 0.5, y), "integers in"),
    (lambda x, y: (np.where(np.arange(x.shape[0])[:, None] == 3, 0.0, x), y), "all zero"),
    (lambda x, y: (x, np.where(y == 9, 8, y)), "labels are"),
    (lambda x, y: (x, np.where((y == 9) & (np.cumsum(y == 9) <= 20), 8, y)), "class counts"),
])
def test_a_corrupted_copy_is_refused_naming_what_is_wrong(raw, corrupt, message):
    x, y = corrupt(*raw)
    with pytest.raises(ValueError, match=message):
        check_digits(x, y)
