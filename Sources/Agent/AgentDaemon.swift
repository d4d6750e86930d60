import HTTPServing
import HTTPTransport
import AgentModel
import API
import Config
import Datapath
import Diagnostics
import Foundation
import Glibc
import Reconciler

public struct AgentOptions: Sendable {
    public var configPath: String
    public var overrides: [String]

    public init(configPath: String, overrides: [String]) {
        self.configPath = configPath
        self.overrides = overrides
    }
}

public struct AgentError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// The node agent: loads the config, starts the enabled subsystems, serves the
/// local API, talks to systemd, reloads on SIGHUP or `cilium config set`, and
/// on SIGTERM leaves the datapath in place for the next agent to adopt.
public actor AgentDaemon {
    private let options: AgentOptions
    private var config: AgentConfig
    private let nodeName: String
    private let subsystems: [String: any AgentSubsystem]
    private let host: SubsystemHost
    private let notifier = SystemdNotifier()
    private var server: HTTPServer?
    private var metricsServer: HTTPServer?
    private var lastReloadError: String?
    private var reloads = 0
    private var lastStatusLine = ""
    private let startedAt = Date()
    private let shared = SharedState()

    /// Loads and validates the config; a bad file refuses to start.
    public init(options: AgentOptions) throws {
        self.options = options
        let config = try ConfigLoader.load(path: options.configPath, overrides: options.overrides)
        self.config = config
        self.nodeName = config.agent.nodeName.isEmpty ? ProcessInfo.processInfo.hostName : config.agent.nodeName
        let list = allSubsystems()
        self.subsystems = Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0) })
        self.host = try SubsystemHost(list)
    }

    /// Where the agent lives, the same for every subsystem.
    private var place: SubsystemContext<Void> {
        SubsystemContext(section: (), nodeName: nodeName, bpfRoot: config.bpf.root, stateDir: config.agent.stateDir, shared: shared)
    }

    /// Runs until SIGTERM/SIGINT. Returns the process exit code.
    public func run() async -> Int32 {
        let signals = SignalEvents.stream()
        Self.raiseOpenFileLimit()
        do {
            try await startDatapath()
            try startAPI()
        } catch {
            Log.error("cannot start: \(error)")
            await shutdownSubsystems()
            return 1
        }
        await settleSubsystems()
        let line = await statusLine()
        lastStatusLine = line
        notifier.ready(status: line)
        Log.info("ready: \(line)")
        let background = startBackgroundTasks()
        for await sig in signals {
            if sig == SIGHUP {
                _ = await reload()
            } else {
                break
            }
        }
        notifier.stopping()
        Log.info("stopping: datapath stays in place for the next agent")
        for t in background { t.cancel() }
        await server?.stop()
        await metricsServer?.stop()
        await shutdownSubsystems()
        return 0
    }

    private func shutdownSubsystems() async {
        await host.shutdownAll(Self.release)
    }

    /// Lets go of a subsystem's handles and leaves its datapath in place (agent shutdown; a reload).
    @Sendable private static func release(_ s: any Subsystem) async {
        if let s = s as? any AgentSubsystem { await s.shutdown() } else { await s.stop() }
    }

    private func startDatapath() async throws {
        if let why = Self.makeDirectories(config.agent.stateDir) {
            throw AgentError("agent.stateDir: cannot create \(config.agent.stateDir): \(why); "
                             + "set agent.stateDir to a directory the agent can write")
        }
        for s in subsystems.values { await s.configure(from: config, at: place) }
        // Tables wait for every source of the enabled subsystems before anything is pruned (a restarted agent keeps
        // the remote clusters' entries until ClusterMesh has listed them, though Networking starts first).
        for name in config.enabledSubsystems { await subsystems[name]?.registerInitializers(shared: place.shared) }
        // What an earlier agent left of a subsystem this config disables goes first.
        for name in host.order.reversed() where !config.enabledSubsystems.contains(name) {
            await subsystems[name]!.removeLeftovers(bpfRoot: config.bpf.root)
        }
        await host.apply(enabled: config.enabledSubsystems)
        if case .failed(let why) = await host.state(of: "networking") {
            throw AgentError("datapath: \(why)")
        }
        // IPsec that cannot start (no ESP, a bad key file) refuses the agent: it never runs half-started with pod
        // traffic leaving in clear.
        if config.encryption.enabled, config.encryption.type == .ipsec, case .failed(let why) = await host.state(of: "encryption") {
            throw AgentError("encryption: \(why)")
        }
    }

    /// READY follows each running subsystem's first full sync (for Networking, the kvstore's
    /// listing of the other nodes, in the BPF ipcache), so an agent never says ready with part of
    /// the cluster missing; meanwhile the pinned maps keep serving what the last agent left. A
    /// source that cannot be reached (the listing failed) or `firstSyncWait` lets READY go on,
    /// with the reason in status.
    private func settleSubsystems() async {
        let deadline = ContinuousClock.now + Self.firstSyncWait
        for name in host.order where await host.state(of: name) == .running {
            await subsystems[name]?.settle(until: deadline)
        }
    }

    static let firstSyncWait: Duration = .seconds(10)

    /// `mkdir -p`; nil when the directory is there, else why not in errno's words ("Permission
    /// denied"): Foundation's error on Linux says only "NSCocoaErrorDomain error 512".
    /// Every connection of every listener is a descriptor (`agent.http.maxConnections` per
    /// listener): the soft limit (1024 under systemd) goes up to the hard one, as Go's runtime does.
    static func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = min(limit.rlim_max, 1 << 20)
        if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            Log.warning("cannot raise the open-file limit to \(limit.rlim_cur): \(errnoText(errno))")
        }
    }

    /// One malloc arena for the whole process. With one per thread (glibc's default, up to 8 per
    /// core), memory freed after a crowd of connections on one event loop is not reused by the
    /// next crowd on another: 5,000 idle connections then cost 10 MB more each time (`make bench`,
    /// server rows). Called first thing, before other threads allocate.
    public static func useOneHeapArena() {
        guard getenv("MALLOC_ARENA_MAX") == nil else { return }  // the operator's choice stands
        typealias MallOpt = @convention(c) (Int32, Int32) -> Int32
        let M_ARENA_MAX: Int32 = -8  // malloc.h, which Glibc's module does not export
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        _ = unsafeBitCast(symbol, to: MallOpt.self)(M_ARENA_MAX, 1)
    }

    static func makeDirectories(_ path: String) -> String? {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o755) != 0, errno != EEXIST { return errnoText(errno) }
        }
        var st = stat()
        guard stat(path, &st) == 0 else { return errnoText(errno) }
        return st.st_mode & S_IFMT == S_IFDIR ? nil : errnoText(ENOTDIR)
    }

    private func startAPI() throws {
        let server = HTTPServer(socketPath: config.agent.socketPath, limits: HTTPServerLimits(config.agent.http)) { [weak self] request in
            guard let self else { return .error(status: 503, message: "agent is stopping") }
            return await self.handle(request)
        }
        try server.start()
        self.server = server
        try startMetrics()
    }

    /// The agent's Prometheus endpoint, when `prometheus.enabled`.
    private func startMetrics() throws {
        guard config.prometheus.enabled else { return }
        let root = config.bpf.root, shared = shared
        let metrics = HTTPServer(tcpPort: UInt16(config.prometheus.port), limits: HTTPServerLimits(config.agent.http)) { request in
            guard request.path == "/metrics" else { return .error(status: 404, message: "metrics are at /metrics") }
            return await AgentMetrics.render(bpfRoot: root, shared: shared).response
        }
        do {
            try metrics.start()
        } catch {
            throw AgentError("prometheus.port \(config.prometheus.port): \(error)")
        }
        metricsServer = metrics
    }

    private nonisolated func startBackgroundTasks() -> [Task<Void, Never>] {
        var tasks: [Task<Void, Never>] = []
        if let interval = notifier.watchdogInterval {
            tasks.append(Task { [weak self] in
                while !Task.isCancelled {
                    // Only a responsive agent feeds the watchdog.
                    guard let self, await self.isResponsive() else { return }
                    self.notifier.watchdog()
                    try? await Task.sleep(for: interval)
                }
            })
        }
        tasks.append(Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                await self?.refreshStatusLine()
            }
        })
        return tasks
    }

    func isResponsive() -> Bool { true }

    private func refreshStatusLine() async {
        let line = await statusLine()
        if line != lastStatusLine {
            lastStatusLine = line
            notifier.status(line)
        }
    }

    // MARK: - reload

    /// Reloads the config file. A bad file is refused and the running
    /// configuration stays in force; the error is kept for `cilium status`.
    func reload() async -> Result<AgentConfig, AgentError> {
        notifier.reloading()
        defer { notifier.ready(status: lastStatusLine) }
        let new: AgentConfig
        do {
            new = try ConfigLoader.load(path: options.configPath, overrides: options.overrides)
        } catch {
            return refuse("reload refused, keeping the running configuration: \(error)")
        }
        let plan = ReloadPlan(from: config, to: new, subsystems: host.order.map { subsystems[$0]! })
        let changed = plan.changed
        if let why = plan.refusal {
            return refuse("reload refused: \(why)")
        }
        config = new
        for s in subsystems.values { await s.configure(from: new, at: place) }
        let wasRunning = Set(await runningSubsystems())
        await host.apply(enabled: new.enabledSubsystems)
        // Subsystems that stayed on but whose section changed restart alone; their
        // datapath stays in place while the new section is applied.
        for name in plan.restart where wasRunning.contains(name) {
            await host.restart(name, release: Self.release)
        }
        if changed.contains(where: { $0.hasPrefix("prometheus.") }) {
            await metricsServer?.stop()
            metricsServer = nil
            do {
                try startMetrics()
            } catch {
                return refuse("reload: the metrics server did not start: \(error)")
            }
        }
        lastReloadError = nil
        reloads += 1
        lastStatusLine = await statusLine()
        Log.info("reloaded configuration (\(changed.count) key(s) changed: \(changed.joined(separator: ", ")))")
        return .success(new)
    }

    private func refuse(_ message: String) -> Result<AgentConfig, AgentError> {
        lastReloadError = message
        Log.error(message)
        return .failure(AgentError(message))
    }

    private func runningSubsystems() async -> [String] {
        var out: [String] = []
        for name in host.order where await host.state(of: name) == .running { out.append(name) }
        return out
    }

    /// `cilium config set`: validate the edit, write the node's file, reload.
    func set(_ settings: [String]) async -> Result<AgentConfig, AgentError> {
        let path = options.configPath
        var text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        for setting in settings {
            do {
                text = try ConfigEditor.set(setting, in: text, file: path)
            } catch {
                return .failure(AgentError("\(error)"))
            }
        }
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            return .failure(AgentError("cannot write \(path): \(error)"))
        }
        return await reload()
    }

    // MARK: - status

    public func status() async -> StatusResponse {
        var subs: [String: SubsystemStatus] = [:]
        var recs: [ReconcilerStatus] = []
        for name in host.order {
            let s = subsystems[name]!
            switch await host.state(of: name) {
            case .disabled:
                subs[name] = SubsystemStatus(enabled: false, state: .disabled, message: "Disabled", summary: "Disabled")
            case .failed(let why):
                subs[name] = SubsystemStatus(enabled: true, state: .error, message: why, summary: "Failure: \(why)")
            case .running:
                subs[name] = await s.status()
                recs += await s.reconcilers()
            }
        }
        // Turned on by the config but left out of this build (scripts/check-modularity.sh builds such agents).
        for flag in enabledFlags where subsystems[flag.subsystem] == nil && config.enabledSubsystems.contains(flag.subsystem) {
            let why = "not built into this agent, but the config turns it on (\(flag.rule)); turn it off or run an agent built with it"
            subs[flag.subsystem] = SubsystemStatus(enabled: true, state: .error, message: why, summary: "Failure: \(why)")
        }
        let overall = Health.worst((host.order + subs.keys.filter { !host.order.contains($0) }.sorted()).map { name in
            let s = subs[name]!
            return Health(s.state, s.state == .ok || s.state == .disabled ? "" : "\(name): \(s.message)")
        })
        return StatusResponse(node: nodeName, cluster: config.cluster.name, version: AgentVersion.string, pid: getpid(),
                              uptimeSeconds: Date().timeIntervalSince(startedAt), configFile: options.configPath,
                              bpfRoot: config.bpf.root, state: overall.state, message: overall.message,
                              subsystems: subs, reconcilers: recs, lastReloadError: lastReloadError, reloads: reloads)
    }

    /// The one-line summary for systemd's STATUS=.
    func statusLine() async -> String {
        let st = await status()
        let running = st.subsystems.values.filter { $0.enabled && $0.state != .error }.count
        let enabled = st.subsystems.values.filter(\.enabled).count
        var line = "\(st.state == .ok ? "Ok" : st.state.rawValue.capitalized): \(running)/\(enabled) subsystems running"
        if !st.message.isEmpty { line += "; " + st.message }
        if lastReloadError != nil { line += "; last reload refused (see cilium status)" }
        return line
    }

    // MARK: - API

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        switch (request.method, request.path) {
        case ("GET", "/v1/healthz"):
            return .json(["state": "ok"])
        case ("GET", "/v1/status"):
            return .json(await status())
        case ("GET", "/v1/map/metrics"):
            return .json(AgentMetrics.counters(bpfRoot: config.bpf.root))
        case ("GET", "/v1/config"):
            if let key = request.query["key"] {
                do {
                    return .json(ConfigEntry(key: key, value: try config.get(key)))
                } catch {
                    return .error(status: 404, message: "\(error)")
                }
            }
            return .json(ConfigResponse(file: options.configPath,
                                        values: config.flattened().map { ConfigEntry(key: $0.key, value: $0.value.description) }))
        case ("PUT", "/v1/config"), ("POST", "/v1/config"):
            guard let req = try? request.decode(ConfigSetRequest.self) else {
                return .error(status: 400, message: "expected a JSON body {\"settings\": [\"key=value\", ...]}")
            }
            switch await set(req.settings) {
            case .success(let c):
                return .json(ConfigResponse(file: options.configPath, values: c.flattened().map { ConfigEntry(key: $0.key, value: $0.value.description) }))
            case .failure(let e):
                return .error(status: 400, message: e.description)
            }
        case ("POST", "/v1/config/reload"):
            switch await reload() {
            case .success: return .json(await status())
            case .failure(let e): return .error(status: 400, message: e.description)
            }
        default:
            // The subsystem with the longest matching prefix serves the path
            // ("/v1/map/lb" is the load balancer's even though Networking serves "/v1/map/").
            let owner = host.order.compactMap { name -> (String, Int)? in
                let longest = subsystems[name]!.apiPrefixes.filter { request.path.hasPrefix($0) }.map(\.count).max()
                return longest.map { (name, $0) }
            }.max { $0.1 < $1.1 }?.0
            guard let name = owner else { return .error(status: 404, message: "no API endpoint \(request.method) \(request.path)") }
            guard await host.state(of: name) == .running else {
                return .error(status: 503, message: "\(request.path) is served by the \(name) subsystem, which is not running; enable it in the config")
            }
            return await subsystems[name]!.handle(request)
        }
    }
}
