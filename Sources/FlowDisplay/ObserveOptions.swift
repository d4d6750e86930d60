import API
import Foundation

public struct UsageError: Error, CustomStringConvertible {
    public var message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}

/// `hubble observe` / `hubble status` flags (shared with the tests).
public struct ObserveOptions: Sendable {
    public var servers: [String] = []
    public var follow = false
    public var last: Int?
    public var since: Date?
    public var until: Date?
    public var allow = FlowFilter()
    public var deny = FlowFilter()
    public var format = FlowPrinter.Format.compact
    public var printPolicyNames = false
    public var printNodeName = false

    public func shows(_ f: Flow) -> Bool {
        if let since, let t = FlowPrinter.parseTime(f.time), t < since { return false }
        if let until, let t = FlowPrinter.parseTime(f.time), t > until { return false }
        return allow.matches(f) && (deny.isEmpty || !deny.matches(f))
    }

    static let filterFlags: [String: (FlowFilter.Field, FlowFilter.Side)] = [
        "--pod": (.pod, .either), "--from-pod": (.pod, .source), "--to-pod": (.pod, .destination),
        "-n": (.namespace, .either), "--namespace": (.namespace, .either),
        "--from-namespace": (.namespace, .source), "--to-namespace": (.namespace, .destination),
        "-l": (.label, .either), "--label": (.label, .either), "--from-label": (.label, .source), "--to-label": (.label, .destination),
        "--ip": (.ip, .either), "--from-ip": (.ip, .source), "--to-ip": (.ip, .destination),
        "--port": (.port, .either), "--from-port": (.port, .source), "--to-port": (.port, .destination),
        "--identity": (.identity, .either), "--from-identity": (.identity, .source), "--to-identity": (.identity, .destination),
        "--protocol": (.proto, .either), "--verdict": (.verdict, .either), "-t": (.type, .either), "--type": (.type, .either),
        "--traffic-direction": (.direction, .either), "--drop-reason-desc": (.dropReason, .either), "--node-name": (.node, .either),
    ]

    public init(_ args: [String]) throws {
        var i = 0
        var negateNext = false
        func value(_ flag: String) throws -> String {
            i += 1
            guard i < args.count else { throw UsageError("flag needs an argument: \(flag)") }
            return args[i]
        }
        while i < args.count {
            var a = args[i]
            var inline: String?
            if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") {
                inline = String(a[a.index(after: eq)...])
                a = String(a[..<eq])
            }
            func v() throws -> String { try inline ?? value(a) }
            switch a {
            case "--server": servers.append(try v())
            case "-f", "--follow": follow = true
            case "--last":
                guard let n = Int(try v()), n > 0 else { throw UsageError("--last: a positive number of flows") }
                last = n
            case "--since": since = try Self.time(try v(), flag: a)
            case "--until": until = try Self.time(try v(), flag: a)
            case "-o", "--output":
                let f = try v()
                guard let fmt = FlowPrinter.Format(rawValue: f) else {
                    throw UsageError("--output \(f): valid are \(FlowPrinter.Format.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                format = fmt
            case "--print-policy-names": printPolicyNames = true
            case "--print-node-name": printNodeName = true
            case "--not": negateNext = true
            default:
                guard let (field, side) = Self.filterFlags[a] else { throw UsageError("unknown flag: \(a)") }
                let val = try v()
                if let problem = FlowFilter.validate(field, val) { throw UsageError(problem) }
                if negateNext { deny.add(field, side, val) } else { allow.add(field, side, val) }
                negateNext = false
            }
            i += 1
        }
        if negateNext { throw UsageError("--not must be followed by a filter flag (e.g. --not --verdict DROPPED)") }
        if servers.isEmpty { servers = ["unix:///var/run/cilium/cilium.sock"] }
    }

    /// RFC 3339, or a duration ago ("30s", "5m", "2h").
    static func time(_ text: String, flag: String) throws -> Date {
        if let d = FlowPrinter.parseTime(text) { return d }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        if let u = text.last, let mult = units[u], let n = Double(text.dropLast()) { return Date(timeIntervalSinceNow: -n * mult) }
        throw UsageError("\(flag) \(text): an RFC 3339 time (2026-11-27T08:00:00Z) or a duration ago (30s, 5m, 2h)")
    }
}
