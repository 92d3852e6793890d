// Plain Kotlin/JVM: no Android dependency, so it also builds and tests without the Android SDK
// (see ../run_core_tests.sh, which does the same with kotlinc alone).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    testImplementation(libs.junit)
    testImplementation(libs.kotlin.test.junit)
}

tasks.test {
    // The real model; golden vectors exist once ../run_core_tests.sh has written them.
    systemProperty("faceage.model", rootProject.file("../faceage_tf/assets/faceage.tflite").absolutePath)
    systemProperty("faceage.golden", rootProject.file("build/golden").absolutePath)
    systemProperty("faceage.goldenSkip", "no golden vectors: run ../run_core_tests.sh once to write them from real faces")
}
