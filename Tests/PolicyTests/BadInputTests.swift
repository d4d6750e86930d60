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

    /// Kubernetes' label rules, in selectors: a NUL byte, a megabyte and `$(id)` were accepted.
    @Test(arguments: ["app\u{0}x", "$(id)", String(repeating: "a", count: 64), "-app", "Upper.Case/x", "k8s:", "K8S:app"])
    func badLabelKeysAreRefused(_ key: String) {
        let text = """
            {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "l"},
             "spec": {"endpointSelector": {"matchLabels": {\(String(decoding: try! JSONEncoder().encode(key), as: UTF8.self)): "x"}}}}
            """
        #expect(throws: PolicyError.self, "\(key.debugDescription)") { try PolicyParser.parse(text, file: "l.json") }
    }

    @Test(arguments: ["app\u{0}", "$(id)", String(repeating: "v", count: 1 << 20), "a b"])
    func badLabelValuesAreRefused(_ value: String) {
        let text = """
            {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "l"},
             "spec": {"endpointSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": [\(String(decoding: try! JSONEncoder().encode(value), as: UTF8.self))]}]}}}
            """
        do {
            _ = try PolicyParser.parse(text, file: "l.json")
            Issue.record("accepted \(value.prefix(20).debugDescription)")
        } catch {
            #expect(error.description.contains("is not a label value") && error.description.count < 600, "\(error.description.prefix(300))")
        }
    }

    @Test func usualLabelKeysRead() throws {
        for key in ["app", "k8s:app", "any:app", "app.kubernetes.io/name", "k8s:io.kubernetes.pod.namespace", "reserved:host",
                    "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name", "A_b-c.9"] {
            let text = """
                {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "l"},
                 "spec": {"endpointSelector": {"matchLabels": {"\(key)": "v-1.x_Y"}}}}
                """
            #expect(try PolicyParser.parse(text, file: "l.json").count == 1, "\(key)")
        }
    }

    /// A typo in metadata landed the policy in "default" (issue 16); Kubernetes' own fields still pass.
    @Test func unknownMetadataFieldsAreRefused() throws {
        let typo = """
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: p, namespce: prod}
            spec: {endpointSelector: {}}
            """
        do {
            _ = try PolicyParser.parse(typo, file: "p.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.description.hasPrefix("p.yaml:3:21: metadata: unknown field \"namespce\"; did you mean namespace?"), "\(error)")
        }
        let kube = """
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: p, namespace: prod, annotations: {a: b}, uid: x, resourceVersion: "1", generation: 2}
            spec: {endpointSelector: {}}
            """
        #expect(try PolicyParser.parse(kube, file: "p.yaml").first?.namespace == "prod")
    }

    /// A 5 MB policy took seconds and hundreds of MB to parse; it is refused before parsing.
    @Test func aFiveMegabyteDocumentIsRefusedAtOnce() {
        let rule = "  - fromEndpoints: [{matchLabels: {app: x}}]\n"
        let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: big}\nspec:\n  endpointSelector: {}\n  ingress:\n"
            + String(repeating: rule, count: 5_000_000 / rule.utf8.count)
        let start = ContinuousClock.now
        do {
            _ = try PolicyParser.parse("# a small first document\n---\n" + text, file: "big.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.description.hasPrefix("big.yaml:2:1: this document is "), "\(error.description.prefix(200))")
        }
        #expect(ContinuousClock.now - start < .seconds(1))
    }
}
