import Foundation
import Glibc

/// Agent log lines on stderr (journald picks them up under systemd).
public enum Log {
    public static func info(_ message: String) { emit("info", message) }
    public static func warning(_ message: String) { emit("warning", message) }
    public static func error(_ message: String) { emit("error", message) }

    static func emit(_ level: String, _ message: String) {
        let line = "level=\(level) msg=\"\(message.replacingOccurrences(of: "\"", with: "\\\""))\"\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}
