import Config
import Testing
import TestSupport

/// The config loader under the mutation fuzzer (issue 16): the file and `--set`.
@Suite(.serialized) struct FuzzTests {
    @Test func configFile() {
        let seeds = [Fuzzer.repositoryFile("config/values.yaml"),
                     "hubble:\n  enabled: true\n  metrics: {enabled: [flow, drop]}\ndevices: [eth0]\netcd: {enabled: true, endpoints: ['http://a:2379']}\n"]
        let report = Fuzzer.run("config file", seeds: seeds) { text in _ = try? ConfigLoader.parse(yaml: text, file: "fuzz.yaml") }
        #expect(report.slowest < Fuzzer.slowest)
    }

    @Test func setOverrides() {
        let seeds = ["hubble.enabled=true", "devices={eth0,eth1}", "etcd.endpoints={http://a:2379}", "maglev.tableSize=16381",
                     "loadBalancer.mode=dsr", "agent.nodeName=", "hubble.metrics.enabled={flow,drop,port-distribution}",
                     "ipam.operator.clusterPoolIPv4PodCIDRList={10.0.0.0/8}"]
        let report = Fuzzer.run("--set", seeds: seeds) { text in _ = try? ConfigLoader.parse(yaml: "", overrides: [text]) }
        #expect(report.slowest < Fuzzer.slowest)
    }
}
