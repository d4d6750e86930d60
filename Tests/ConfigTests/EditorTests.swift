import Config
import Foundation
import Testing
import TestSupport

@Suite("cilium config set / get / view")
struct EditorTests {
    static let commented = """
        # Node config for edge-1
        cluster:
          name: edge-1 # the cluster
          id: 4

        # -- flows
        hubble:
          enabled: true
          metrics:
            enabled: [dns]

        # trailing comment
        devices:
          - eth0

        """

    @Test("replacing a one-line value keeps comments and layout")
    func replaceInPlace() throws {
        let edited = try ConfigEditor.set("cluster.name", to: "edge-2", in: Self.commented)
        #expect(edited == Self.commented.replacingOccurrences(of: "name: edge-1 #", with: "name: \"edge-2\" #"))
        let flow = try ConfigEditor.set("hubble.metrics.enabled", to: "{dns,drop}", in: Self.commented)
        #expect(flow == Self.commented.replacingOccurrences(of: "enabled: [dns]", with: #"enabled: ["dns", "drop"]"#))
        let bool = try ConfigEditor.set("hubble.enabled", to: "false", in: Self.commented)
        #expect(bool.contains("hubble:\n  enabled: false\n"))
        #expect(bool.contains("# trailing comment"))
        let block = try ConfigEditor.set("devices", to: "{eth1,eth2}", in: Self.commented)
        #expect(block == Self.commented.replacingOccurrences(of: "devices:\n  - eth0\n", with: "devices: [\"eth1\", \"eth2\"]\n"))
        #expect(try ConfigEditor.unset("devices", in: Self.commented).hasSuffix("# trailing comment\n"))
    }

    @Test("missing keys are added at the end of their section, creating sections")
    func insert() throws {
        let ui = try ConfigEditor.set("hubble.ui.enabled", to: "true", in: Self.commented)
        #expect(ui.contains("    enabled: [dns]\n  ui:\n    enabled: true\n\n# trailing comment"))
        let top = try ConfigEditor.set("routingMode", to: "native", in: Self.commented)
        #expect(top.hasSuffix("  - eth0\nroutingMode: native\n"))
        #expect(top.hasPrefix("# Node config for edge-1\n"))
        let nested = try ConfigEditor.set("ipam.operator.clusterPoolIPv4MaskSize", to: "26", in: "")
        #expect(nested == "ipam:\n  operator:\n    clusterPoolIPv4MaskSize: 26\n")
        #expect(try ConfigLoader.parse(yaml: nested).ipam.operator.clusterPoolIPv4MaskSize == 26)
    }

    @Test("keys and sections written without a value are filled in place")
    func fillNull() throws {
        let text = "# keep\nhubble:\n  enabled: # later\nprometheus:\n  port: 1234\n"
        #expect(try ConfigEditor.set("hubble.enabled", to: "false", in: text)
            == "# keep\nhubble:\n  enabled: false # later\nprometheus:\n  port: 1234\n")
        #expect(try ConfigEditor.unset("hubble.enabled", in: text) == "# keep\nhubble:\nprometheus:\n  port: 1234\n")
        let emptied = try ConfigEditor.unset("hubble.enabled", in: Self.commented)
        let refilled = try ConfigEditor.set("hubble.enabled", to: "false", in: emptied)
        #expect(refilled.contains("# -- flows\nhubble:\n  metrics:\n    enabled: [dns]\n  enabled: false\n\n"))
        let section = "# keep\nhubble:\ncluster:\n  id: 2\n"
        #expect(try ConfigEditor.set("hubble.ui.enabled", to: "true", in: section)
            == "# keep\nhubble:\n  ui:\n    enabled: true\ncluster:\n  id: 2\n")
    }

    @Test("values that cannot be edited in place are re-emitted with the other keys intact")
    func reemit() throws {
        let text = "devices:\n- eth1\n- eth2\nhubble: {enabled: false, ui: {enabled: true}}\n"
        let edited = try ConfigEditor.set("devices", to: "{eth0}", in: text)
        let config = try ConfigLoader.parse(yaml: edited)
        #expect(config.devices == ["eth0"])
        #expect(config.hubble.enabled == false)
        #expect(config.hubble.ui.enabled)
        let added = try ConfigEditor.set("hubble.metrics.port", to: "9000", in: text)
        #expect(try ConfigLoader.parse(yaml: added).hubble.metrics.port == 9000)
        #expect(try ConfigLoader.parse(yaml: added).hubble.ui.enabled)
        // A null section becomes a mapping.
        let null = try ConfigEditor.set("hubble.enabled", to: "false", in: "hubble:\ncluster:\n  id: 2\n")
        #expect(try ConfigLoader.parse(yaml: null).hubble.enabled == false)
        #expect(try ConfigLoader.parse(yaml: null).cluster.id == 2)
    }

    @Test("null and unset remove the key so the default applies")
    func unset() throws {
        let edited = try ConfigEditor.unset("cluster.id", in: Self.commented)
        #expect(!edited.contains("id: 4"))
        #expect(edited.contains("# Node config for edge-1"))
        #expect(try ConfigLoader.parse(yaml: edited).cluster.id == 0)
        #expect(try ConfigEditor.set("cluster.id", to: "null", in: Self.commented) == edited)
        #expect(try ConfigEditor.unset("prometheus.port", in: Self.commented) == Self.commented)
    }

    @Test("set validates the value and the whole result")
    func setErrors() {
        #expect(setError("hubble.enabled", "maybe", in: "")?.description
            == #"hubble.enabled=maybe: expected true or false, got "maybe""#)
        #expect(setError("hubble.enabeld", "true", in: "")?.description
            == #"hubble.enabeld=true: unknown key "hubble.enabeld" (did you mean "hubble.enabled"?)"#)
        #expect(setError("maglev.tableSize", "1000", in: "")?.description
            == "maglev.tableSize=1000: 1000 is not allowed; use one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071")
        // The edit itself is fine but breaks a rule with another key.
        #expect(setError("loadBalancer.mode", "dsr", in: "")?.description
            == "loadBalancer.mode=dsr: dsr needs routingMode native, but routingMode is tunnel; set routingMode to native or loadBalancer.mode to snat")
        #expect(setError("routingMode", "tunnel", in: "routingMode: native\nloadBalancer: {mode: dsr}\n")?.description
            == "routingMode=tunnel: loadBalancer.mode: dsr needs routingMode native, but routingMode is tunnel; set routingMode to native or loadBalancer.mode to snat")
        // Problems the file already had keep their place in the file.
        #expect(setError("cluster.id", "3", in: "hubbel:\n  enabled: true\n")?.description
            == #"node.yaml:1:1: unknown key "hubbel" (did you mean "hubble"?)"#)
        #expect(setError("hubble.ui.enabled", "true", in: "hubble: yes\n")?.description
            == #"node.yaml:1:9: hubble: expected a mapping, got "yes"; fix the file first"#)
        #expect(setError("cluster.id", "3", in: "cluster: [\n")?.description.hasPrefix("node.yaml:2:1: invalid YAML:") == true)
        #expect(throws: ConfigError.self) { try ConfigEditor.set("no-equals-sign", in: "") }
    }

    @Test("set can repair the value that made the file invalid")
    func repair() throws {
        let broken = "hubble:\n  enabled: yes please\n"
        #expect(parseError(broken) != nil)
        let fixed = try ConfigEditor.set("hubble.enabled=false", in: broken)
        #expect(fixed == "hubble:\n  enabled: false\n")
    }

    @Test("get returns effective values, defaults included, in --set syntax")
    func get() throws {
        #expect(try ConfigEditor.get("cluster.name", in: Self.commented) == "edge-1")
        #expect(try ConfigEditor.get("cluster.id", in: Self.commented) == "4")
        #expect(try ConfigEditor.get("hubble.enabled", in: Self.commented) == "true")
        #expect(try ConfigEditor.get("hubble.metrics.enabled", in: Self.commented) == "{dns}")
        #expect(try ConfigEditor.get("maglev.tableSize", in: Self.commented) == "16381")
        #expect(try ConfigEditor.get("ipam.operator.clusterPoolIPv4PodCIDRList", in: "") == "{10.0.0.0/8}")
        #expect(try AgentConfig().get("agent.nodeName") == "")
        #expect(throws: ConfigError(origin: .none, problem: #"unknown key "maglev.tablesize" (did you mean "maglev.tableSize"?)"#)) {
            try AgentConfig().get("maglev.tablesize")
        }
        #expect(throws: ConfigError.self) { try AgentConfig().get("hubble") }
    }

    @Test("flattened lists every key=value in schema order")
    func flattened() throws {
        let lines = try ConfigEditor.flattened(Self.commented).map(\.description)
        #expect(lines.count == schema.keys.count)
        #expect(lines.first == "cluster.name=edge-1")
        #expect(lines[1] == "cluster.id=4")
        #expect(lines.contains("hubble.metrics.enabled={dns}"))
        #expect(lines.contains("devices={eth0}"))
        #expect(lines.last == "devices={eth0}")
        #expect(lines.contains("tunnelProtocol=vxlan"))
        // Every line is a valid --set that reproduces the same config.
        let config = try ConfigLoader.parse(yaml: Self.commented)
        #expect(try ConfigLoader.parse(yaml: "", overrides: lines) == config)
    }

    @Test("editing every key of values.yaml round-trips and leaves the other keys alone")
    func roundTrip() throws {
        let values = try String(contentsOfFile: valuesYAMLPath, encoding: .utf8)
        for key in schema.keys {
            guard let value = nonDefaultValue(for: key) else { continue }
            var text = values
            var expected = AgentConfig()
            // Keep the cross-key rules satisfied.
            let setup: [String: String] = [
                "loadBalancer.mode": "routingMode=native", "autoDirectNodeRoutes": "routingMode=native",
                "loadBalancer.acceleration": "routingMode=native",
                "encryption.nodeEncryption": "encryption.enabled=true", "clustermesh.enabled": "cluster.id=1",
                "clustermesh.config.enabled": "cluster.id=1", "cluster.id": "clustermesh.maxConnectedClusters=511",
                "etcd.enabled": "etcd.endpoints={x}",
            ]
            if let assignment = setup[key.path] {
                text = try ConfigEditor.set(assignment, in: text)
                expected = try ConfigLoader.parse(yaml: text)
            }
            let edited = try ConfigEditor.set(key.path, to: value.description, in: text)
            let config = try ConfigLoader.parse(yaml: edited)
            #expect(try config.value(forKey: key.path) == value, "\(key.path)")
            var others = config
            try others.setForTest(key.path, from: expected)
            #expect(others == expected, "\(key.path) changed other keys")
            // Comments survive because every key of values.yaml is edited in place.
            #expect(edited.components(separatedBy: "# -- ").count == values.components(separatedBy: "# -- ").count,
                    "\(key.path) lost comments")
            #expect(try ConfigEditor.get(key.path, in: edited) == value.description)
        }
    }
}

@Suite("config set agrees with --set")
struct EditorPropertyTests {
    /// SplitMix64, so failures reproduce.
    typealias Generator = SeededGenerator

    @Test("random edit sequences parse to what the same --set gives", arguments: [0, 1, 2])
    func randomEdits(start: Int) throws {
        let values = try String(contentsOfFile: valuesYAMLPath, encoding: .utf8)
        var text = [values, EditorTests.commented, ""][start]
        var generator = Generator(state: UInt64(start) + 42)
        for step in 0..<150 {
            let key = schema.keys.randomElement(using: &generator)!
            let choices = [nonDefaultValue(for: key)?.description, key.defaultValue.description, "null"]
            guard let value = choices.randomElement(using: &generator)! else { continue }
            let expected = try? ConfigLoader.parse(yaml: text, overrides: ["\(key.path)=\(value)"])
            let edited = try? ConfigEditor.set(key.path, to: value, in: text)
            #expect((edited == nil) == (expected == nil), "step \(step): \(key.path)=\(value)")
            guard let edited, let expected else { continue }
            #expect(try ConfigLoader.parse(yaml: edited) == expected, "step \(step): \(key.path)=\(value)")
            text = edited
        }
        if start < 2 { #expect(text.contains("# ")) }
    }
}

extension AgentConfig {
    /// Copies one key's value from `other`, via --set text.
    mutating func setForTest(_ key: String, from other: AgentConfig) throws {
        var flat = flattened().map(\.description)
        let index = flat.firstIndex { $0.hasPrefix(key + "=") }!
        flat[index] = "\(key)=\(try other.get(key))"
        self = try ConfigLoader.parse(yaml: "", overrides: flat)
    }
}
