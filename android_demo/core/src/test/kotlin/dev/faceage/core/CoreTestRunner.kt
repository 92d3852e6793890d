package dev.faceage.core

import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener
import kotlin.system.exitProcess

/** Runs the test classes named on the command line; prints one line per test and "N passed, N failed, N skipped". */
fun main(args: Array<String>) {
    var failed = 0
    var skipped = 0
    val core = JUnitCore()
    core.addListener(object : RunListener() {
        val bad = HashSet<Description>()
        override fun testFailure(failure: Failure) {
            bad += failure.description
            failed++
            println("FAIL ${failure.description.displayName}\n    ${failure.trace.lines().take(6).joinToString("\n    ")}")
        }
        override fun testAssumptionFailure(failure: Failure) {
            bad += failure.description
            skipped++
            println("SKIP ${failure.description.displayName}: ${failure.message}")
        }
        override fun testFinished(description: Description) {
            if (description !in bad) println("ok   ${description.displayName}")
        }
    })
    val result = core.run(*args.map { Class.forName(it) }.toTypedArray())
    val passed = result.runCount - failed - skipped
    println("$passed passed, $failed failed, $skipped skipped")
    exitProcess(if (failed == 0 && result.runCount > 0) 0 else 1)
}
