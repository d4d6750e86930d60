import Config
import Testing

@Suite("Helm-style --set overrides")
struct OverrideTests {
    @Test("scalars, lists and later-wins")
    func values() throws {
        let config = try ConfigLoader.parse(yaml: "hubble:\n  enabled: true\n", overrides: [
            "hubble.enabled=false",
            "ipam.operator.clusterPoolIPv4PodCIDRList={10.1.0.0/16,10.2.0.0/16}",
            "cluster.name=edge",
            "cluster.id=9",
            "cluster.id=10",
            "loadBalancer.algorithm=maglev",
            "hubble.metrics.enabled={dns, drop ,tcp}",
            "devices={}",
        ])
        #expect(config.hubble.enabled == false)
        #expect(config.ipam.operator.clusterPoolIPv4PodCIDRList == ["10.1.0.0/16", "10.2.0.0/16"])
        #expect(config.cluster.name == "edge")
        #expect(config.cluster.id == 10)
        #expect(config.loadBalancer.algorithm == .maglev)
        #expect(config.hubble.metrics.enabled == ["dns", "drop", "tcp"])
        #expect(config.devices == [])
    }

    @Test("several assignments in one --set, escaped commas, null restores the default")
    func helmSyntax() throws {
        let config = try ConfigLoader.parse(yaml: "", overrides: [
            "kubeProxyReplacement=true,hostFirewall.enabled=true,devices={eth0,eth1}",
            "etcd.enabled=true,etcd.endpoints={https://a:2379\\,b}",
        ])
        #expect(config.kubeProxyReplacement)
        #expect(config.hostFirewall.enabled)
        #expect(config.devices == ["eth0", "eth1"])
        #expect(config.etcd.endpoints == ["https://a:2379,b"])
        let reset = try ConfigLoader.parse(yaml: "hubble:\n  enabled: false\n", overrides: ["hubble.enabled=null"])
        #expect(reset.hubble.enabled)
        #expect(try ConfigLoader.parse(yaml: "", overrides: ["agent.nodeName="]).agent.nodeName == "")
    }

    /// Issue 16: a 100,000-character key took 14.7 s (a quadratic suggestion) and was printed whole.
    @Test func anAbsurdKeyIsRefusedAtOnceAndQuotedShort() {
        let start = ContinuousClock.now
        let text = message("", overrides: [String(repeating: "k", count: 100_000) + "=1"]) ?? ""
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(text.count < 600 && text.contains("(100002 bytes)"), "\(text.prefix(300))")
    }

    /// Issue 16: a duplicate key in a flow mapping, or in a CRLF file, printed the whole file and no place.
    @Test func duplicateKeysAreLocatedInFlowMappingsAndCRLFFiles() {
        let padding = String(repeating: "# a comment line to make the file long\n", count: 300)
        let flow = message(padding + "hubble: {enabled: true, enabled: false}\n") ?? ""
        #expect(flow.hasPrefix("node.yaml:301:"), "\(flow.prefix(200))")
        #expect(flow.contains("duplicate key \"enabled\"") && flow.count < 300, "\(flow.prefix(300))")
        let crlf = message((padding + "hubble:\n  enabled: true\n  enabled: false\n").replacingOccurrences(of: "\n", with: "\r\n")) ?? ""
        #expect(crlf.hasPrefix("node.yaml:303:3: duplicate key \"hubble.enabled\""), "\(crlf.prefix(300))")
        #expect(crlf.count < 300)
    }

    @Test("errors name the --set")
    func errors() {
        #expect(message("", overrides: ["hubble.enabled=maybe"])
            == #"--set hubble.enabled=maybe: expected true or false, got "maybe""#)
        #expect(message("", overrides: ["hubbel.enabled=false"])
            == #"--set hubbel.enabled=false: unknown key "hubbel.enabled" (did you mean "hubble.enabled"?)"#)
        #expect(message("", overrides: ["hubble.relay.enabled=true"])
            == #"--set hubble.relay.enabled=true: unknown key "hubble.relay.enabled"; hubble has enabled, eventBufferCapacity, metrics, ui"#)
        #expect(message("", overrides: ["nothing.like.this=1"])?.hasPrefix(
            #"--set nothing.like.this=1: unknown key "nothing.like.this"; top-level keys are cluster, agent,"#) == true)
        #expect(message("", overrides: ["hubble=false"])
            == #"--set hubble=false: "hubble" is a section, not a setting; use one of its keys: hubble.enabled, hubble.eventBufferCapacity, hubble.metrics.enabled, hubble.metrics.port, hubble.ui.enabled, hubble.ui.port"#)
        #expect(message("", overrides: ["devices=eth0"])
            == #"--set devices=eth0: expected a list of strings, got "eth0"; write {eth0}"#)
        #expect(message("", overrides: ["ipam.operator.clusterPoolIPv4PodCIDRList={10.1.0.0/16,nope}"])
            == #"--set ipam.operator.clusterPoolIPv4PodCIDRList={10.1.0.0/16,nope}: "nope" is not an IPv4 CIDR; use ADDRESS/PREFIX like 10.0.0.0/8"#)
        #expect(message("", overrides: ["maglev.tableSize=1000"])
            == "--set maglev.tableSize=1000: 1000 is not allowed; use one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071")
        #expect(message("", overrides: ["tunnelProtocol=geneve"])
            == "--set tunnelProtocol=geneve: geneve is not available on this kernel (no geneve module); use vxlan")
        #expect(message("", overrides: ["cluster.id="])
            == #"--set cluster.id=: expected an integer between 0 and 511, got """#)
        #expect(message("", overrides: ["hubble.enabled"]) == "--set hubble.enabled: expected KEY=VALUE, e.g. hubble.enabled=false")
        #expect(message("", overrides: ["cluster.name=a,b"]) == "--set b: expected KEY=VALUE, e.g. hubble.enabled=false")
        #expect(message("", overrides: ["devices={eth0"]) == #"--set devices={eth0: unclosed "{"; write lists as {a,b}"#)
        #expect(message("", overrides: ["devices[0]=eth0"])
            == "--set devices[0]=eth0: list indexes are not supported; set the whole list as KEY={a,b}")
        #expect(message("", overrides: ["=1"]) == "--set =1: missing key; write KEY=VALUE")
    }

    @Test("an override can fix or cause a cross-key problem")
    func crossKey() throws {
        #expect(parseError("loadBalancer:\n  mode: dsr\n", overrides: ["routingMode=native"]) == nil)
        // The problem is about loadBalancer.mode but was caused by the --set.
        #expect(message("loadBalancer:\n  mode: dsr\nroutingMode: native\n", overrides: ["routingMode=tunnel"])
            == "node.yaml:2:9: loadBalancer.mode: dsr needs routingMode native, but routingMode is tunnel; set routingMode to native or loadBalancer.mode to snat")
    }
}
