import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

/**
 * Copies the models from the Python package's assets into a generated assets folder (never
 * kept twice in git): the age/gender model to the root, the BlazeFace detector models with their
 * Apache-2.0 LICENSE and NOTICE to `blazeface/`. Fails the build with the reason when one is
 * missing: an APK without its models would only fail on the phone.
 */
abstract class CopyModelAssets : DefaultTask() {
    @get:InputFiles
    @get:PathSensitive(PathSensitivity.NAME_ONLY)
    abstract val models: ConfigurableFileCollection

    @get:InputFiles
    @get:PathSensitive(PathSensitivity.NAME_ONLY)
    abstract val detector: ConfigurableFileCollection

    @get:OutputDirectory
    abstract val outputDirectory: DirectoryProperty

    @TaskAction
    fun copy() {
        val missing = (models.files + detector.files).filterNot { it.isFile }
        if (missing.isNotEmpty()) {
            throw GradleException(
                "model file(s) missing: ${missing.joinToString()}. The app ships the models from " +
                    "faceage_tf/assets/: restore them (git checkout -- faceage_tf/assets) or export " +
                    "a model with faceage_tf.export, then rebuild."
            )
        }
        val out = outputDirectory.get().asFile
        out.deleteRecursively()
        out.mkdirs()
        models.files.forEach { it.copyTo(out.resolve(it.name)) }
        detector.files.forEach { it.copyTo(out.resolve("blazeface/${it.name}")) }
    }
}

val pythonAssets = rootProject.file("../faceage_tf/assets")
val modelFiles = listOf("faceage.tflite", "faceage-small.tflite").map { pythonAssets.resolve(it) }
val detectorFiles = listOf("face_detection_short_range.tflite", "face_detection_full_range.tflite", "LICENSE", "NOTICE")
    .map { pythonAssets.resolve("blazeface/$it") }

androidComponents {
    onVariants { variant ->
        val copy = tasks.register<CopyModelAssets>("copy${variant.name.replaceFirstChar { it.uppercase() }}Models") {
            models.from(modelFiles)
            detector.from(detectorFiles)
        }
        variant.sources.assets?.addGeneratedSourceDirectory(copy, CopyModelAssets::outputDirectory)
    }
}

android {
    namespace = "dev.faceage.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.faceage.demo"
        minSdk = 28 // ImageDecoder (gallery photos, EXIF rotation applied, sample size)
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    androidResources {
        noCompress += "tflite"
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    implementation(project(":core"))
    implementation(libs.androidx.activity)
    implementation(libs.androidx.core)
    implementation(libs.camera.core)
    implementation(libs.camera.camera2)
    implementation(libs.camera.lifecycle)
    implementation(libs.camera.view)
    implementation(libs.litert)
}
