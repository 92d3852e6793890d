import org.jetbrains.kotlin.gradle.dsl.JvmTarget

// Plain Kotlin/JVM: no Android dependency, so it also builds and tests without the Android SDK
// (see ../run_core_tests.sh, which does the same with kotlinc alone).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

// Bytecode for Java 17 (what the app targets), compiled by whatever JDK runs Gradle (17 or
// newer): no toolchain to resolve or download.
java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}
kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
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
