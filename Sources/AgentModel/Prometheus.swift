import HTTPTransport
import Foundation

/// The Prometheus text exposition format (version 0.0.4): families with
/// HELP and TYPE, samples with escaped label values.
public struct PrometheusText: Sendable {
    public enum Kind: String, Sendable { case counter, gauge }

    private var families: [(name: String, help: String, kind: Kind, samples: [(labels: [(String, String)], value: Double)])] = []

    public init() {}

    /// Declares a family (in output order); samples are added with `add`.
    public mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        if families.contains(where: { $0.name == name }) { return }
        families.append((name, help, kind, []))
    }

    public mutating func add(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        guard let i = families.firstIndex(where: { $0.name == name }) else { preconditionFailure("undeclared metric \(name)") }
        families[i].samples.append((labels, value))
    }

    static func escape(_ v: String) -> String {
        v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }

    public var text: String {
        var out = ""
        for f in families {
            out += "# HELP \(f.name) \(f.help)\n# TYPE \(f.name) \(f.kind.rawValue)\n"
            for s in f.samples {
                let l = s.labels.isEmpty ? "" : "{" + s.labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
                out += "\(f.name)\(l) \(Self.number(s.value))\n"
            }
        }
        return out
    }

    public var response: HTTPResponse {
        HTTPResponse(status: 200, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"], body: Data(text.utf8))
    }
}
