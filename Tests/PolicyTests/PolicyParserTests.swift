import Manifests
import Testing
import TestSupport
@testable import Policy

/// The examples in the first part are upstream's, as its documentation shows them
/// (cilium/cilium examples/policies/..., docs.cilium.io policy language pages), pasted verbatim.
@Suite struct PolicyParserTests {
    // MARK: - Helpers

    private func parse(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [Policy] {
        do {
            return try PolicyParser.parse(text, file: "test.yaml")
        } catch {
            Issue.record("unexpected error: \(error)", sourceLocation: sourceLocation)
            return []
        }
    }

    /// The single policy in `text`, with its single rule.
    private func rule(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> (Policy, PolicySpec)? {
        let policies = parse(text, sourceLocation: sourceLocation)
        guard policies.count == 1, let policy = policies.first, policy.specs.count == 1, let spec = policy.specs.first else {
            Issue.record("expected one policy with one rule, got \(policies)", sourceLocation: sourceLocation)
            return nil
        }
        return (policy, spec)
    }

    private func failure(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> PolicyError {
        manifestError({ () throws(PolicyError) -> Any in try PolicyParser.parse(text, file: "test.yaml") }, sourceLocation: sourceLocation)
    }

    /// Expects an error at `line`:`column` whose problem contains every fragment.
    private func expectFailure(_ text: String, at line: Int, _ column: Int, _ fragments: String...,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        expectManifestError({ () throws(PolicyError) -> Any in try PolicyParser.parse(text, file: "test.yaml") }, at: line, column, fragments, sourceLocation: sourceLocation)
    }

    private func labels(_ pairs: KeyValuePairs<String, String>) -> LabelSelector {
        LabelSelector(matchLabels: Dictionary(uniqueKeysWithValues: pairs.map { ($0.key, $0.value) }))
    }

    // MARK: - Upstream L3/L4 examples that parse

    @Test func l3Ingress() {
        // examples/policies/l3/simple/l3.yaml
        guard let (policy, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "l3-rule"
            spec:
              endpointSelector:
                matchLabels:
                  role: backend
              ingress:
              - fromEndpoints:
                - matchLabels:
                    role: frontend
            """) else { return }
        #expect(policy.kind == .namespaced)
        #expect(policy.name == "l3-rule")
        #expect(policy.namespace == "default")
        #expect(policy.qualifiedName == "default/l3-rule")
        #expect(spec.endpointSelector == labels(["role": "backend"]))
        #expect(spec.ingress == [PeerRule(endpoints: [labels(["role": "frontend"])])])
        #expect(spec.egress == nil)
        #expect(spec.ingressDeny == nil && spec.egressDeny == nil)
    }

    @Test func l3Egress() {
        // examples/policies/l3/simple/l3_egress.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "l3-egress-rule"
            spec:
              endpointSelector:
                matchLabels:
                  role: frontend
              egress:
              - toEndpoints:
                - matchLabels:
                    role: backend
            """) else { return }
        #expect(spec.ingress == nil)
        #expect(spec.egress == [PeerRule(endpoints: [labels(["role": "backend"])])])
    }

    @Test func egressAllowAll() {
        // examples/policies/l3/egress-allow-all/egress-allow-all.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "allow-all-from-frontend"
            spec:
              endpointSelector:
                matchLabels:
                  role: frontend
              egress:
              - toEndpoints:
                - {}
            """) else { return }
        #expect(spec.egress?.count == 1)
        #expect(spec.egress?.first?.endpoints == [LabelSelector()])
        #expect(spec.egress?.first?.endpoints?.first?.isEmpty == true)
        #expect(spec.egress?.first?.selectsAnyPeer == false)
    }

    @Test func ingressAllowAll() {
        // examples/policies/l3/ingress-allow-all/ingress-allow-all.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "allow-all-to-victim"
            spec:
              endpointSelector:
                matchLabels:
                  role: victim
              ingress:
              - fromEndpoints:
                - {}
            """) else { return }
        #expect(spec.endpointSelector == labels(["role": "victim"]))
        #expect(spec.ingress == [PeerRule(endpoints: [LabelSelector()])])
    }

    @Test func egressDefaultDenyIsAnEmptyRule() {
        // examples/policies/l3/egress-default-deny/egress-default-deny.yaml: `- {}` is kept as a rule
        // with nothing in it (it allows nothing; the resolver decides).
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "deny-all-egress"
            spec:
              endpointSelector:
                matchLabels:
                  role: restricted
              egress:
              - {}
            """) else { return }
        #expect(spec.egress == [PeerRule()])
        #expect(spec.egress?.first?.endpoints == nil)
        #expect(spec.egress?.first?.ports.isEmpty == true)
        #expect(spec.ingress == nil)
    }

    @Test func cidrAndCIDRSetWithExcept() {
        // examples/policies/l3/cidr/cidr.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "cidr-rule"
            spec:
              endpointSelector:
                matchLabels:
                  app: myService
              egress:
              - toCIDR:
                - 20.1.1.1/32
              - toCIDRSet:
                - cidr: 10.0.0.0/8
                  except:
                  - 10.96.0.0/12
            """) else { return }
        #expect(spec.egress == [
            PeerRule(cidrs: [CIDRRule(cidr: "20.1.1.1/32")]),
            PeerRule(cidrs: [CIDRRule(cidr: "10.0.0.0/8", except: ["10.96.0.0/12"])]),
        ])
    }

    @Test func fromEntitiesWorld() {
        // examples/policies/l3/entities/world.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "from-world-to-role-public"
            spec:
              endpointSelector:
                matchLabels:
                  role: public
              ingress:
                - fromEntities:
                  - world
            """) else { return }
        #expect(spec.ingress == [PeerRule(entities: [.world])])
    }

    @Test func toEntitiesKubeAPIServer() {
        // examples/policies/l3/entities/apiserver.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "dev-to-kube-apiserver"
            spec:
              endpointSelector:
                matchLabels:
                  env: dev
              egress:
                - toEntities:
                  - kube-apiserver
            """) else { return }
        #expect(spec.egress == [PeerRule(entities: [.kubeAPIServer])])
    }

    @Test func clusterwideIngressDenyFromWorld() {
        // examples/policies/l3/entities/from_world_deny.yaml
        guard let (policy, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumClusterwideNetworkPolicy
            metadata:
              name: "external-lockdown"
            spec:
              endpointSelector: {}
              ingressDeny:
              - fromEntities:
                - "world"
              ingress:
              - fromEntities:
                - "all"
            """) else { return }
        #expect(policy.kind == .clusterwide)
        #expect(policy.namespace == nil)
        #expect(policy.qualifiedName == "external-lockdown")
        #expect(spec.endpointSelector.isEmpty)
        #expect(spec.ingressDeny == [PeerRule(entities: [.world])])
        #expect(spec.ingress == [PeerRule(entities: [.all])])
    }

    @Test func egressDenyToEndpoints() {
        // examples/policies/l3/egress-deny/egress-deny.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "deny-egress-example"
            spec:
              endpointSelector:
                matchLabels:
                  role: frontend
              egress:
              - toEntities:
                - all
              egressDeny:
              - toEndpoints:
                - matchLabels:
                    role: backend
            """) else { return }
        #expect(spec.egress == [PeerRule(entities: [.all])])
        #expect(spec.egressDeny == [PeerRule(endpoints: [labels(["role": "backend"])])])
    }

    @Test func clusterwideHealthEntities() {
        // examples/policies/kubernetes/clusterwide/health.yaml
        guard let (policy, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumClusterwideNetworkPolicy
            metadata:
              name: "cilium-health-checks"
            spec:
              endpointSelector:
                matchLabels:
                  'reserved:health': ''
              ingress:
                - fromEntities:
                  - remote-node
              egress:
                - toEntities:
                  - remote-node
            """) else { return }
        #expect(policy.namespace == nil)
        #expect(spec.endpointSelector.matchLabels == ["reserved:health": ""])
        #expect(spec.ingress == [PeerRule(entities: [.remoteNode])])
        #expect(spec.egress == [PeerRule(entities: [.remoteNode])])
    }

    @Test func l4OnlyEgress() {
        // examples/policies/l4/l4.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "l4-rule"
            spec:
              endpointSelector:
                matchLabels:
                  app: myService
              egress:
                - toPorts:
                  - ports:
                    - port: "80"
                      protocol: TCP
            """) else { return }
        #expect(spec.egress == [PeerRule(ports: [PortProtocol(port: 80, proto: .tcp)])])
        #expect(spec.egress?.first?.selectsAnyPeer == true)
    }

    @Test func l3AndL4Combined() {
        // examples/policies/l4/l3_l4_combined.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "l4-rule"
            spec:
              endpointSelector:
                matchLabels:
                  role: backend
              ingress:
              - fromEndpoints:
                - matchLabels:
                    role: frontend
                toPorts:
                - ports:
                  - port: "80"
                    protocol: TCP
            """) else { return }
        #expect(spec.ingress == [PeerRule(endpoints: [labels(["role": "frontend"])],
                                          ports: [PortProtocol(port: 80, proto: .tcp)])])
    }

    @Test func cidrAndL4Combined() {
        // examples/policies/l4/cidr_l4_combined.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "cidr-l4-rule"
            spec:
              endpointSelector:
                matchLabels:
                  role: crawler
              egress:
              - toCIDR:
                - 192.0.2.0/24
                toPorts:
                - ports:
                  - port: "80"
                    protocol: TCP
            """) else { return }
        #expect(spec.egress == [PeerRule(cidrs: [CIDRRule(cidr: "192.0.2.0/24")],
                                         ports: [PortProtocol(port: 80, proto: .tcp)])])
    }

    @Test func portRange() {
        // examples/policies/l4/l4_port_range.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "l4-port-range-rule"
            spec:
              endpointSelector:
                matchLabels:
                  app: myService
              egress:
                - toPorts:
                  - ports:
                    - port: "80"
                      endPort: 444
                      protocol: TCP
            """) else { return }
        #expect(spec.egress?.first?.ports == [PortProtocol(port: 80, endPort: 444, proto: .tcp)])
    }

    @Test func twoIngressRules() {
        // examples/policies/l4/multi_rule.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "l4-rules"
            spec:
              endpointSelector:
                matchLabels:
                  role: backend
              ingress:
              - fromEndpoints:
                - matchLabels:
                    role: frontend
              - toPorts:
                - ports:
                  - port: "80"
                    protocol: TCP
            """) else { return }
        #expect(spec.ingress?.count == 2)
        #expect(spec.ingress?[0] == PeerRule(endpoints: [labels(["role": "frontend"])]))
        #expect(spec.ingress?[1] == PeerRule(ports: [PortProtocol(port: 80, proto: .tcp)]))
        #expect(spec.ingress?[1].selectsAnyPeer == true)
    }

    @Test func clusterwideSpecsForInit() {
        // examples/policies/l4/init.yaml: specs (a list) instead of spec
        let policies = parse("""
            apiVersion: "cilium.io/v2"
            kind: CiliumClusterwideNetworkPolicy
            metadata:
              name: init
            specs:
              - endpointSelector:
                  matchLabels:
                    "reserved.init": ""
                ingress:
                - fromEntities:
                  - host
                egress:
                - toEntities:
                  - all
                  toPorts:
                  - ports:
                    - port: "53"
                      protocol: UDP
            """)
        #expect(policies.count == 1)
        let spec = policies.first?.specs.first
        #expect(policies.first?.specs.count == 1)
        #expect(spec?.endpointSelector.matchLabels == ["reserved.init": ""])
        #expect(spec?.ingress == [PeerRule(entities: [.host])])
        #expect(spec?.egress == [PeerRule(entities: [.all], ports: [PortProtocol(port: 53, proto: .udp)])])
    }

    @Test func icmpTypesByNumberAndName() {
        // examples/policies/l4/icmp.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "icmp-rule"
            spec:
              endpointSelector:
                matchLabels:
                  app: myService
              egress:
              - icmps:
                - fields:
                  - type: 8
                    family: IPv4
                  - type: EchoRequest
                    family: IPv6
            """) else { return }
        #expect(spec.egress == [PeerRule(icmps: [ICMPField(type: 8, family: "IPv4"), ICMPField(type: 128, family: "IPv6")])])
    }

    @Test func kubeDNSPolicy() {
        // examples/policies/kubernetes/namespace/kubedns-policy.yaml
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "allow-to-kubedns"
            spec:
              endpointSelector:
                {}
              egress:
              - toEndpoints:
                - matchLabels:
                    k8s:io.kubernetes.pod.namespace: kube-system
                    k8s-app: kube-dns
                toPorts:
                - ports:
                  - port: '53'
                    protocol: UDP
            """) else { return }
        #expect(spec.endpointSelector.isEmpty)
        #expect(spec.egress == [PeerRule(
            endpoints: [labels(["k8s:io.kubernetes.pod.namespace": "kube-system", "k8s-app": "kube-dns"])],
            ports: [PortProtocol(port: 53, proto: .udp)])])
    }

    @Test func crossNamespacePolicy() {
        // examples/policies/kubernetes/namespace/namespace-policy.yaml
        guard let (policy, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "k8s-expose-across-namespace"
              namespace: ns1
            spec:
              endpointSelector:
                matchLabels:
                  name: leia
              ingress:
              - fromEndpoints:
                - matchLabels:
                    k8s:io.kubernetes.pod.namespace: ns2
                    name: luke
            """) else { return }
        #expect(policy.qualifiedName == "ns1/k8s-expose-across-namespace")
        #expect(spec.ingress?.first?.endpoints == [labels(["k8s:io.kubernetes.pod.namespace": "ns2", "name": "luke"])])
    }

    @Test func isolateNamespacesIsTwoDocuments() {
        // examples/policies/kubernetes/namespace/isolate-namespaces.yaml
        let policies = parse("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "isolate-ns1"
              namespace: ns1
            spec:
              endpointSelector:
                matchLabels:
                  {}
              ingress:
              - fromEndpoints:
                - matchLabels:
                    {}
            ---
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "isolate-ns1"
              namespace: ns2
            spec:
              endpointSelector:
                matchLabels:
                  {}
              ingress:
              - fromEndpoints:
                - matchLabels:
                    {}
            """)
        #expect(policies.map(\.qualifiedName) == ["ns1/isolate-ns1", "ns2/isolate-ns1"])
        for policy in policies {
            #expect(policy.specs.first?.endpointSelector.isEmpty == true)
            #expect(policy.specs.first?.ingress == [PeerRule(endpoints: [LabelSelector()])])
        }
    }

    @Test func nullFromEndpointsReadsAsAbsent() {
        // An older version of examples/policies/l3/ingress-allow-all/ingress-allow-all.yaml wrote
        // `- fromEndpoints:` with nothing after it: YAML null, which upstream's decoder treats as absent.
        guard let (_, spec) = rule("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "allow-all-to-victim"
            spec:
              endpointSelector:
                matchLabels:
                  role: victim
              ingress:
              - fromEndpoints:
            """) else { return }
        #expect(spec.ingress == [PeerRule()])
        #expect(spec.ingress?.first?.endpoints == nil)
    }

    // MARK: - Upstream examples this agent does not enforce yet

    @Test func l7HTTPRulesAreNotSupported() {
        // examples/policies/l7/http/http.yaml
        expectFailure("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "l7-rule"
            spec:
              endpointSelector:
                matchLabels:
                  app: myService
              ingress:
              - toPorts:
                - ports:
                  - port: '80'
                    protocol: TCP
                  rules:
                    http:
                    - method: GET
                      path: "/path1$"
                    - method: PUT
                      path: "/path2$"
                      headers:
                      - 'X-My-Header: true'
            """, at: 15, 9, "L7 rules (toPorts[].rules.http) are not supported yet: L4 enforcement only")
    }

    @Test func l7DNSRulesAreNotSupported() {
        // examples/policies/l7/dns/dns.yaml (its first rule carries the DNS rules)
        expectFailure("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata:
              name: "tofqdn-dns-visibility"
            spec:
              endpointSelector:
                matchLabels:
                  any:org: alliance
              egress:
              - toEndpoints:
                - matchLabels:
                   "k8s:io.kubernetes.pod.namespace": kube-system
                   "k8s:k8s-app": kube-dns
                toPorts:
                  - ports:
                     - port: "53"
                       protocol: ANY
                    rules:
                      dns:
                        - matchName: "cilium.io"
                        - matchPattern: "*.cilium.io"
                        - matchPattern: "*.api.cilium.io"

              - toFQDNs:
                  - matchName: "cilium.io"
                  - matchName: "sub.cilium.io"
                  - matchName: "service1.api.cilium.io"
                  - matchPattern: "special*service.api.cilium.io"
                toPorts:
                  - ports:
                     - port: "80"
                       protocol: TCP
            """, at: 19, 11, "L7 rules (toPorts[].rules.dns) are not supported yet")
    }

    @Test func l7KafkaRulesAreNotSupported() {
        // examples/policies/l7/kafka/kafka.yaml, without its stray top-level description (see below)
        expectFailure("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "rule1"
            spec:
              endpointSelector:
                matchLabels:
                  app: kafka
              ingress:
              - fromEndpoints:
                - matchLabels:
                    app: empire-hq
                toPorts:
                - ports:
                  - port: "9092"
                    protocol: TCP
                  rules:
                    kafka:
                    - apiKey: "apiversions"
                    - apiKey: "metadata"
            """, at: 18, 9, "spec.ingress[0].toPorts[0].rules", "L7 rules (toPorts[].rules.kafka)")
    }

    @Test func toFQDNsIsNotSupported() {
        // examples/policies/l3/fqdn/fqdn.yaml
        expectFailure("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "to-fqdn"
            spec:
              endpointSelector:
                matchLabels:
                  app: test-app
              egress:
                - toEndpoints:
                  - matchLabels:
                      "k8s:io.kubernetes.pod.namespace": kube-system
                      "k8s:k8s-app": kube-dns
                - toFQDNs:
                    - matchName: "my-remote-service.com"
            """, at: 14, 7,
            "spec.egress[1]: toFQDNs is valid in cilium.io/v2 but not supported yet by this agent "
                + "(FQDN policy comes with its own issue)")
    }

    @Test func serverNamesIsNotSupported() {
        // examples/policies/l4/l4_sni.yaml
        expectFailure("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "l4-sni-rule"
            spec:
              endpointSelector:
                matchLabels:
                  app: myService
              egress:
              - toPorts:
                - ports:
                  - port: "443"
                    protocol: TCP
                  serverNames:
                  - one.one.one.one
            """, at: 14, 7, "serverNames is valid in cilium.io/v2 but not supported yet")
    }

    @Test func toServicesIsNotSupported() {
        // examples/policies/l3/service/service.yaml
        expectFailure("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "service-rule"
            spec:
              endpointSelector:
                matchLabels:
                  id: app2
              egress:
              - toServices:
                - k8sService:
                    serviceName: myservice
                    namespace: default
            """, at: 10, 5, "toServices is valid in cilium.io/v2 but not supported yet")
    }

    @Test func fromRequiresIsNotSupported() {
        // examples/policies/l3/requires/requires.yaml
        expectFailure("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "requires-rule"
            specs:
              - description: "For endpoints with env=prod, only allow if source also has label env=prod"
                endpointSelector:
                  matchLabels:
                    env: prod
                ingress:
                - fromRequires:
                  - matchLabels:
                      env: prod
            """, at: 11, 7, "specs[0].ingress[0]: fromRequires is valid in cilium.io/v2 but not supported yet")
    }

    @Test func hostPoliciesAreNotSupported() {
        // examples/policies/host/demo-host-policy.yaml
        expectFailure("""
            apiVersion: "cilium.io/v2"
            kind: CiliumClusterwideNetworkPolicy
            metadata:
              name: "demo-host-policy"
            spec:
              description: ""
              nodeSelector:
                matchLabels:
                  node-access: ssh
              ingress:
              - fromEntities:
                - cluster
              - toPorts:
                - ports:
                  - port: "22"
                    protocol: TCP
              - icmps:
                - fields:
                  - type: EchoRequest
                    family: IPv4
            """, at: 7, 3,
            "nodeSelector (host policies) is not supported yet: it comes with the HostFirewall subsystem")
    }

    @Test func lowercaseOperatorFromAnOlderExampleIsRejected() {
        // examples/policies/l3/match-expressions/or-statement.yaml writes `operator: "in"`; the
        // cilium.io/v2 CRD only admits In, NotIn, Exists and DoesNotExist.
        expectFailure("""
            apiVersion: "cilium.io/v2"
            kind: CiliumNetworkPolicy
            metadata:
              name: "or-statement-policy"
            spec:
              endpointSelector: {}
              ingress:
              - fromEndpoints:
                - matchExpressions:
                  - key: "k8s:io.kubernetes.pod.namespace"
                    operator: "in"
                    values:
                    - "production"
                - matchExpressions:
                  - key: "k8s:cilium.example.com/policy"
                    operator: "in"
                    values:
                    - "strict"
            """, at: 11, 19, "\"in\" is not an operator; did you mean In?")
    }

    @Test func topLevelDescriptionFromAnUpstreamExampleIsRejected() {
        // examples/policies/kubernetes/clusterwide/wildcard-from-endpoints.yaml puts description at the
        // top level, where the CRD has no such field.
        expectFailure("""
            apiVersion: "cilium.io/v2"
            kind: CiliumClusterwideNetworkPolicy
            description: "Policy for ingress allow to kube-dns from all Cilium managed endpoints in the cluster"
            metadata:
              name: "wildcard-from-endpoints"
            spec:
              endpointSelector:
                matchLabels:
                  k8s:io.kubernetes.pod.namespace: kube-system
                  k8s-app: kube-dns
              ingress:
              - fromEndpoints:
                - {}
                toPorts:
                - ports:
                  - port: "53"
                    protocol: UDP
            """, at: 3, 1, "unknown field \"description\" at the top level", "spec.description")
    }

    // MARK: - Errors with positions

    private let header = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: web
        spec:
          endpointSelector: {}

        """ // the rule's other fields start on line 7

    @Test func unknownField() {
        expectFailure(header + """
              ingress:
              - fromEndpoint:
                - matchLabels: {app: web}
            """, at: 8, 5, "spec.ingress[0]: unknown field \"fromEndpoint\"; did you mean fromEndpoints?",
            "Allowed here: fromEndpoints, fromEntities, fromCIDR, fromCIDRSet, toPorts, icmps",
            "not supported yet: fromRequires, fromNodes, fromGroups, authentication")
    }

    @Test func unknownTopLevelField() {
        expectFailure("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metdata:
              name: web
            """, at: 3, 1, "unknown field \"metdata\"; did you mean metadata?",
            "Allowed here: apiVersion, kind, metadata, spec, specs")
    }

    @Test func peerFieldOfTheOtherDirection() {
        expectFailure(header + """
              ingress:
              - toEndpoints: [{}]
            """, at: 8, 5, "toEndpoints belongs in egress rules; ingress rules select peers with fromEndpoints")
    }

    @Test func portWithoutThePortsLevel() {
        expectFailure(header + """
              egress:
              - toPorts:
                - port: "80"
            """, at: 9, 7, "unknown field \"port\"; did you mean ports?")
    }

    @Test func badCIDR() {
        expectFailure(header + """
              egress:
              - toCIDR:
                - 10.0.0.300/8
            """, at: 9, 7, "spec.egress[0].toCIDR[0]", "\"10.0.0.300/8\" is not a valid IPv4 CIDR")
    }

    @Test func badPrefixLength() {
        expectFailure(header + """
              egress:
              - toCIDR: [10.0.0.0/33]
            """, at: 8, 14, "the prefix length \"33\" must be a number 0-32")
    }

    @Test func hostBitsSet() {
        expectFailure(header + """
              ingress:
              - fromCIDRSet:
                - cidr: 10.1.2.3/8
            """, at: 9, 13, "10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?")
    }

    /// Issue 17, gap 3: IPv6 peers are read as an IPv4-only upstream agent reads them, and
    /// match nothing (upstream's allow-all-egress has both 0.0.0.0/0 and ::/0).
    @Test func ipv6CIDRsAreAcceptedAndMatchNothing() throws {
        let policies = try PolicyParser.parse(header + """
              egress:
              - toCIDR: ["2001:db8::/32"]
              - toCIDRSet:
                - cidr: 0.0.0.0/0
                - cidr: "::/0"
                  except: ["fd00::/8"]
              - toEntities: [world, world-ipv6]
            """, file: "test.yaml")
        let egress = try #require(policies.first?.specs.first?.egress)
        #expect(egress[0].ipv6Peers == ["2001:db8::/32"])
        #expect(egress[0].cidrs.isEmpty && !egress[0].selectsAnyPeer)
        #expect(egress[1].cidrs == [CIDRRule(cidr: "0.0.0.0/0")])
        #expect(egress[1].ipv6Peers == ["::/0 except fd00::/8"])
        #expect(egress[2].entities == [.world] && egress[2].ipv6Peers == ["world-ipv6"])
        #expect(policies[0].notes == ["IPv6 peers 2001:db8::/32, ::/0 except fd00::/8, world-ipv6 match no traffic: "
                                      + "this datapath carries IPv4 only (until IPv6 lands)"])
    }

    @Test func ipv6CIDRsAreStillChecked() {
        expectFailure(header + """
              egress:
              - toCIDR:
                - "2001:db8::1/32"
            """, at: 9, 7, "2001:db8::1/32 has host bits set after /32")
        expectFailure(header + """
              egress:
              - toCIDR:
                - "2001:zz::/32"
            """, at: 9, 7, "is not a valid IPv6 CIDR")
        expectFailure(header + """
              egress:
              - toCIDRSet:
                - cidr: "::/0"
                  except: [10.0.0.0/8]
            """, at: 10, 16, "except is IPv4 but cidr ::/0 is IPv6")
    }

    @Test func exceptOutsideItsCIDR() {
        expectFailure(header + """
              egress:
              - toCIDRSet:
                - cidr: 192.168.0.0/16
                  except: [192.168.1.0/24, 10.0.0.0/8]
            """, at: 10, 32, "except 10.0.0.0/8 is not inside cidr 192.168.0.0/16")
    }

    @Test func cidrSetNeedsAPrefixLength() {
        expectFailure(header + """
              egress:
              - toCIDRSet:
                - cidr: 192.168.1.1
            """, at: 9, 13, "has no prefix length; write 192.168.1.1/32")
    }

    @Test func cidrGroupRefNeedsItsGroupInTheFile() {
        expectFailure(header + """
              ingress:
              - fromCIDRSet:
                - cidrGroupRef: vpn-example-1
            """, at: 9, 21, "no CiliumCIDRGroup named vpn-example-1 in this file; add the group (kind: CiliumCIDRGroup) to the same file")
    }

    @Test func badProtocol() {
        expectFailure(header + """
              egress:
              - toPorts:
                - ports:
                  - port: "53"
                    protocol: udp
            """, at: 11, 19, "protocol \"udp\" is not valid; did you mean UDP?", "case-sensitive")
    }

    /// A port name in an ingress rule is kept (each selected pod resolves it); egress rules, an endPort
    /// beside a name, and names Kubernetes would refuse are errors.
    @Test func namedPort() throws {
        let p = try PolicyParser.parse(header + """
              ingress:
              - toPorts:
                - ports:
                  - port: http-8080
                    protocol: TCP
            """, file: "t.yaml")
        #expect(p[0].specs[0].ingress?.first?.ports == [PortProtocol(port: 0, proto: .tcp, name: "http-8080")])
        expectFailure(header + """
              egress:
              - toPorts:
                - ports:
                  - port: http
            """, at: 8, 5, "named port \"http\" in an egress rule is not supported yet")
        expectFailure(header + """
              ingress:
              - toPorts:
                - ports:
                  - port: http
                    endPort: 90
            """, at: 11, 18, "endPort needs a port number; http is a port name")
        expectFailure(header + """
              ingress:
              - toPorts:
                - ports:
                  - port: HTTP_port
            """, at: 10, 15, "\"HTTP_port\" is neither a port number nor a port name")
    }

    @Test func portOutOfRange() {
        expectFailure(header + """
              ingress:
              - toPorts:
                - ports:
                  - port: 70000
            """, at: 10, 15, "port 70000 is out of range 0-65535")
    }

    @Test func endPortBelowPort() {
        expectFailure(header + """
              egress:
              - toPorts:
                - ports:
                  - port: "8080"
                    endPort: 8000
                    protocol: TCP
            """, at: 11, 18, "endPort 8000 is below port 8080; endPort must be >= port")
    }

    @Test func endPortWithoutPort() {
        expectFailure(header + """
              egress:
              - toPorts:
                - ports:
                  - endPort: 8000
            """, at: 10, 18, "endPort needs a non-zero port")
    }

    /// Another kind is another object of the file (issue 17): skipped and named, not read as a policy.
    @Test func otherKindsAreSkippedAndNamed() throws {
        let read = try PolicyParser.read("""
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata:
              name: web
            spec:
              podSelector: {}
            """, file: "test.yaml")
        #expect(read.policies.isEmpty)
        #expect(read.skipped == ["NetworkPolicy web"])
    }

    @Test func wrongAPIVersion() {
        expectFailure("""
            apiVersion: cilium.io/v2alpha1
            kind: CiliumNetworkPolicy
            metadata:
              name: web
            spec:
              endpointSelector: {}
            """, at: 1, 13, "apiVersion: cilium.io/v2alpha1 is not supported", "cilium.io/v2")
    }

    @Test func missingName() {
        expectFailure("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata:
              namespace: shop
            spec:
              endpointSelector: {}
            """, at: 3, 1, "metadata.name is required")
    }

    @Test func missingMetadata() {
        expectFailure("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            spec:
              endpointSelector: {}
            """, at: 1, 1, "metadata.name is required")
    }

    @Test func invalidName() {
        expectFailure("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata:
              name: Allow_Web
            spec:
              endpointSelector: {}
            """, at: 4, 9, "\"Allow_Web\" is not a valid name")
    }

    @Test func namespaceOnAClusterwidePolicy() {
        expectFailure("""
            apiVersion: cilium.io/v2
            kind: CiliumClusterwideNetworkPolicy
            metadata:
              name: web
              namespace: shop
            spec:
              endpointSelector: {}
            """, at: 5, 3, "is cluster-wide and has no namespace")
    }

    @Test func missingEndpointSelector() {
        expectFailure("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata:
              name: web
            spec:
              ingress: [{}]
            """, at: 5, 1, "spec: endpointSelector is required")
    }

    @Test func missingRules() {
        expectFailure("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata:
              name: web
            """, at: 1, 1, "CiliumNetworkPolicy web has no rule")
    }

    @Test func yamlSyntaxError() {
        expectFailure("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata:
              name: web: shop
            spec:
              endpointSelector: {}
            """, at: 4, 12, "invalid YAML: mapping values are not allowed in this context")
    }

    @Test func yamlSyntaxErrorInALaterDocument() {
        expectFailure("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: a}
            spec: {endpointSelector: {}}
            ---
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: b
            spec: {endpointSelector: {}}
            """, at: 9, 5, "invalid YAML")
    }

    @Test func tabIndentation() {
        expectFailure(header + "  ingress:\n\t- {}\n", at: 8, 1, "invalid YAML", "indented with a tab")
    }

    @Test func duplicateKey() {
        expectFailure(header + """
              ingress: []
              egress: []
              ingress: [{}]
            """, at: 9, 3, "duplicate key \"ingress\" (first set on line 7)")
    }

    @Test func duplicateKeyInJSON() {
        expectFailure("""
            {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "a", "name": "b"}}
            """, at: 1, 89, "duplicate key \"name\" (first set at column 76)")
    }

    @Test func wrongTypeStringForList() {
        expectFailure(header + """
              ingress:
              - fromEntities: world
            """, at: 8, 19, "spec.ingress[0].fromEntities: expected a list of entity names, got the string \"world\"",
            "[world]")
    }

    @Test func wrongTypeListForRule() {
        expectFailure("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata:
              name: web
            spec:
            - endpointSelector: {}
            """, at: 6, 1, "spec: expected one rule (a mapping), got a list", "specs:")
    }

    @Test func wrongTypeMappingForSelector() {
        expectFailure(header + """
              egress:
              - toEndpoints:
                  matchLabels: {app: db}
            """, at: 9, 7, "expected a list of endpoint selectors, got a mapping")
    }

    @Test func wrongTypeForBool() {
        expectFailure(header + """
              enableDefaultDeny:
                ingress: "false"
            """, at: 8, 14, "enableDefaultDeny.ingress: expected true or false, got the string \"false\"")
    }

    @Test func unknownEntity() {
        expectFailure(header + """
              egress:
              - toEntities: [kube-apiserver, wrld]
            """, at: 8, 34, "unknown entity \"wrld\"; did you mean world?")
    }


    @Test func icmpsWithToPorts() {
        expectFailure(header + """
              ingress:
              - toPorts:
                - ports: [{port: "80"}]
                icmps:
                - fields: [{type: 8}]
            """, at: 10, 5, "icmps and toPorts cannot be combined in one rule")
    }

    @Test func icmpTypeOutOfRangeAndUnknownName() {
        expectFailure(header + """
              egress:
              - icmps:
                - fields:
                  - type: 256
            """, at: 10, 15, "ICMP type 256 is out of range 0-255")
        expectFailure(header + """
              egress:
              - icmps:
                - fields:
                  - type: EchoRequets
            """, at: 10, 15, "unknown IPv4 ICMP type \"EchoRequets\"; did you mean EchoRequest?")
        expectFailure(header + """
              egress:
              - icmps:
                - fields:
                  - type: PacketTooBig
            """, at: 10, 15, "PacketTooBig is an IPv6 ICMP type; set family: IPv6")
    }

    @Test func requirementValues() {
        expectFailure(header + """
              ingress:
              - fromEndpoints:
                - matchExpressions:
                  - {key: app, operator: In}
            """, at: 10, 30, "operator In needs at least one value")
        expectFailure(header + """
              ingress:
              - fromEndpoints:
                - matchExpressions:
                  - {key: app, operator: Exists, values: [web]}
            """, at: 10, 46, "operator Exists takes no values")
    }

    @Test func authenticationIsNotSupported() {
        expectFailure(header + """
              egress:
              - toEndpoints: [{}]
                authentication:
                  mode: required
            """, at: 9, 5, "authentication is valid in cilium.io/v2 but not supported yet")
    }

    @Test func l7RulesAreNotValidInDenyRules() {
        expectFailure(header + """
              egressDeny:
              - toPorts:
                - ports: [{port: "80", protocol: TCP}]
                  rules: {http: [{}]}
            """, at: 10, 7, "unknown field \"rules\"", "Allowed here: ports")
    }

    @Test func jsonErrorPosition() {
        expectFailure("""
            {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "web"},
             "spec": {"endpointSelector": {}, "egress": [{"toPorts": [{"ports": [{"port": "53", "protocol": "dns"}]}]}]}}
            """, at: 2, 97, "protocol \"dns\" is not valid; expected TCP, UDP, SCTP or ANY")
    }

    // MARK: - Shapes

    @Test func emptyTextAndEmptyDocuments() {
        #expect(parse("").isEmpty)
        #expect(parse("# nothing here\n").isEmpty)
        let policies = parse("""
            ---
            # first document is empty
            ---
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: a}
            spec: {endpointSelector: {}}
            ---
            """)
        #expect(policies.map(\.name) == ["a"])
    }

    @Test func multipleDocumentsOfBothKinds() {
        let policies = parse("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata:
              name: allow-frontend
              namespace: shop
            spec:
              endpointSelector: {matchLabels: {app: backend}}
              ingress:
              - fromEndpoints: [{matchLabels: {app: frontend}}]
            ---
            apiVersion: cilium.io/v2
            kind: CiliumClusterwideNetworkPolicy
            metadata:
              name: deny-world
            spec:
              endpointSelector: {}
              ingressDeny:
              - fromEntities: [world]
            """)
        #expect(policies.map(\.qualifiedName) == ["shop/allow-frontend", "deny-world"])
        #expect(policies.map(\.kind) == [.namespaced, .clusterwide])
    }

    @Test func specAndSpecsTogether() {
        let policies = parse("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata:
              name: web
            specs:
            - endpointSelector: {matchLabels: {app: b}}
              egress: [{toEntities: [world]}]
            - endpointSelector: {matchLabels: {app: c}}
              ingress: []
            spec:
              endpointSelector: {matchLabels: {app: a}}
              ingress: [{fromEntities: [cluster]}]
            """)
        let specs = policies.first?.specs ?? []
        // spec first, then every element of specs, as the model documents.
        #expect(specs.map { $0.endpointSelector.matchLabels["app"] } == ["a", "b", "c"])
        #expect(specs[2].ingress == [])
        #expect(specs[2].egress == nil)
    }

    @Test func jsonInput() {
        let policies = parse("""
            {
              "apiVersion": "cilium.io/v2",
              "kind": "CiliumNetworkPolicy",
              "metadata": {"name": "json-rule", "namespace": "shop", "labels": {"team": "web", "tier": 1}},
              "spec": {
                "endpointSelector": {"matchLabels": {"app": "web"}},
                "egress": [
                  {"toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}],
                   "toPorts": [{"ports": [{"port": 443, "protocol": "TCP"}, {"port": "8000", "endPort": 8100}]}]}
                ]
              }
            }
            """)
        #expect(policies.count == 1)
        let policy = policies.first
        #expect(policy?.qualifiedName == "shop/json-rule")
        #expect(policy?.labels == ["team=web", "tier=1"])
        #expect(policy?.specs.first?.egress == [PeerRule(
            cidrs: [CIDRRule(cidr: "10.0.0.0/8", except: ["10.96.0.0/12"])],
            ports: [PortProtocol(port: 443, proto: .tcp), PortProtocol(port: 8000, endPort: 8100, proto: .any)])])
    }

    @Test func topLevelList() {
        let policies = parse("""
            - apiVersion: cilium.io/v2
              kind: CiliumNetworkPolicy
              metadata: {name: a}
              spec: {endpointSelector: {}}
            - apiVersion: cilium.io/v2
              kind: CiliumClusterwideNetworkPolicy
              metadata: {name: b}
              spec: {endpointSelector: {}}
            """)
        #expect(policies.map(\.qualifiedName) == ["default/a", "b"])
    }

    @Test func topLevelListErrorsCarryTheirIndex() {
        expectFailure("""
            - apiVersion: cilium.io/v2
              kind: CiliumNetworkPolicy
              metadata: {name: a}
              spec: {endpointSelector: {}}
            - apiVersion: cilium.io/v2
              kind: CiliumNetworkPolicy
              metadata: {name: b}
              spec: {endpointSelector: {}, egress: [{toCIDR: [1.2.3.4/24]}]}
            """, at: 8, 51, "[1].spec.egress[0].toCIDR[0]: 1.2.3.4/24 has host bits set; did you mean 1.2.3.0/24?")
    }

    @Test func kubectlListOutput() {
        // The shape `kubectl get cnp,ccnp -o yaml` prints, cluster-populated fields included.
        let policies = parse("""
            apiVersion: v1
            items:
            - apiVersion: cilium.io/v2
              kind: CiliumNetworkPolicy
              metadata:
                annotations:
                  kubectl.kubernetes.io/last-applied-configuration: "{}"
                creationTimestamp: "2024-05-01T10:00:00Z"
                generation: 1
                labels:
                  app.kubernetes.io/part-of: shop
                name: allow-frontend
                namespace: shop
                resourceVersion: "1234"
                uid: 0b0e8a8e-3c1f-4c53-9a55-2d6f2b2f6b11
              spec:
                endpointSelector:
                  matchLabels:
                    app: backend
                ingress:
                - fromEndpoints:
                  - matchLabels:
                      app: frontend
              status:
                conditions:
                - type: Valid
                  status: "True"
            - apiVersion: cilium.io/v2
              kind: CiliumClusterwideNetworkPolicy
              metadata:
                name: lockdown
              spec:
                endpointSelector: {}
                ingressDeny:
                - fromEntities: [world]
            kind: List
            metadata:
              resourceVersion: ""
            """)
        #expect(policies.map(\.qualifiedName) == ["shop/allow-frontend", "lockdown"])
        #expect(policies.first?.labels == ["app.kubernetes.io/part-of=shop"])
    }

    @Test func listItemErrorsPointIntoTheItem() {
        expectFailure("""
            apiVersion: v1
            kind: List
            items:
            - apiVersion: cilium.io/v2
              kind: CiliumNetworkPolicy
              metadata: {name: a}
              spec:
                endpointSelector: {}
                egress:
                - toPorts: [{ports: [{port: "80", protocol: Tcp}]}]
            """, at: 10, 49, "items[0].spec.egress[0].toPorts[0].ports[0].protocol", "did you mean TCP?")
    }

    @Test func ruleLabelsDescriptionAndDefaultDeny() {
        guard let (_, spec) = rule("""
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata:
              name: monitoring
            spec:
              description: "let Prometheus scrape, without isolating anything"
              endpointSelector:
                matchLabels:
                  metrics: 9090
                  scrape: true
              enableDefaultDeny:
                ingress: false
                egress: false
              labels:
              - team=observability
              - {key: owner, value: sre}
              - {key: tier, value: backend, source: k8s}
              ingress:
              - fromEndpoints: []
              - fromEndpoints: [{matchLabels: {app: prometheus}}]
                toPorts:
                - ports:
                  - port: 9090
                  - {}
            """) else { return }
        #expect(spec.description == "let Prometheus scrape, without isolating anything")
        #expect(spec.endpointSelector.matchLabels == ["metrics": "9090", "scrape": "true"])
        #expect(spec.defaultDenyIngress == false)
        #expect(spec.defaultDenyEgress == false)
        #expect(spec.labels == ["team=observability", "owner=sre", "k8s:tier=backend"])
        // An empty fromEndpoints stays an empty list (no endpoint), unlike an absent one.
        #expect(spec.ingress?[0].endpoints == [])
        #expect(spec.ingress?[0].selectsAnyPeer == false)
        #expect(spec.ingress?[1].ports == [PortProtocol(port: 9090), PortProtocol(port: 0)])
    }

    @Test func matchExpressions() {
        guard let (_, spec) = rule("""
            apiVersion: cilium.io/v2
            kind: CiliumClusterwideNetworkPolicy
            metadata:
              name: all-but-kube-system
            spec:
              endpointSelector:
                matchExpressions:
                - key: io.kubernetes.pod.namespace
                  operator: NotIn
                  values:
                  - kube-system
                - {key: debug, operator: DoesNotExist}
              egress:
              - toEndpoints:
                - matchExpressions:
                  - {key: app, operator: In, values: [db, cache]}
                  - {key: canary, operator: Exists}
            """) else { return }
        #expect(spec.endpointSelector.matchExpressions == [
            .init(key: "io.kubernetes.pod.namespace", op: .notIn, values: ["kube-system"]),
            .init(key: "debug", op: .doesNotExist),
        ])
        #expect(spec.egress?.first?.endpoints?.first?.matchExpressions == [
            .init(key: "app", op: .in, values: ["db", "cache"]),
            .init(key: "canary", op: .exists),
        ])
    }

    @Test func bareAddressInFromCIDRIsOneHost() {
        guard let (_, spec) = rule(header + """
              ingress:
              - fromCIDR: [192.0.2.10, 0.0.0.0/0]
            """) else { return }
        #expect(spec.ingress?.first?.cidrs == [CIDRRule(cidr: "192.0.2.10/32"), CIDRRule(cidr: "0.0.0.0/0")])
    }
}
