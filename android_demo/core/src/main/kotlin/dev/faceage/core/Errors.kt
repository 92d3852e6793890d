package dev.faceage.core

/**
 * Everything that can go wrong between a `.tflite` file and a prediction, as one sealed type so
 * the app can show a clear message (`e.message`) instead of crashing.
 */
sealed class FaceAgeException(message: String) : Exception(message) {
    /** The model file is not in the app (an APK built without it). */
    class MissingModel(message: String) : FaceAgeException(message)

    /** The bytes are not a TFLite flatbuffer, or it is truncated or corrupt. */
    class NotAModel(message: String) : FaceAgeException(message)

    /** A TFLite model without a faceage model card in its metadata. */
    class MissingCard(message: String) : FaceAgeException(message)

    /** The model card is not valid JSON, or a field is missing or out of range. */
    class InvalidCard(message: String) : FaceAgeException(message)

    /** The card and the interpreter's tensors disagree (names or shapes). */
    class TensorMismatch(message: String) : FaceAgeException(message)

    /** Pixels or outputs of the wrong size handed to the preprocessor or decoder. */
    class BadInput(message: String) : FaceAgeException(message)
}
