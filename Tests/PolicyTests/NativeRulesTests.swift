import Manifests
import Testing

/// Issue 17: upstream's native rule lists (the JSON `cilium-dbg policy import` reads: an array of
/// rules, no kind) are read as upstream reads them, field names without regard to case.
@Suite struct NativeRulesTests {
    @Test func aJSONRuleListIsOnePolicyAndKeysMatchInAnyCase() throws {
        let text = """
            [{
              "endpointSelector": {"matchLabels": {"app": "echo", "Role": "Front"}},
              "Ingress": [{
                "FromEndpoints": [{"matchLabels": {"app": "client"}}],
                "toPorts": [{"Ports": [{"port": "8080", "protocol": "TCP"}]}]
              }],
              "labels": [{"key": "io.cilium.k8s.policy.name", "value": "echo-native", "source": "k8s"}]
            }, {
              "endpointSelector": {"matchLabels": {"app": "client"}},
              "egress": [{"toCIDR": ["10.0.0.0/8"]}]
            }]
            """
        let policies = try PolicyParser.parse(text, file: "rules.json")
        #expect(policies.count == 1)
        let p = try #require(policies.first)
        #expect(p.name == "echo-native" && p.kind == .clusterwide && p.namespace == nil)
        #expect(p.specs.count == 2)
        #expect(p.specs[0].endpointSelector.matchLabels == ["app": "echo", "Role": "Front"])  // label keys as written
        #expect(p.specs[0].ingress?.first?.endpoints == [LabelSelector(matchLabels: ["app": "client"])])
        #expect(p.specs[0].ingress?.first?.ports.first?.port == 8080)
        #expect(p.specs[1].egress?.first?.cidrs == [CIDRRule(cidr: "10.0.0.0/8")])
    }

    @Test func withoutANameLabelTheFileNamesIt() throws {
        let policies = try PolicyParser.parse(#"[{"endpointSelector": {}, "ingress": [{}]}]"#, file: "/tmp/Allow_All.json")
        #expect(policies.map(\.name) == ["allow-all"])
    }

    @Test func aListMixingKindsAndBareRulesStillNeedsKinds() {
        #expect(throws: PolicyError.self) {
            try PolicyParser.parse("""
                - {apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, metadata: {name: a}, spec: {endpointSelector: {}}}
                - {endpointSelector: {}}
                """, file: "mixed.yaml")
        }
    }

    @Test func anUnknownFieldInANativeRuleIsStillRefused() {
        #expect(throws: PolicyError.self) { try PolicyParser.parse(#"[{"endpointSelector": {}, "ingres": [{}]}]"#, file: "r.json") }
    }
}
