import CSystemd
import Glibc

/// sd_notify(3) through libsystemd: READY, STATUS, WATCHDOG, RELOADING and
/// STOPPING to the service manager (or to whoever set NOTIFY_SOCKET, like the
/// sandbox). Without NOTIFY_SOCKET every call is a no-op.
public struct SystemdNotifier: Sendable {
    public init() {}

    @discardableResult
    func send(_ state: String) -> Bool {
        sd_notify(0, state) > 0
    }

    public func ready(status: String) {
        send("READY=1\nSTATUS=\(status)")
    }

    public func status(_ line: String) {
        send("STATUS=\(line)")
    }

    public func watchdog() {
        send("WATCHDOG=1")
    }

    /// RELOADING=1 with the monotonic timestamp systemd expects alongside it.
    public func reloading() {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let usec = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
        send("RELOADING=1\nMONOTONIC_USEC=\(usec)\nSTATUS=Reloading configuration")
    }

    public func stopping() {
        send("STOPPING=1\nSTATUS=Stopping")
    }

    /// Half of WATCHDOG_USEC when the service has a watchdog for this process.
    public var watchdogInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(usec / 2))
    }
}
