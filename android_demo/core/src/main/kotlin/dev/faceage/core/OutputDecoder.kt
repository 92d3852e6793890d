package dev.faceage.core

/** One face's answer, as `faceage_tf.runtime.FacePrediction` gives it (without the box). */
data class FaceAge(
    val gender: String,
    val genderProbability: Float,
    val ageGroup: String,
    val ageGroupProbability: Float,
    /** Expected age in years: the model's `age` output (the mean of its age distribution). */
    val age: Float,
    /** The central 80% interval of the age in years, from the age-group probabilities. */
    val ageRange: Pair<Double, Double>,
)

/** Raw model outputs of one face to labels named by the model card. */
class OutputDecoder(private val card: ModelCard) {
    companion object {
        /** Share of the age distribution inside the reported age range. */
        const val AGE_RANGE_COVERAGE = 0.8
    }

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
        return FaceAge(card.genderLabels[g], gender[g], card.ageGroupLabels[a], ageGroup[a], age[0], ageInterval(ageGroup))
    }

    /**
     * `faceage_tf.runtime.predictor.age_interval`: each group's probability spread evenly over
     * its years (the last group up to max_age), cut at the (1 - coverage) / 2 and (1 + coverage) / 2
     * quantiles, with numpy.interp's arithmetic.
     */
    fun ageInterval(groupProbabilities: FloatArray, coverage: Double = AGE_RANGE_COVERAGE): Pair<Double, Double> {
        val edges = DoubleArray(card.ageGroupEdges.size + 1) { i -> if (i < card.ageGroupEdges.size) card.ageGroupEdges[i].toDouble() else card.maxAge + 1.0 }
        val cumulative = DoubleArray(groupProbabilities.size + 1)
        for (i in groupProbabilities.indices) cumulative[i + 1] = cumulative[i] + groupProbabilities[i].toDouble()
        val total = cumulative.last()
        for (i in cumulative.indices) cumulative[i] /= total
        return interp((1 - coverage) / 2, cumulative, edges) to interp((1 + coverage) / 2, cumulative, edges)
    }

    /** numpy.interp for one x over increasing xp (repeats allowed). */
    private fun interp(x: Double, xp: DoubleArray, fp: DoubleArray): Double {
        val n = xp.size
        if (x < xp[0]) return fp[0]
        if (x > xp[n - 1]) return fp[n - 1]
        var j = 0
        while (j + 1 < n && xp[j + 1] <= x) j++ // xp[j] <= x < xp[j + 1]
        if (j == n - 1 || xp[j] == x) return fp[j]
        val slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
        return slope * (x - xp[j]) + fp[j]
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
