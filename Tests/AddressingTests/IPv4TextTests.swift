import Diagnostics
import Foundation
import Addressing
import Config
import Datapath
import LinuxNet
import Manifests
import Testing
import TestSupport

/// One reading of IPv4 text for the whole project: the config, both manifest
/// readers and the datapath's values agree on what is an address.
@Suite struct IPv4TextTests {
    @Test(arguments: ["10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.1.10"])
    func valid(_ text: String) throws {
        let value = try IPv4Text.address(text).get()
        #expect(IPv4Text.format(value) == text)
        #expect(Netlink.IPv4Address(text)?.description == text)
    }

    /// The one-pass reading of the usual case agrees with the careful one on every kind of input.
    @Test func theFastPathAgreesWithTheCarefulOne() {
        var inputs = ["0.0.0.0", "255.255.255.255", "1.2.3.4", "01.2.3.4", "1.2.3.04", "0.0.0.00", "1.2.3", "1.2.3.4.5", "1..2.3",
                      ".1.2.3", "1.2.3.", "256.1.1.1", "1.2.3.2555", "1.2.3.1000", "1.2.3.-1", "1.2.3.4 ", "a.b.c.d", "", ".", "...",
                      "1.2.3.4/8", "::ffff:1.2.3.4", "99999999999.1.1.1", "1.2.3.٣"]
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789.")
        for _ in 0..<2000 {
            inputs.append(String((0..<Int.random(in: 1...15, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }))
        }
        for text in inputs {
            let careful: UInt32? = {
                let parts = text.split(separator: ".", omittingEmptySubsequences: false)
                guard parts.count == 4 else { return nil }
                var v: UInt32 = 0
                for p in parts {
                    guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), p == "0" || !p.hasPrefix("0"),
                          let o = UInt32(p), o <= 255 else { return nil }
                    v = v << 8 | o
                }
                return v
            }()
            #expect((try? IPv4Text.address(text).get()) == careful, "\(text)")
        }
    }

    @Test(arguments: [
        ("010.0.0.1", IPv4Text.Problem.leadingZero(part: "010", fixed: "10.0.0.1")),
        ("10.0.0.01", .leadingZero(part: "01", fixed: "10.0.0.1")),
        ("10.0.0.256", .outOfRange(part: "256")),
        ("10.0.0", .malformed),
        ("10.0.0.1.", .malformed),
        ("10.0.0.+1", .malformed),
        (" 10.0.0.1", .malformed),
        ("", .empty),
        ("::1", .ipv6),
        ("10.0.0.1/32", .prefixNotAddress(address: "10.0.0.1")),
    ])
    func invalid(_ text: String, _ problem: IPv4Text.Problem) {
        #expect(throws: problem) { try IPv4Text.address(text).get() }
        #expect(Netlink.IPv4Address(text) == nil)
    }

    @Test func prefixes() throws {
        #expect(try IPv4Text.prefix("10.0.0.0/8").get() == (0x0a00_0000, 8))
        #expect(throws: IPv4Text.Problem.hostBits(network: "10.0.0.0/8")) { try IPv4Text.prefix("10.1.2.3/8").get() }
        #expect(try IPv4Text.prefix("10.1.2.3/8", hostBits: true).get() == (0x0a01_0203, 8))
        #expect(throws: IPv4Text.Problem.noLength) { try IPv4Text.prefix("10.0.0.0").get() }
        #expect(try IPv4Text.prefix("10.0.0.1", bareAddress: true).get() == (0x0a00_0001, 32))
        for bad in ["10.0.0.0/33", "10.0.0.0/08", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8/8"] {
            #expect(throws: IPv4Text.Problem.self, "\(bad)") { try IPv4Text.prefix(bad).get() }
        }
        #expect(Netlink.IPv4Prefix("10.250.0.1/24")?.description == "10.250.0.1/24")
        #expect(Netlink.IPv4Prefix("010.250.0.1/24") == nil)
    }

    /// "010.0.0.1" used to be 10.0.0.1 to the datapath's parser and an error to the manifest readers.
    @Test func everyReaderRefusesALeadingZero() {
        #expect(throws: (any Error).self) {
            try ConfigLoader.parse(yaml: "ipam:\n  operator:\n    clusterPoolIPv4PodCIDRList: [\"010.0.0.0/8\"]\n")
        }
        #expect(throws: (any Error).self) {
            try PolicyParser.parse("""
                apiVersion: cilium.io/v2
                kind: CiliumNetworkPolicy
                metadata: {name: p}
                spec:
                  endpointSelector: {}
                  egress: [{toCIDR: ["010.0.0.0/8"]}]
                """, file: "p.yaml")
        }
        #expect(throws: (any Error).self) {
            try ServiceManifestParser.parse("""
                apiVersion: v1
                kind: Service
                metadata: {name: s, namespace: default}
                spec:
                  clusterIP: 010.96.0.10
                  ports: [{port: 80}]
                """, file: "s.yaml")
        }
        #expect(Netlink.IPv4Address("010.0.0.1") == nil)
    }
}

/// Issue 16: where JSON breaks, and suggestions that cost nothing for absurd input.
@Suite struct DiagnosticsTests {
    @Test(arguments: [
        ("{\"a\": 1,\n \"b\": 2 x}", 2, 9, "expected ',' or '}', found 'x'"),
        ("", 1, 1, "expected a value, found the end of the text"),
        ("[1, 2", 1, 6, "expected ',' or ']', found the end of the text"),
        ("{\"a\" 1}", 1, 6, "expected ':' after the key, found '1'"),
        ("{a: 1}", 1, 2, "expected a key in quotes, found 'a'"),
        ("[01]", 1, 3, "expected ',' or ']', found '1'"),
        ("[1.]", 1, 4, "expected a digit after '.', found ']'"),
        ("\"\\q\"", 1, 3, "invalid escape \\q"),
        ("\"abc", 1, 5, "unterminated string"),
        ("tru", 1, 1, "expected a value, found 't'"),
        ("{} {}", 1, 4, "unexpected '{' after the value"),
        ("[\"é\" x]", 1, 6, "expected ',' or ']', found 'x'"),
    ])
    func jsonProblems(_ text: String, _ line: Int, _ column: Int, _ message: String) {
        #expect(JSONSyntax.firstProblem(in: Array(text.utf8)) == .init(line: line, column: column, message: message))
    }

    /// It agrees with Foundation on what is JSON: valid documents and one-byte mutations of them.
    @Test func agreesWithFoundation() {
        let docs = [#"{"cniVersion":"1.0.0","name":"c","plugins":[{"type":"x","mtu":1500,"ok":true,"n":null,"f":-1.5e-3}]}"#,
                    #"[[[[]]],{},"\u00e9\n",0,-0,1e10]"#]
        var rng = SystemRandomNumberGenerator()
        for doc in docs {
            #expect(JSONSyntax.firstProblem(in: Array(doc.utf8)) == nil)
            for _ in 0..<500 {
                var bytes = Array(doc.utf8)
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = Array("{}[]:,\" 0a-.e\\".utf8).randomElement(using: &rng)!
                let foundation = (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
                // Foundation is lenient where RFC 8259 is not (a trailing comma): what it refuses, this
                // locates; what this calls valid, it reads.
                let problem = JSONSyntax.firstProblem(in: bytes)
                #expect(foundation || problem != nil, "\(String(decoding: bytes, as: UTF8.self))")
            }
        }
    }

    /// The readers every input meets first: no trap, no slow input (issue 16's fuzzing).
    @Test func fuzzJSONSyntaxUTF8AndAddresses() {
        let seeds = [Fuzzer.repositoryFile("config/cilium-cni.conflist"),
                     #"{"cniVersion":"1.0.0","name":"c","type":"cilium-cni","mtu":1400,"args":{"cni":{"labels":["app=web"]}},"prevResult":{"ips":[{"address":"10.0.0.2/24","interface":0}]}}"#,
                     "10.0.0.1", "10.96.0.0/12"]
        Fuzzer.run("JSON syntax, UTF-8 and IPv4 text", seeds: seeds) { text in
            _ = JSONSyntax.firstProblem(in: Array(text.utf8))
            _ = UTF8Text.decode(Array(text.utf8), file: "f")
            _ = IPv4Text.address(text)
            _ = IPv4Text.prefix(text, bareAddress: true)
            _ = LabelText.keyProblem(text)
        }
    }

    @Test func invalidUTF8IsPlaced() {
        #expect((try? UTF8Text.decode(Array("a: é\n".utf8), file: "f").get()) == "a: é\n")
        let bad: [UInt8] = Array("a: 1\nb: x".utf8) + [0xFF] + Array("\n".utf8)
        #expect(throws: UTF8Text.UTF8Error.self) { try UTF8Text.decode(bad, file: "f.yaml").get() }
        if case .failure(let e) = UTF8Text.decode(bad, file: "f.yaml") {
            #expect(e.description == "f.yaml:2:5: not UTF-8 (byte 0xff); save the file as UTF-8")
        }
        if case .failure(let e) = UTF8Text.decode([0x61, 0xC3], file: "t") { #expect(e.description.hasPrefix("t:1:2: not UTF-8 (byte 0xc3)")) }
    }

    @Test func noSuggestionWorkForAbsurdNames() {
        let start = ContinuousClock.now
        #expect(Suggestion.closest(to: String(repeating: "y", count: 4 << 20), among: ["world", "cluster", "host"]) == nil)
        #expect(Suggestion.closest(to: "wrold", among: ["world", "cluster", "host"]) == "world")
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(Suggestion.excerpt(String(repeating: "z", count: 1000)).count < 120)
    }
}
