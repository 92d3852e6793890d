package dev.faceage.core

/**
 * The model card inside a faceage `.tflite` (see `faceage_tf/modelcard.py`): the labels, age
 * groups, input size, normalisation and alignment template the app must use, read from the model
 * itself so a new model never needs an app change.
 *
 * [inputs] and [outputs] map tensor names to shapes, `null` standing for the batch dimension.
 */
data class ModelCard(
    val name: String,
    val inputSize: Int,
    val mean: Float,
    val std: Float,
    val genderLabels: List<String>,
    val ageGroupEdges: List<Int>,
    val ageGroupLabels: List<String>,
    val maxAge: Int,
    val template: FaceTemplate,
    val inputs: Map<String, List<Int?>>,
    val outputs: Map<String, List<Int?>>,
    val sha256: String?,
    val licence: String?,
) {
    companion object {
        const val FORMAT = "faceage_tf.model_card/2" // 2: the sha256 covers the card too
        const val MIN_INPUT_SIZE = 32

        /**
         * Reads and checks the card embedded in TFLite bytes.
         * @param verifyHash also check the card's sha256 against the file (catches a model
         *   altered after export; costs one pass over the file).
         * @throws FaceAgeException NotAModel, MissingCard or InvalidCard.
         */
        fun fromTflite(data: ByteArray, name: String = "<model>", verifyHash: Boolean = false): ModelCard {
            val card = fromJson(TfliteMetadata.cardJson(data, name), name)
            if (verifyHash) {
                val actual = TfliteMetadata.fileHash(data, name)
                if (card.sha256 != actual) {
                    throw FaceAgeException.InvalidCard(
                        "$name: file does not match its model card's sha256 (card ${card.sha256}, " +
                            "file $actual); it was modified after export"
                    )
                }
            }
            return card
        }

        /** Parses card JSON; every check mirrors `faceage_tf.schema.Schema`. */
        fun fromJson(text: String, name: String = "<model>"): ModelCard {
            val root = try {
                Json.parse(text)
            } catch (e: IllegalArgumentException) {
                throw FaceAgeException.InvalidCard("$name: model card is not valid JSON (${e.message})")
            }
            return CardReader(name).read(root)
        }
    }
}

/** Typed access to the parsed JSON, every failure an [FaceAgeException.InvalidCard] naming the field. */
private class CardReader(val name: String) {
    fun fail(what: String): Nothing = throw FaceAgeException.InvalidCard("$name: model card $what")

    fun obj(value: Any?, key: String): Map<*, *> = value as? Map<*, *> ?: fail("field '$key' must be an object")
    fun list(value: Any?, key: String): List<*> = value as? List<*> ?: fail("field '$key' must be a list")
    fun num(value: Any?, key: String): Double = value as? Double ?: fail("field '$key' must be a number, got $value")
    fun int(value: Any?, key: String): Int {
        val d = num(value, key)
        if (d != Math.rint(d) || Math.abs(d) > Int.MAX_VALUE) fail("field '$key' must be an integer, got $value")
        return d.toInt()
    }
    fun str(value: Any?, key: String): String = value as? String ?: fail("field '$key' must be a string, got $value")

    fun shapes(value: Any?, key: String): Map<String, List<Int?>> =
        obj(value, key).entries.associate { (k, v) ->
            k.toString() to list(v, "$key.$k").map { if (it == null) null else int(it, "$key.$k") }
        }

    fun read(root: Any?): ModelCard {
        val card = root as? Map<*, *> ?: fail("is not a JSON object")
        val format = card["format"] as? String
        if (format == null || !format.startsWith("faceage_tf.model_card/")) fail("format is $format, not a faceage_tf model card")
        if (format != ModelCard.FORMAT) fail("format is $format, expected ${ModelCard.FORMAT} (an older faceage_tf wrote it); export the model again")
        val schema = obj(card["schema"], "schema")

        val inputSize = int(schema["input_size"], "schema.input_size")
        if (inputSize < ModelCard.MIN_INPUT_SIZE) fail("schema.input_size must be at least ${ModelCard.MIN_INPUT_SIZE}, got $inputSize")
        val mean = num(schema["mean"], "schema.mean").toFloat()
        val std = num(schema["std"], "schema.std").toFloat()
        if (!(std > 0f)) fail("schema.std must be positive, got $std")

        val genderLabels = list(schema["gender_labels"], "schema.gender_labels").map { str(it, "schema.gender_labels") }
        if (genderLabels.size != 2) fail("schema.gender_labels must name two classes, got $genderLabels")

        val maxAge = int(schema["max_age"] ?: 100.0, "schema.max_age")
        val edges = list(schema["age_group_edges"], "schema.age_group_edges").map { int(it, "schema.age_group_edges") }
        if (edges.isEmpty() || edges[0] != 0 || edges.zipWithNext().any { (a, b) -> b <= a } || edges.last() > maxAge) {
            fail("schema.age_group_edges must start at 0 and increase strictly up to max_age=$maxAge, got $edges")
        }
        // Older cards may lack the labels; they follow from the edges as in Schema.age_group_labels.
        val groupLabels = schema["age_group_labels"]?.let { labels -> list(labels, "schema.age_group_labels").map { str(it, "schema.age_group_labels") } }
            ?: (edges.zipWithNext { lo, hi -> "$lo-${hi - 1}" } + "${edges.last()}+")
        if (groupLabels.size != edges.size) fail("has ${groupLabels.size} age_group_labels for ${edges.size} age groups")

        // Schema v2: faces are aligned by their keypoints to this template. A v1 card (a box crop
        // convention) predates alignment: refuse it rather than guess a template for it.
        val templateJson = schema["template"] as? Map<*, *>
            ?: fail("has no schema.template (schema_version ${schema["schema_version"]}: exported before keypoint alignment); re-export the model with faceage_tf.export")
        val points = list(templateJson["keypoints"], "schema.template.keypoints").map { point ->
            val xy = list(point, "schema.template.keypoints")
            if (xy.size != 2) fail("schema.template.keypoints must be (x, y) pairs, got $point")
            num(xy[0], "schema.template.keypoints") to num(xy[1], "schema.template.keypoints")
        }
        val template = try {
            FaceTemplate(points)
        } catch (e: FaceAgeException.InvalidCard) {
            fail("schema.${e.message}")
        }

        val inputs = shapes(card["inputs"], "inputs")
        val outputs = shapes(card["outputs"], "outputs")
        // The card's own tensor list must agree with its schema, or one of them is wrong.
        val expected = mapOf(
            "gender" to listOf(null, genderLabels.size),
            "age_group" to listOf(null, edges.size),
            "age" to listOf(null, 1),
        )
        if (inputs["image"] != listOf(null, inputSize, inputSize, 3)) {
            fail("inputs.image is ${inputs["image"]}, expected [null, $inputSize, $inputSize, 3] from schema.input_size")
        }
        for ((key, shape) in expected) {
            if (outputs[key] != shape) fail("outputs.$key is ${outputs[key]}, expected $shape from the schema")
        }

        return ModelCard(
            name = card["name"] as? String ?: "unnamed",
            inputSize = inputSize,
            mean = mean,
            std = std,
            genderLabels = genderLabels,
            ageGroupEdges = edges,
            ageGroupLabels = groupLabels,
            maxAge = maxAge,
            template = template,
            inputs = inputs,
            outputs = outputs,
            sha256 = card["sha256"] as? String,
            licence = card["licence"] as? String,
        )
    }
}
