import Config
import Foundation
import Testing

@Suite("Validation errors carry file:line:column")
struct ValidationTests {
    @Test("booleans")
    func booleans() {
        #expect(message("cluster:\n  id: 1\nhubble:\n  enabled: yes please\n")
            == #"node.yaml:4:12: hubble.enabled: expected true or false, got "yes please""#)
        #expect(message("policyAuditMode: yes\n")
            == #"node.yaml:1:18: policyAuditMode: expected true or false, got "yes""#)
        #expect(message("policyAuditMode: \"true\"\n")
            == #"node.yaml:1:18: policyAuditMode: expected true or false, got "true" (a quoted string; write it without quotes)"#)
        #expect(message("hostFirewall:\n  enabled: 1\n")
            == #"node.yaml:2:12: hostFirewall.enabled: expected true or false, got "1""#)
    }

    @Test("integers: type, range, fixed choices, 2^n-1")
    func integers() {
        #expect(message("cluster:\n  id: abc\n")
            == #"node.yaml:2:7: cluster.id: expected an integer between 0 and 511, got "abc""#)
        #expect(message("cluster:\n  id: 600\n")
            == "node.yaml:2:7: cluster.id: 600 is out of range; use an integer between 0 and 511")
        // Above 255 only in a mesh of 511 clusters (upstream's clustermesh.maxConnectedClusters).
        #expect(message("cluster:\n  id: 300\n")
            == "node.yaml:2:7: cluster.id: 300 needs clustermesh.maxConnectedClusters 511 (with 255, cluster IDs go from 1 to 255)")
        #expect(message("cluster:\n  id: 300\nclustermesh:\n  maxConnectedClusters: 511\n") == nil)
        #expect(message("clustermesh:\n  maxConnectedClusters: 300\n")
            == "node.yaml:2:25: clustermesh.maxConnectedClusters: 300 is not allowed; use one of 255, 511")
        #expect(message("cluster:\n  id: -1\n")
            == "node.yaml:2:7: cluster.id: -1 is out of range; use an integer between 0 and 511")
        #expect(message("cluster:\n  id: '5'\n")
            == #"node.yaml:2:7: cluster.id: expected an integer between 0 and 511, got "5" (a quoted string; write it without quotes)"#)
        #expect(message("cluster:\n  id: 1.5\n")
            == #"node.yaml:2:7: cluster.id: expected an integer between 0 and 511, got "1.5""#)
        #expect(message("maglev:\n  tableSize: 1000\n")
            == "node.yaml:2:14: maglev.tableSize: 1000 is not allowed; use one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071")
        #expect(message("hubble:\n  eventBufferCapacity: 4096\n")
            == "node.yaml:2:24: hubble.eventBufferCapacity: 4096 is not allowed; use 2^n-1 between 1 and 65535 (1, 3, 7, 15, ..., 65535)")
        #expect(message("hubble:\n  eventBufferCapacity: 131071\n")
            == "node.yaml:2:24: hubble.eventBufferCapacity: 131071 is out of range; use 2^n-1 between 1 and 65535 (1, 3, 7, 15, ..., 65535)")
        #expect(message("ipam:\n  operator:\n    clusterPoolIPv4MaskSize: 8\n")
            == "node.yaml:3:30: ipam.operator.clusterPoolIPv4MaskSize: 8 is out of range; use an integer between 16 and 30")
        #expect(parseError("hubble:\n  eventBufferCapacity: 65535\n") == nil)
        #expect(parseError("hubble:\n  eventBufferCapacity: 1\n") == nil)
    }

    @Test("strings with constraints")
    func strings() throws {
        #expect(message("cluster:\n  name: Prod\n")
            == #"node.yaml:2:9: cluster.name: "Prod" is not allowed; use a lowercase DNS label of 1 to 32 characters (a-z, 0-9 and '-', starting and ending with a letter or digit)"#)
        #expect(parseError("cluster:\n  name: \(String(repeating: "a", count: 32))\n") == nil)
        #expect(parseError("cluster:\n  name: \(String(repeating: "a", count: 33))\n")?.line == 2)
        #expect(parseError("cluster:\n  name: -edge\n")?.column == 9)
        #expect(parseError("cluster:\n  name: \"\"\n")?.column == 9)
        #expect(message("bpf:\n  root: sys/fs/bpf\n")
            == #"node.yaml:2:9: bpf.root: "sys/fs/bpf" is not allowed; use an absolute path"#)
        #expect(message("maglev:\n  hashSeed: not-base64\n")
            == #"node.yaml:2:13: maglev.hashSeed: "not-base64" is not allowed; use "" or 12 bytes in base64 (16 characters)"#)
        #expect(message("ipv4NativeRoutingCIDR: 10.0.0.0/33\n")
            == #"node.yaml:1:24: ipv4NativeRoutingCIDR: "10.0.0.0/33" is not an IPv4 CIDR; use ADDRESS/PREFIX like 10.0.0.0/8 or "" for none"#)
        #expect(message("agent:\n  nodeName: [a]\n")
            == "node.yaml:2:13: agent.nodeName: expected a string, got a list")
        #expect(try ConfigLoader.parse(yaml: "agent:\n  nodeName: 1234\n").agent.nodeName == "1234")
    }

    @Test("enumerations, and geneve refused")
    func enumerations() {
        #expect(message("loadBalancer:\n  algorithm: roundrobin\n")
            == #"node.yaml:2:14: loadBalancer.algorithm: "roundrobin" is not allowed; use one of random, maglev"#)
        #expect(message("policyEnforcementMode: Always\n")
            == #"node.yaml:1:24: policyEnforcementMode: "Always" is not allowed; use one of default, always, never"#)
        #expect(message("tunnelProtocol: geneve\n")
            == "node.yaml:1:17: tunnelProtocol: geneve is not available on this kernel (no geneve module); use vxlan")
        #expect(message("ipam:\n  mode: kubernetes\n")
            == #"node.yaml:2:9: ipam.mode: "kubernetes" is not allowed; use cluster-pool"#)
        #expect(message("encryption:\n  type: {a: b}\n")
            == "node.yaml:2:9: encryption.type: expected one of wireguard, ipsec, got a mapping")
    }

    @Test("lists and CIDR lists, with the item's own position")
    func lists() {
        #expect(message("devices: eth0\n")
            == #"node.yaml:1:10: devices: expected a list of strings, got "eth0"; write [eth0]"#)
        #expect(message("devices:\n  - eth0\n  - {name: eth1}\n")
            == "node.yaml:3:5: devices: expected a list of strings, got a mapping as a list item")
        #expect(message("devices: [eth0, eth0]\n")
            == #"node.yaml:1:17: devices: "eth0" is listed twice; list each item once"#)
        #expect(message("devices: [eth0, ~]\n")
            == "node.yaml:1:17: devices: expected a list of strings, got null as a list item")
        #expect(message("ipam:\n  operator:\n    clusterPoolIPv4PodCIDRList:\n      - 10.0.0.0/8\n      - 10.300.0.0/16\n")
            == #"node.yaml:5:9: ipam.operator.clusterPoolIPv4PodCIDRList: "10.300.0.0/16" is not an IPv4 CIDR; use ADDRESS/PREFIX like 10.0.0.0/8"#)
        #expect(message("ipam:\n  operator:\n    clusterPoolIPv4PodCIDRList: [10.1.0.1/16]\n")
            == #"node.yaml:3:34: ipam.operator.clusterPoolIPv4PodCIDRList: "10.1.0.1/16" has host bits set; use 10.1.0.0/16"#)
        #expect(message("hubble:\n  metrics:\n    enabled: {dns: true}\n")
            == "node.yaml:3:14: hubble.metrics.enabled: expected a list of strings, got a mapping")
    }

    @Test("a mapping where a value belongs, and a value where a mapping belongs")
    func shapes() {
        #expect(message("hubble:\n  enabled:\n    really: true\n")
            == "node.yaml:3:5: hubble.enabled: expected true or false, got a mapping")
        #expect(message("hubble: true\n")
            == #"node.yaml:1:9: hubble: expected a mapping, got "true"; hubble has enabled, eventBufferCapacity, metrics, ui"#)
        #expect(message("hubble:\n  metrics: [dns]\n")
            == "node.yaml:2:12: hubble.metrics: expected a mapping, got a list; hubble.metrics has enabled, port")
        #expect(message("- hubble\n")?.hasPrefix(
            "node.yaml:1:1: expected a mapping of settings at the top level, got a list; top-level keys are cluster, agent,") == true)
        #expect(message("[a]: b\n") == "node.yaml:1:1: expected a key name, got a list")
    }

    @Test("unknown keys, with the nearest known key suggested")
    func unknownKeys() {
        #expect(message("cluster:\n  id: 1\nhubbel:\n  enabled: true\n")
            == #"node.yaml:3:1: unknown key "hubbel" (did you mean "hubble"?)"#)
        #expect(message("hubble:\n  enabled: true\n  metrics:\n    prot: 9\n")
            == #"node.yaml:4:5: unknown key "hubble.metrics.prot" (did you mean "hubble.metrics.port"?)"#)
        #expect(message("kubeproxyreplacement: true\n")
            == #"node.yaml:1:1: unknown key "kubeproxyreplacement" (did you mean "kubeProxyReplacement"?)"#)
        #expect(message("ipam:\n  clusterPoolIPv4MaskSize: 20\n")
            == #"node.yaml:2:3: unknown key "ipam.clusterPoolIPv4MaskSize" (did you mean "ipam.operator.clusterPoolIPv4MaskSize"?)"#)
        #expect(message("hubble:\n  relay: {}\n")
            == #"node.yaml:2:3: unknown key "hubble.relay"; hubble has enabled, eventBufferCapacity, metrics, ui"#)
        #expect(message("zzzzzz: 1\n")?.hasPrefix(#"node.yaml:1:1: unknown key "zzzzzz"; top-level keys are cluster, agent, bpf,"#) == true)
        #expect(message("hubble.enabled: false\n")
            == #"node.yaml:1:1: unknown key "hubble.enabled"; dotted names are not expanded in the file, nest it as hubble: enabled:"#)
    }

    @Test("duplicate keys")
    func duplicates() {
        #expect(message("hubble:\n  enabled: true\n  ui: {}\n  enabled: false\n")
            == #"node.yaml:4:3: duplicate key "hubble.enabled"; it is already set on line 2, keep one"#)
    }

    @Test("YAML syntax errors keep Yams' line and column")
    func syntax() {
        #expect(message("cluster: a: b\n") == "node.yaml:1:11: invalid YAML: mapping values are not allowed in this context")
        #expect(message("hubble:\n  enabled: [true\n")
            == "node.yaml:3:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 2, column 12)")
        let tab = parseError("hubble:\n\tenabled: true\n")
        #expect(tab?.line == 2)
        #expect(tab?.description.hasPrefix("node.yaml:2:") == true)
        #expect(tab?.problem.hasPrefix("invalid YAML:") == true)
        #expect(message("cluster:\n  name: \"open\n")?.hasPrefix("node.yaml:3:1: invalid YAML:") == true)
        #expect(message("a: 1\n---\nb: 2\n")?.hasPrefix("node.yaml:2:1: invalid YAML:") == true)
    }

    @Test("kubeProxyReplacement takes Helm's string booleans and refuses the removed modes")
    func kubeProxyReplacement() throws {
        #expect(try ConfigLoader.parse(yaml: "kubeProxyReplacement: true\n").kubeProxyReplacement)
        #expect(try ConfigLoader.parse(yaml: "kubeProxyReplacement: \"true\"\n").kubeProxyReplacement)
        #expect(try ConfigLoader.parse(yaml: "kubeProxyReplacement: 'false'\n").kubeProxyReplacement == false)
        #expect(try ConfigLoader.parse(yaml: "", overrides: ["kubeProxyReplacement=true"]).kubeProxyReplacement)
        #expect(message("kubeProxyReplacement: strict\n")
            == #"node.yaml:1:23: kubeProxyReplacement: "strict" was removed upstream (Cilium 1.15); use true or false"#)
        #expect(message("kubeProxyReplacement: \"partial\"\n")
            == #"node.yaml:1:23: kubeProxyReplacement: "partial" was removed upstream (Cilium 1.15); use true or false"#)
        #expect(message("", overrides: ["kubeProxyReplacement=strict"])
            == #"--set kubeProxyReplacement=strict: "strict" was removed upstream (Cilium 1.15); use true or false"#)
        #expect(message("kubeProxyReplacement: maybe\n")
            == #"node.yaml:1:23: kubeProxyReplacement: expected true or false (the strings "true" and "false" are accepted too), got "maybe""#)
    }

    @Test("rules across keys")
    func crossKey() {
        #expect(message("loadBalancer:\n  mode: dsr\n")
            == "node.yaml:2:9: loadBalancer.mode: dsr needs routingMode native, but routingMode is tunnel; set routingMode to native or loadBalancer.mode to snat")
        #expect(parseError("routingMode: native\nloadBalancer:\n  mode: dsr\n") == nil)
        #expect(message("autoDirectNodeRoutes: true\n")?.hasPrefix("node.yaml:1:23: autoDirectNodeRoutes: true needs routingMode native") == true)
        #expect(message("ipam:\n  operator:\n    clusterPoolIPv4PodCIDRList: []\n")
            == "node.yaml:3:33: ipam.operator.clusterPoolIPv4PodCIDRList: no CIDR listed; ipam.mode cluster-pool needs at least one, e.g. {10.0.0.0/8}")
        #expect(message("ipam:\n  operator:\n    clusterPoolIPv4PodCIDRList: [10.0.0.0/26]\n")
            == "node.yaml:3:33: ipam.operator.clusterPoolIPv4MaskSize: 24 is shorter than the /26 pool 10.0.0.0/26; use a mask size of at least 26 or a larger pool")
        #expect(message("etcd:\n  enabled: true\n")?.hasPrefix("node.yaml:2:12: etcd.enabled: true needs at least one entry in etcd.endpoints") == true)
        #expect(message("encryption:\n  nodeEncryption: true\n")?.hasPrefix("node.yaml:2:19: encryption.nodeEncryption: true needs encryption.enabled true") == true)
        #expect(message("clustermesh:\n  enabled: true\n")?.hasPrefix("node.yaml:2:12: clustermesh.enabled: true needs a non-zero cluster.id") == true)
        #expect(message("prometheus: {enabled: true, port: 9965}\nhubble: {metrics: {enabled: [dns]}}\n")
            == "node.yaml:1:35: prometheus.port: 9965 is also hubble.metrics.port; give the two metrics servers different ports")
        #expect(message("", overrides: ["loadBalancer.mode=hybrid"])?.hasPrefix(
            "--set loadBalancer.mode=hybrid: hybrid needs routingMode native") == true)
    }

    @Test("load(path:) reads files and reports unreadable ones")
    func load() throws {
        #expect(throws: ConfigError(origin: .file("/nonexistent/node.yaml"), problem: "no such file")) {
            try ConfigLoader.load(path: "/nonexistent/node.yaml")
        }
        let path = "/tmp/config-tests-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try "hubble:\n  enabled: maybe\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: ConfigError(origin: .position(file: path, line: 2, column: 12), key: "hubble.enabled",
                                    problem: #"expected true or false, got "maybe""#)) {
            try ConfigLoader.load(path: path)
        }
        // An override does not hide the file's own error.
        #expect(throws: ConfigError.self) { try ConfigLoader.load(path: path, overrides: ["hubble.enabled=false"]) }
        try "hubble:\n  enabled: false\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try ConfigLoader.load(path: path).hubble.enabled == false)
    }
}
