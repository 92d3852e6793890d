plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

// The model ships from the Python package's assets: copied at build time, never kept twice in git.
val modelAssets = layout.buildDirectory.dir("generated/faceage-assets")
val copyModel by tasks.registering(Copy::class) {
    from(rootProject.file("../faceage_tf/assets/faceage.tflite"))
    into(modelAssets)
}

android {
    namespace = "dev.faceage.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.faceage.demo"
        minSdk = 28 // ImageDecoder (gallery photos, EXIF rotation applied)
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    sourceSets["main"].assets.srcDir(modelAssets)
    androidResources {
        noCompress += "tflite"
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
}

tasks.named("preBuild") { dependsOn(copyModel) }

dependencies {
    implementation(project(":core"))
    implementation(libs.androidx.activity)
    implementation(libs.camera.core)
    implementation(libs.camera.camera2)
    implementation(libs.camera.lifecycle)
    implementation(libs.camera.view)
    implementation(libs.mlkit.face.detection)
    implementation(libs.litert)
}
