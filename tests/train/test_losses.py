"""The age-distribution loss: the Gaussian target's cross-entropy, plus (with a weight) the error of
the distribution's mean, which is the age the model reports."""

import numpy as np
import tensorflow as tf

from faceage_tf.training import gaussian_age_crossentropy

NUM_AGES = 101


def skewed_distribution(peak: int) -> np.ndarray:
    """A broad distribution peaked at `peak` with a long tail toward old ages: its mean lies above its
    peak, as a trained model's does on young faces."""
    ages = np.arange(NUM_AGES)
    logits = -np.where(ages < peak, (ages - peak) ** 2 / 8.0, (ages - peak) ** 2 / 200.0)
    probs = np.exp(logits - logits.max())
    return (probs / probs.sum()).astype(np.float32)


def test_the_mean_term_adds_the_weighted_error_of_the_mean():
    probs = np.stack([skewed_distribution(12), skewed_distribution(30)])
    true_age = np.array([[12], [30]], np.float32)
    mean_age = probs @ np.arange(NUM_AGES)
    assert np.all(mean_age > true_age[:, 0] + 3)  # the skew the term is for
    plain = gaussian_age_crossentropy(NUM_AGES, 2.5)(true_age, probs).numpy()
    with_mean = gaussian_age_crossentropy(NUM_AGES, 2.5, mean_weight=0.5)(true_age, probs).numpy()
    np.testing.assert_allclose(with_mean - plain, 0.5 * np.abs(mean_age - true_age[:, 0]), rtol=1e-5)
    np.testing.assert_allclose(gaussian_age_crossentropy(NUM_AGES, 2.5, mean_weight=0.0)(true_age, probs), plain)


def mean_after_descent(mean_weight: float, steps: int = 50) -> float:
    """The distribution's mean after `steps` of gradient descent on its logits, from a skewed start."""
    logits = tf.Variable(np.log(skewed_distribution(12))[None])
    loss = gaussian_age_crossentropy(NUM_AGES, 2.5, mean_weight)
    optimizer = tf.keras.optimizers.SGD(1.0)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            value = loss(tf.constant([[12.0]]), tf.nn.softmax(logits))
        optimizer.apply_gradients([(tape.gradient(value, logits), logits)])
    return float(tf.reduce_sum(tf.nn.softmax(logits) * tf.range(NUM_AGES, dtype=tf.float32)))


def test_the_mean_term_pulls_the_reported_age_to_the_true_age():
    start = float(skewed_distribution(12) @ np.arange(NUM_AGES))
    plain, with_mean = mean_after_descent(0.0), mean_after_descent(0.5)
    assert abs(with_mean - 12) < 0.5 * abs(plain - 12), (start, plain, with_mean)
    assert abs(plain - 12) < abs(start - 12)  # the cross-entropy alone moves the mean too, slower
