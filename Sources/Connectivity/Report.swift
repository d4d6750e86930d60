import Foundation

/// The summary upstream prints at the end, and its JUnit file.
public enum Report {
    public static func summary(_ results: [TestResult]) -> String {
        let ns = Defaults.namespace
        let ran = results.filter { $0.status != .skipped }
        let failed = ran.filter { $0.status == .failed }
        let skipped = results.count - ran.count
        let actions = ran.reduce(0) { $0 + $1.actions }, failedActions = ran.reduce(0) { $0 + $1.failedActions }
        let skippedScenarios = ran.reduce(0) { $0 + $1.skippedScenarios }
        var lines = ["", "📋 Test Report [\(ns)]"]
        if failed.isEmpty {
            lines.append("✅ [\(ns)] All \(ran.count) tests (\(actions) actions) successful, \(skipped) tests skipped, \(skippedScenarios) scenarios skipped.")
        } else {
            lines.append("❌ \(failed.count)/\(ran.count) tests failed (\(failedActions)/\(actions) actions), \(skipped) tests skipped, \(skippedScenarios) scenarios skipped:")
            for t in failed {
                lines.append("Test [\(t.name)]:")
                lines += t.failures.map { "  ❌ \($0)" }
            }
            lines.append("[\(ns)] \(failed.count) tests failed")
        }
        return lines.joined(separator: "\n")
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\n", "\t": out.unicodeScalars.append(c)
            default:
                // XML 1.0 has no place for other control characters.
                if c.value < 0x20 { out += "?" } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }

    /// JUnit XML as upstream writes it: one suite, one testcase per test, with its status, time and failures.
    public static func junit(_ results: [TestResult], arguments: [String], timestamp: Date = Date()) -> String {
        let failures = results.filter { $0.status == .failed }.count
        let skipped = results.filter { $0.status == .skipped }.count
        let total = results.reduce(0.0) { $0 + $1.seconds }
        let time = String(format: "%.3f", total)
        let stamp = ISO8601DateFormatter().string(from: timestamp)
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        x += "<testsuites tests=\"\(results.count)\" disabled=\"\(skipped)\" errors=\"0\" failures=\"\(failures)\" time=\"\(time)\">\n"
        x += "  <testsuite name=\"connectivity test\" id=\"0\" package=\"\" tests=\"\(results.count)\" disabled=\"0\" skipped=\"\(skipped)\" errors=\"0\" failures=\"\(failures)\" time=\"\(time)\" timestamp=\"\(stamp)\">\n"
        x += "    <properties>\n      <property name=\"Args\" value=\"\(escape(arguments.joined(separator: " ")))\"></property>\n    </properties>\n"
        for r in results {
            x += "    <testcase name=\"\(escape(r.name))\" classname=\"connectivity test\" status=\"\(r.status.rawValue)\" time=\"\(String(format: "%.3f", r.seconds))\">"
            switch r.status {
            case .passed: break
            case .skipped: x += "\n      <skipped message=\"\(escape(r.name)) skipped: \(escape(r.skipReason ?? ""))\"></skipped>\n    "
            case .failed:
                x += "\n      <failure message=\"\(escape(r.name)) failed\" type=\"failure\">\(escape(r.failures.joined(separator: "\n")))</failure>\n    "
            }
            x += "</testcase>\n"
        }
        x += "  </testsuite>\n</testsuites>\n"
        return x
    }
}
