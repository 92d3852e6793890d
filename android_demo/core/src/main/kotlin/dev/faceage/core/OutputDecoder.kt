package dev.faceage.core

/** One face's answer, as `faceage_tf.runtime.FacePrediction` gives it (without the box). */
data class FaceAge(
    val gender: String,
    val genderProbability: Float,
    val ageGroup: String,
    val ageGroupProbability: Float,
    /** Expected age in years: the model's `age` output (the mean of its age distribution). */
    val age: Float,
)

/** Raw model outputs of one face to labels named by the model card. */
class OutputDecoder(private val card: ModelCard) {
    /**
     * @param gender probabilities in `card.genderLabels` order.
     * @param ageGroup probabilities in `card.ageGroupLabels` order.
     * @param age one value: the expected age.
     */
    fun decode(gender: FloatArray, ageGroup: FloatArray, age: FloatArray): FaceAge {
        check("gender", gender, card.genderLabels.size)
        check("age_group", ageGroup, card.ageGroupLabels.size)
        check("age", age, 1)
        val g = argmax(gender)
        val a = argmax(ageGroup)
        return FaceAge(card.genderLabels[g], gender[g], card.ageGroupLabels[a], ageGroup[a], age[0])
    }

    private fun check(name: String, values: FloatArray, size: Int) {
        if (values.size != size) throw FaceAgeException.BadInput("output '$name' has ${values.size} values, the model card says $size")
    }

    /** Index of the largest value, the first on ties (as numpy.argmax). */
    private fun argmax(values: FloatArray): Int {
        var best = 0
        for (i in 1 until values.size) if (values[i] > values[best]) best = i
        return best
    }
}
