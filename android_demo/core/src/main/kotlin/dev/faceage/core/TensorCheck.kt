package dev.faceage.core

/** One interpreter tensor as the app sees it: signature name, shape (batch as -1 or 1), type. */
data class TensorInfo(val name: String, val shape: List<Int>, val dtype: String = "float32")

/** Which interpreter tensor holds what: `image` input and `gender`/`age_group`/`age` outputs. */
data class TensorBinding(val input: String, val outputs: Map<String, String>)

/** Checks the interpreter's tensors against the model card before the first inference. */
object TensorCheck {
    /** int8 QAT exports prefix output names (`quant_gender`); the card uses the plain names. */
    fun normalise(name: String): String = name.removePrefix("quant_")

    /**
     * Matches [inputs] and [outputs] (the signature's tensors) to the card's `inputs`/`outputs`.
     * @return the interpreter's name for each card tensor.
     * @throws FaceAgeException.TensorMismatch saying which tensor differs and how.
     */
    fun bind(card: ModelCard, inputs: List<TensorInfo>, outputs: List<TensorInfo>): TensorBinding {
        val input = match("input", card.inputs, inputs).getValue("image")
        return TensorBinding(input, match("output", card.outputs, outputs))
    }

    private fun match(kind: String, expected: Map<String, List<Int?>>, actual: List<TensorInfo>): Map<String, String> {
        val byName = actual.associateBy { normalise(it.name) }
        val names = actual.map { it.name }
        if (byName.keys != expected.keys) {
            throw FaceAgeException.TensorMismatch(
                "model ${kind}s $names do not match the model card's ${expected.keys.toList()}; " +
                    "the card belongs to a different model"
            )
        }
        return expected.mapValues { (key, shape) ->
            val tensor = byName.getValue(key)
            // null in the card is the batch dimension: the interpreter reports -1 (dynamic) or 1.
            val fits = tensor.shape.size == shape.size &&
                shape.zip(tensor.shape).all { (want, got) -> if (want == null) got == -1 || got >= 1 else want == got }
            if (!fits) {
                throw FaceAgeException.TensorMismatch(
                    "model $kind '${tensor.name}' has shape ${tensor.shape}, but the model card says " +
                        "${shape.map { it ?: "batch" }}; the card belongs to a different model"
                )
            }
            if (tensor.dtype != "float32") {
                throw FaceAgeException.TensorMismatch(
                    "model $kind '${tensor.name}' is ${tensor.dtype}; this app feeds and reads float32 tensors " +
                        "(faceage_tf exports keep float inputs and outputs, even for int8 models)"
                )
            }
            tensor.name
        }
    }
}
