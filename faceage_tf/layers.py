"""Custom Keras layers, built only from ops that convert to builtin TFLite kernels."""

from faceage_tf.keras import keras, tf


@keras.utils.register_keras_serializable(package="faceage_tf")
class BilinearSampler(keras.layers.Layer):
    """Warps an image by a per-example affine transform (a spatial transformer's sampler).

    Inputs are `[image, theta]`: image `(B, H, W, C)` and theta `(B, 6)`, the row-major 2x3
    affine map from output to input coordinates, both normalised to [-1, 1]. Identity is
    `[1, 0, 0, 0, 1, 0]`. Samples outside the image repeat the border.

    Written with elementwise math, floor/clip and one flat `tf.gather` (no
    ImageProjectiveTransform, no gather_nd) so that it converts to builtin TFLite ops and
    runs in LiteRT and tflite-runtime without Flex.
    """

    def call(self, inputs):
        image, theta = inputs
        height, width, channels = image.shape[1], image.shape[2], image.shape[3]
        batch = tf.shape(image)[0]

        # Output pixel grid relative to the image centre, flattened to (1, H*W). Working in pixel
        # units (rather than normalised [-1, 1] ones) keeps the identity transform exact.
        cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
        ys, xs = tf.meshgrid(tf.range(height, dtype=image.dtype) - cy, tf.range(width, dtype=image.dtype) - cx,
                             indexing="ij")
        xs = tf.reshape(xs, [1, -1])
        ys = tf.reshape(ys, [1, -1])

        # x_norm' = t0 x_norm + t1 y_norm + t2, rewritten in pixels.
        theta = tf.cast(theta, image.dtype)
        x = theta[:, 0:1] * xs + theta[:, 1:2] * (ys * (cx / cy)) + (theta[:, 2:3] + 1.0) * cx
        y = theta[:, 3:4] * (xs * (cy / cx)) + theta[:, 4:5] * ys + (theta[:, 5:6] + 1.0) * cy

        # Clip so that samples outside the image repeat the border.
        x = tf.clip_by_value(x, 0.0, width - 1.0)
        y = tf.clip_by_value(y, 0.0, height - 1.0)
        x0 = tf.floor(x)
        y0 = tf.floor(y)
        x1 = tf.minimum(x0 + 1.0, width - 1.0)
        y1 = tf.minimum(y0 + 1.0, height - 1.0)
        dx = tf.expand_dims(x - x0, -1)
        dy = tf.expand_dims(y - y0, -1)

        flat = tf.reshape(image, [-1, channels])
        base = tf.reshape(tf.range(batch) * (height * width), [-1, 1])

        def pixels(px, py):
            index = base + tf.cast(py, tf.int32) * width + tf.cast(px, tf.int32)
            return tf.gather(flat, index)  # (B, H*W, C)

        top = pixels(x0, y0) * (1.0 - dx) + pixels(x1, y0) * dx
        bottom = pixels(x0, y1) * (1.0 - dx) + pixels(x1, y1) * dx
        out = top * (1.0 - dy) + bottom * dy
        return tf.reshape(out, [-1, height, width, channels])

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.utils.register_keras_serializable(package="faceage_tf")
class ExpectedAge(keras.layers.Layer):
    """Mean of a softmax over ages 0..N-1: the expected age in years, shape `(B, 1)`.

    A fixed weighted sum rather than a Dense layer, so that quantisation never rounds the
    age bins (an int8 kernel over 0..100 would bias ages by up to 0.4 years).
    """

    def call(self, probabilities):
        ages = tf.range(probabilities.shape[-1], dtype=probabilities.dtype)
        return tf.reduce_sum(probabilities * ages, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return input_shape[:-1] + (1,)


def custom_objects():
    """Custom layers by name, for `keras.models.load_model` and QAT scopes."""
    return {"BilinearSampler": BilinearSampler, "ExpectedAge": ExpectedAge}
