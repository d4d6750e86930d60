import Foundation
import Manifests
import Testing
import TestSupport
@testable import Policy

/// Issue 16: no input costs the agent more than a bounded amount of time and memory, and the
/// error quotes only an excerpt of what it refuses.
@Suite struct BadInputTests {
    /// Aliases nested inside the schema: `width`^3 match expressions from a few hundred bytes.
    static func aliasBomb(width: Int) -> String {
        let expressions = "&l1 [&e {key: a, operator: Exists}" + String(repeating: ", *e", count: width - 1) + "]"
        let selectors = "&l2 [&s {matchExpressions: \(expressions)}" + String(repeating: ", *s", count: width - 1) + "]"
        let rules = "[&r {fromEndpoints: \(selectors)}" + String(repeating: ", *r", count: width - 1) + "]"
        return """
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: bomb}
            spec:
              endpointSelector: {}
              ingress: \(rules)
            """
    }

    @Test func anAliasBombIsRefusedAtOnce() throws {
        let text = Self.aliasBomb(width: 60)
        #expect(text.utf8.count < 1200)
        let start = ContinuousClock.now
        #expect(throws: PolicyError.self) { try PolicyParser.parse(text, file: "bomb.yaml") }
        do {
            _ = try PolicyParser.parse(text, file: "bomb.yaml")
        } catch {
            #expect(error.description.contains("once its aliases (*name) are expanded"), "\(error)")
            #expect(error.description.hasPrefix("bomb.yaml:6:"), "\(error)")
        }
        #expect(ContinuousClock.now - start < .seconds(1))
        // Aliases within the budget still read as they always did.
        let small = try PolicyParser.parse(Self.aliasBomb(width: 3), file: "small.yaml")
        #expect(small.first?.specs.first?.ingress?.count == 3)
    }

    @Test func aMegabyteOfUnknownEntityIsRefusedQuicklyAndQuotedShort() {
        let name = String(repeating: "x", count: 1 << 20)
        let text = """
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: big}
            spec:
              endpointSelector: {}
              ingress: [{fromEntities: [\(name)]}]
            """
        let start = ContinuousClock.now
        do {
            _ = try PolicyParser.parse(text, file: "big.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.description.count < 600, "the error is \(error.description.count) characters long")
            #expect(error.description.contains("(1048576 bytes)"))
        }
        #expect(ContinuousClock.now - start < .seconds(1))
    }
}
