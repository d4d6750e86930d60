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

/// Issue 17: files as `kubectl apply -f` takes them: CiliumCIDRGroups are read (cidrGroupRef),
/// other objects are skipped and named, a typo of a policy kind is still an error.
@Suite struct MultiObjectFileTests {
    static let file = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: to-group}
        spec:
          endpointSelector: {matchLabels: {app: client}}
          egress:
          - toCIDRSet:
            - cidrGroupRef: external
              except: [192.0.2.128/25]
        ---
        apiVersion: cilium.io/v2alpha1
        kind: CiliumCIDRGroup
        metadata: {name: external}
        spec:
          externalCIDRs: [192.0.2.0/24, 198.51.100.0/24, "2001:db8::/32"]
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: k8s-deny}
        spec: {podSelector: {}}
        ---
        apiVersion: cilium.io/v2
        kind: CiliumClusterwideEnvoyConfig
        metadata: {name: envoy}
        spec: {}
        """

    @Test func groupsAreReadAndOtherObjectsSkipped() throws {
        let read = try PolicyParser.read(Self.file, file: "mixed.yaml")
        #expect(read.policies.map(\.name) == ["to-group"])
        #expect(read.cidrGroups["external"] == ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"])
        #expect(read.skipped == ["NetworkPolicy k8s-deny", "CiliumClusterwideEnvoyConfig envoy"])
        let rule = try #require(read.policies.first?.specs.first?.egress?.first)
        #expect(rule.cidrs == [CIDRRule(cidr: "192.0.2.0/24", except: ["192.0.2.128/25"]), CIDRRule(cidr: "198.51.100.0/24")])
        #expect(rule.ipv6Peers == ["2001:db8::/32"])
    }

    @Test func anUnknownGroupAndAKindTypoAreErrors() {
        #expect(throws: PolicyError.self) {
            try PolicyParser.parse("""
                apiVersion: cilium.io/v2
                kind: CiliumNetworkPolicy
                metadata: {name: p}
                spec:
                  endpointSelector: {}
                  egress: [{toCIDRSet: [{cidrGroupRef: nowhere}]}]
                """, file: "g.yaml")
        }
        do {
            _ = try PolicyParser.parse("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicyy\nmetadata: {name: p}\nspec: {endpointSelector: {}}\n", file: "t.yaml")
            Issue.record("a kind typo was accepted")
        } catch {
            #expect(error.description.contains("did you mean CiliumNetworkPolicy"))
        }
    }
}
